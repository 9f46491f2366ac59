"""Where the fetched upstream definitions live, and the one clear error when they are missing."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CACHE_DIR = REPO_ROOT / ".cache" / "contract"
TRANSCRIBED_DIR = REPO_ROOT / ".ci" / "contract" / "transcribed"
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
# CRD files of each fetched module that the checker loads (every file copied for that module).
CRD_MODULES = ("istio-api", "gateway-api", "gie-v1alpha2", "gie-v1", "olm", "cert-manager")


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
    """The fetched definitions: module pins, their copied files and the built checker binary."""

    modules: dict[str, ModulePin]
    checker: Path

    def crd_files(self, sail_variant: str) -> list[Path]:
        files: list[Path] = []
        for name in CRD_MODULES:
            candidates = sorted(self.modules[name].directory.rglob("*.yaml"))
            files.extend(p for p in candidates if "kind: CustomResourceDefinition" in p.read_text())
        files.append(TRANSCRIBED_DIR / f"sail-{sail_variant}.yaml")
        return files

    def chart_dir(self, chart: str) -> Path | None:
        """The fetched values files of a Helm chart meshproof installs, or None when none were fetched."""
        if chart in ISTIO_CHARTS:
            return self.modules["istio"].directory / ISTIO_CHARTS[chart]
        if chart in OTHER_CHARTS:
            module, relative = OTHER_CHARTS[chart]
            return self.modules[module].directory / relative
        return None

    def describe(self) -> str:
        return ", ".join(f"{p.module}@{p.version}" for p in self.modules.values())


def load_upstream(cache_dir: Path = CACHE_DIR) -> Upstream:
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
    missing = [name for name in (*CRD_MODULES, "istio") if name not in modules]
    if missing:
        raise UpstreamMissing(f"{manifest} lacks modules {missing}: re-run `{FETCH_COMMAND}`")
    return Upstream(modules=modules, checker=checker)
