"""The OSSM -> Istio table in meshproof/mesh/pins.py against the OSSM Sail operator's own Istio CRDs.

The product carries the table (a user's clone has no ../shared); this keeps it equal to the
`spec.version` enum of the Istio CRD at the refs the shared data holds: release-3.2.0 (OSSM 3.2.0) and
the release-3.2 branch head (3.2.9, whose bundle CSV names servicemeshoperator3.v3.2.9).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from fixtures_data.shared_data import upstream

from meshproof.commands import plan as plan_command
from meshproof.config import DEFAULT_OSSM_VERSION
from meshproof.mesh import pins


def crd_istio_1_27_versions(branch: str) -> tuple[str, ...]:
    crd = yaml.safe_load(
        upstream(f"ossm-sail-operator-{branch}", "chart", "crds", "sailoperator.io_istios.yaml").read_text()
    )
    (served,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    enum = served["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["version"]["enum"]
    patches = [v.lstrip("v") for v in enum if v.startswith("v1.27.") and not v.endswith("-latest")]
    return tuple(sorted(patches, key=pins.parse_version))


def csv_version(branch: str) -> str:
    csv = yaml.safe_load(
        upstream(
            f"ossm-sail-operator-{branch}",
            "bundle",
            "manifests",
            "servicemeshoperator3.clusterserviceversion.yaml",
        ).read_text()
    )
    return str(csv["spec"]["version"])


@pytest.mark.parametrize(("branch", "release"), [("release-3.2.0", "3.2.0"), ("release-3.2", "3.2.9")])
def test_table_equals_the_crd_enum(branch: str, release: str) -> None:
    if branch == "release-3.2":
        assert csv_version(branch) == release  # the branch head is this release
    assert pins.istio_versions_for_ossm(release) == crd_istio_1_27_versions(branch)


def test_releases_between_only_add_patches() -> None:
    previous: tuple[str, ...] = ()
    for release in pins.OSSM_RELEASES:
        offered = pins.istio_versions_for_ossm(release)
        assert set(previous) <= set(offered), release
        previous = offered
    assert pins.istio_versions_for_ossm("3.2.1") == ("1.27.3",)
    assert pins.istio_versions_for_ossm("v3.2.2") == ("1.27.3", "1.27.5")
    assert pins.istio_versions_for_ossm("3.2.4")[-1] == "1.27.8"
    assert pins.newest_istio_for_ossm("3.2.5") == "1.27.9"


def test_unknown_release_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"OSSM 3\.2\.10 is not .*\(known: 3\.2\.0, "):
        pins.istio_versions_for_ossm("3.2.10")


def test_default_is_the_newest_tagged_release() -> None:
    assert DEFAULT_OSSM_VERSION == pins.OSSM_NEWEST_RELEASE == "3.2.8"
    assert pins.newest_istio_for_ossm(DEFAULT_OSSM_VERSION) == "1.27.9"


def test_plan_refuses_an_istio_the_ossm_release_does_not_offer(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [n for n in os.environ if n.startswith("MESHPROOF_")]:
        monkeypatch.delenv(name)
    argv = [
        "--provider",
        "openshift",
        "--installer",
        "sail",
        "--ossm-version",
        "3.2.1",
        "--istio-version",
        "1.27.9",
    ]

    assert plan_command.main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "OSSM 3.2.1 does not offer Istio 1.27.9: it offers 1.27.3" in lines[0]


def _bundle_versions(path: Path) -> set[str]:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    return {d["metadata"]["annotations"]["inference.networking.k8s.io/bundle-version"] for d in docs}


def _served(path: Path) -> set[str]:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    return {f"{d['spec']['group']}/{v['name']}" for d in docs for v in d["spec"]["versions"] if v["served"]}


def test_gie_pins_are_the_releases_the_builds_compile_against() -> None:
    # Upstream Istio 1.27.9 go.mod: gateway-api-inference-extension v0.5.0 (its v1alpha2 x-k8s API).
    upstream_pool = upstream(
        f"gie-{pins.GIE_UPSTREAM.crd_ref}",
        "config",
        "crd",
        "bases",
        "inference.networking.x-k8s.io_inferencepools.yaml",
    )
    assert pins.GIE_UPSTREAM.crd_ref == "v0.5.0" and pins.GIE_UPSTREAM.api_version in _served(upstream_pool)
    # The OSSM fork's 1.27.3 test bundle is GIE v1.0.0, the release it backported.
    ossm_bundle = upstream(
        "ossm-istio-release-1.27.3",
        "tests",
        "integration",
        "pilot",
        "testdata",
        "gateway-api-inference-extension-crd.yaml",
    )
    assert _bundle_versions(ossm_bundle) == {pins.GIE_OSSM.crd_ref}
    assert pins.GIE_OSSM.api_version in _served(ossm_bundle)
