"""Where the upstream definitions live, and the one clear error when they are missing.

Two sources. Exact-version data files from `../shared/upstream` (the engine tests pass its path; a
user's clone never needs it): Istio's CRDs and Helm chart values at the patch a plan targets (1.27.9 or
1.27.3), the Sail operator's own CRDs and vendored (for OSSM: Red Hat) charts at the release that
installs that patch, Gateway API v1.3.0 and GIE v0.5.0 / v1.0.0 CRDs. And what the Go module proxy
serves, fetched by `.ci/contract/fetch-upstream`: OLM and cert-manager CRDs, cert-manager's chart, and
the Go checker (Istio's IstioOperator/Values/MeshConfig types, apiextensions validation, kind types).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CACHE_DIR = REPO_ROOT / ".cache" / "contract"
FETCH_COMMAND = "bash .ci/contract/fetch-upstream"

# Chart name (last segment of the Helm chart reference) -> chart directory inside the istio module.
ISTIO_CHARTS = {
    "base": "manifests/charts/base",
    "istiod": "manifests/charts/istio-control/istio-discovery",
    "cni": "manifests/charts/istio-cni",
    "ztunnel": "manifests/charts/ztunnel",
    "gateway": "manifests/charts/gateway",
}
OTHER_CHARTS = {"cert-manager": ("cert-manager", "deploy/charts/cert-manager")}


def _istio_csr_chart() -> str:
    from meshproof.mesh import pins  # the chart version meshproof installs

    return f"istio-csr-{pins.ISTIO_CSR_CHART_VERSION}/deploy/charts/istio-csr"


# Charts read from ../shared/upstream at the version meshproof installs: "<folder>/<chart path>".
SHARED_CHARTS = {"cert-manager-istio-csr": _istio_csr_chart()}
# CRD files of each fetched module that the checker loads (every file copied for that module).
CRD_MODULES = ("olm", "cert-manager")
# CRD files from ../shared/upstream that do not depend on the target: Gateway API v1.3.0 (the release
# Istio 1.27 pins; standard channel plus the experimental-only kinds) and the inference extension at the
# releases the builds compile against: v0.5.0 (upstream, x-k8s v1alpha2) and v1.0.0 (OSSM, k8s v1).
SHARED_CRD_GLOBS = (
    "gateway-api-v1.3.0/config/crd/standard/*.yaml",
    *(
        f"gateway-api-v1.3.0/config/crd/experimental/gateway.networking.k8s.io_{kind}.yaml"
        for kind in ("tcproutes", "tlsroutes", "udproutes", "backendtlspolicies")
    ),
    "gie-v0.5.0/config/crd/bases/inference.networking.x-k8s.io_*.yaml",
    "gie-v1.0.0/config/crd/bases/inference.networking.k8s.io_inferencepools.yaml",
)


@dataclass(frozen=True)
class Target:
    """The exact releases one plan targets: its Istio patch and the folder (in ../shared/upstream) of the
    Sail operator release that installs it (OSSM's downstream on OpenShift, upstream Sail elsewhere)."""

    istio_version: str = "1.27.9"
    sail_release: str = "ossm-sail-operator-release-3.2"

    def __str__(self) -> str:
        return f"istio {self.istio_version}, {self.sail_release}"


def target_for(provider: str, ossm_version: str, istio_version: str) -> Target:
    """OSSM 3.2.0 is its own branch (ZTunnel v1alpha1 only, istio-facts §0 trap 1); every later 3.2.x
    shares the release-3.2 API. Off OpenShift the upstream Sail release meshproof pins for the patch."""
    from meshproof.mesh import pins  # the contract tooling follows the plan's own pins

    if provider == "openshift":
        branch = "release-3.2.0" if ossm_version.lstrip("v") == "3.2.0" else "release-3.2"
        return Target(istio_version, f"ossm-sail-operator-{branch}")
    release = pins.UPSTREAM_SAIL_FOR_ISTIO.get(istio_version)
    return Target(istio_version, f"sail-operator-{release.chart_version if release else '1.29.2'}")


class UpstreamMissing(Exception):
    """The upstream definitions have not been fetched; the message says how to fetch them."""


@dataclass(frozen=True)
class ModulePin:
    name: str
    module: str
    version: str
    directory: Path


@dataclass(frozen=True)
class Upstream:
    """The definitions for one target: fetched module pins, the exact-version shared data, the checker."""

    modules: dict[str, ModulePin]
    checker: Path
    shared: Path  # ../shared/upstream
    target: Target = Target()

    def for_target(self, target: Target) -> Upstream:
        return replace(self, target=target)

    def crd_files(self, groups: Iterable[str] | None = None) -> list[Path]:
        """The CRD files for the target; with `groups`, only those defining one of these API groups (the
        Sail and Istio CRDs are megabytes of schema, and the checker loads every file it is given)."""
        files = self._all_crd_files()
        if groups is None:
            return files
        wanted = set(groups)
        return [f for f in files if _crd_groups(f) & wanted]

    def _all_crd_files(self) -> list[Path]:
        files: list[Path] = []
        for name in CRD_MODULES:
            candidates = sorted(self.modules[name].directory.rglob("*.yaml"))
            files.extend(p for p in candidates if "kind: CustomResourceDefinition" in p.read_text())
        files.append(self._istio_dir() / "manifests" / "charts" / "base" / "files" / "crd-all.gen.yaml")
        for pattern in SHARED_CRD_GLOBS:
            files.extend(sorted(self.shared.glob(pattern)))
        files.extend(sorted((self._shared_dir(self.target.sail_release) / "chart" / "crds").glob("*.yaml")))
        return files

    def chart_dir(self, chart: str) -> Path | None:
        """The values files of a Helm chart meshproof installs, at the target's version; None if unknown."""
        if chart in ISTIO_CHARTS:
            return self._istio_dir() / ISTIO_CHARTS[chart]
        if chart in OTHER_CHARTS:
            module, relative = OTHER_CHARTS[chart]
            return self.modules[module].directory / relative
        if chart in SHARED_CHARTS:
            return (
                self._shared_dir(SHARED_CHARTS[chart].split("/", 1)[0])
                / SHARED_CHARTS[chart].split("/", 1)[1]
            )
        return None

    def sail_chart_dir(self, chart: str) -> Path:
        """A chart as the target's Sail operator installs it (for OSSM: Red Hat's charts, which add keys
        such as `global.networkPolicy.enabled`)."""
        release = self._shared_dir(self.target.sail_release)
        chart_dir = release / "resources" / f"v{self.target.istio_version}" / "charts" / chart
        if not chart_dir.is_dir():
            raise UpstreamMissing(f"{self.target.sail_release} vendors no {chart} chart for {self.target}")
        return chart_dir

    def describe(self) -> str:
        fetched = ", ".join(f"{p.module}@{p.version}" for p in self.modules.values())
        return f"{self.target} ({self.shared}); {fetched}"

    def _istio_dir(self) -> Path:
        return self._shared_dir(f"istio-{self.target.istio_version}")

    def _shared_dir(self, name: str) -> Path:
        path = self.shared / name
        if not path.is_dir():
            raise UpstreamMissing(f"no exact-version upstream data for {name} in {self.shared}")
        return path


_CRD_GROUP = re.compile(r"^  group: ['\"]?([A-Za-z0-9.-]+)", re.MULTILINE)


@functools.cache
def _crd_groups(path: Path) -> frozenset[str]:
    """The API groups the CRDs in a file define (`spec.group`, two-space indented in every CRD file)."""
    return frozenset(_CRD_GROUP.findall(path.read_text()))


def load_upstream(shared: Path, cache_dir: Path = CACHE_DIR) -> Upstream:
    manifest = cache_dir / "upstream.json"
    checker = cache_dir / "bin" / "contract-checker"
    if not manifest.is_file() or not checker.is_file():
        raise UpstreamMissing(
            f"upstream API definitions are not fetched ({manifest} missing): run `{FETCH_COMMAND}` first "
            "(needs Go and the Go module proxy; about 3 minutes cold, instant when cached)"
        )
    data = json.loads(manifest.read_text())
    modules = {
        name: ModulePin(name, entry["module"], entry["version"], cache_dir / entry["dir"])
        for name, entry in data["modules"].items()
    }
    missing = [name for name in CRD_MODULES if name not in modules]
    if missing:
        raise UpstreamMissing(f"{manifest} lacks modules {missing}: re-run `{FETCH_COMMAND}`")
    return Upstream(modules=modules, checker=checker, shared=shared)
