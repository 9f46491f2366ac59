"""`meshproof plan --features gie` and `--features multicluster` show every resource and command those
suites depend on, for upstream Istio and OSSM, without touching a cluster.

Parses the printed plan (its `== NN. title ==` steps, `$` commands and YAML documents) the way a reader
would. What this cannot show: that the cluster accepts them (contract tier: tests/contract/).
"""

from __future__ import annotations

import os

import pytest
import yaml

from meshproof import gie
from meshproof.commands import plan as plan_command


@pytest.fixture(autouse=True)
def _no_meshproof_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("MESHPROOF_"):
            monkeypatch.delenv(name)


def printed(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert plan_command.main(list(argv)) == 0
    return capsys.readouterr().out


def documents(text: str) -> list[dict]:
    """Every YAML document the plan prints: the blocks indented by four spaces under a step."""
    blocks: list[list[str]] = [[]]
    for line in text.splitlines():
        if line.startswith("    "):
            blocks[-1].append(line[4:])
        elif blocks[-1]:
            blocks.append([])
    docs = []
    for block in blocks:
        try:
            loaded = list(yaml.safe_load_all("\n".join(block)))
        except yaml.YAMLError:
            continue  # a shell script block
        docs += [d for d in loaded if isinstance(d, dict) and {"kind", "apiVersion"} <= set(d)]
    return docs


@pytest.mark.parametrize(
    ("argv", "api_version", "epp_tag"),
    [
        pytest.param(
            ("--features", "gie"), "inference.networking.x-k8s.io/v1alpha2", "v0.5.1", id="upstream"
        ),
        pytest.param(
            ("--provider", "openshift", "--installer", "sail", "--features", "gie"),
            "inference.networking.k8s.io/v1",
            "v1.0.1",
            id="ossm",
        ),
    ],
)
def test_gie_plan_shows_the_whole_inference_setup(
    capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], api_version: str, epp_tag: str
) -> None:
    out = printed(capsys, *argv)
    assert "ENABLE_GATEWAY_API_INFERENCE_EXTENSION" in out
    assert "gateway-api-inference-extension/config/crd?ref=" in out
    assert f"Deploy the inference set-up in {gie.NAMESPACE}: InferencePool {api_version}" in out
    shown = {
        (d["kind"], d["metadata"]["name"])
        for d in documents(out)
        if (d.get("metadata") or {}).get("namespace") == gie.NAMESPACE
    }
    expected = {
        ("Gateway", gie.GATEWAY),
        ("HTTPRoute", gie.POOL_ROUTE),
        ("HTTPRoute", gie.OTHER_API_ROUTE),
        ("HTTPRoute", gie.PLAIN_ROUTE),
        ("InferencePool", gie.POOL),
        ("InferencePool", gie.OTHER_API_POOL),
        ("Deployment", gie.EPP),
        ("Service", gie.EPP),
        ("ConfigMap", f"{gie.EPP}-config"),
        ("DestinationRule", f"{gie.EPP}-tls"),
        ("Service", gie.PLAIN_SERVICE),
        *(("Deployment", s.name) for s in gie.MODEL_SERVERS),
    }
    assert expected <= shown, expected - shown
    assert f"gateway-api-inference-extension/epp:{epp_tag}" in out
    assert gie.SIM_IMAGE in out
    pools = {d["metadata"]["name"]: d["apiVersion"] for d in documents(out) if d["kind"] == "InferencePool"}
    assert pools[gie.POOL] == api_version


def test_multicluster_plan_shows_both_clusters_ca_gateways_and_remote_secrets(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = printed(capsys, "--features", "multicluster", "--mode", "sidecar")
    for name in ("meshproof-1", "meshproof-2"):
        assert f"kind create cluster --name {name}" in out
    assert out.count("Plug in this cluster's intermediate CA from the shared root (cacerts)") == 2
    assert "east-west gateway for network1" in out and "east-west gateway for network2" in out
    for source, target in (("meshproof-1", "meshproof-2"), ("meshproof-2", "meshproof-1")):
        assert f"Give {target} a remote secret for {source}" in out
        assert f"istioctl create-remote-secret --name={source}" in out
    configs = [d for d in documents(out) if d["kind"] == "Cluster"]
    subnets = {(c["networking"]["podSubnet"], c["networking"]["serviceSubnet"]) for c in configs}
    assert len(subnets) == 2, "distinct pod and service CIDRs per cluster"
    secrets = [d for d in documents(out) if d["kind"] == "Secret" and d["metadata"].get("name") == "cacerts"]
    assert len(secrets) == 2 and not any("data" in s or "stringData" in s for s in secrets)


def test_multicluster_on_existing_clusters_needs_two_contexts(capsys: pytest.CaptureFixture[str]) -> None:
    assert plan_command.main(["--provider", "existing", "--features", "multicluster"]) == 2
    assert "needs two --context values" in capsys.readouterr().err
    out = printed(
        capsys, "--provider", "existing", "--features", "multicluster", "--context", "a", "--context", "b"
    )
    assert "--context a" in out and "--context b" in out


def test_test_time_changes_of_the_suites_are_in_the_plan(capsys: pytest.CaptureFixture[str]) -> None:
    """What the suites change at test time (and put back) is listed for review, with the names they use."""
    from meshproof import multicluster as mc
    from meshproof.mesh.suite_steps import MULTICLUSTER_DENY_POLICY, REMOTE_SECRET_PREFIX

    ambient = printed(capsys, "--features", "multicluster", "--mode", "ambient")
    test_time = [line for line in ambient.splitlines() if line.startswith("#   - multicluster: ")]
    assert any(f"istio-system/{REMOTE_SECRET_PREFIX}meshproof-2 in meshproof-1" in t for t in test_time)
    assert any(f"Deployment {mc.SERVER}" in t and "zero replicas" in t for t in test_time)
    assert any(mc.GLOBAL_LABEL in t and mc.REMOTE_SERVER in t for t in test_time)
    assert any(
        f"AuthorizationPolicy {MULTICLUSTER_DENY_POLICY}" in t and "of meshproof-2" in t for t in test_time
    )
    sidecar = printed(capsys, "--features", "multicluster", "--mode", "sidecar")
    assert mc.GLOBAL_LABEL not in sidecar.split("# <values-file>")[0], (
        "istio.io/global is only removed in ambient"
    )

    gie_plan = printed(capsys, "--features", "gie")
    assert (
        f"#   - gie: scales the install's EPP Deployment {gie.NAMESPACE}/{gie.EPP} to zero replicas"
        in gie_plan
    )
    assert "#   - multicluster:" not in gie_plan and "#   - gie:" not in ambient
