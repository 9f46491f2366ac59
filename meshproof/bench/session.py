"""What one cluster benchmark session measured, and the facts of the environment it measured in.

The suite (suites/benchmark/) fills a BenchSession as its tests run and writes it once at the end.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meshproof.bench.model import BenchmarkResults, ResourceUsage, RunRecord
from meshproof.bench.plan import BenchPlan
from meshproof.bench.runner import PlanOutcome
from meshproof.bench.scale import PushWindow, ScaleSample
from meshproof.checks.verdict import Verdict
from meshproof.config import RunConfig
from meshproof.reporting.bench import write_reports

PROFILE_ENV = "MESHPROOF_BENCH_PROFILE"
BASELINE_ENV = "MESHPROOF_BENCH_BASELINE"
THRESHOLD_ENV = "MESHPROOF_BENCH_THRESHOLD_PCT"
# the `scale` profile's pod counts (comma-separated); required on OpenShift, where kind's default is small
SCALE_PODS_ENV = "MESHPROOF_BENCH_SCALE_PODS"
# The ambient arms need ztunnel; a run installed in sidecar mode has none.
ARMS_BY_MODE = {"sidecar": ("no-mesh", "sidecar"), "ambient": ("no-mesh", "sidecar", "ambient", "waypoint")}


def environment_facts(run_config: RunConfig, mesh: Any, cluster: Any, plan: BenchPlan) -> dict[str, object]:
    facts: dict[str, object] = {
        "provider": run_config.provider,
        "mode": run_config.mode,
        "installer": run_config.installer,
        "istio_version": run_config.istio_version,
        "ossm_version": run_config.ossm_version,
        "profile": plan.name,
        "placement": plan.placement,
        "sidecar_concurrency": plan.sizing.proxy_concurrency,
        "proxy_resources": f"{plan.sizing.proxy_cpu} CPU, {plan.sizing.proxy_memory}",
        "app_resources": f"{plan.sizing.app_cpu} CPU, {plan.sizing.app_memory}",
        "mesh": mesh.spec.summary() if hasattr(mesh, "spec") else str(mesh),
    }
    if run_config.mode == "ambient":
        # perf-anchors §7.1: the install profile changes the sidecar result (HBONE-enabled sidecars)
        facts["sidecar_arm_profile"] = "ambient profile (sidecars with HBONE enabled)"
    server_version = getattr(cluster, "server_version", None)
    if callable(server_version):
        try:
            facts["kubernetes_version"] = server_version()
        except Exception as exc:  # a fact we could not read is recorded as such, not fatal
            facts["kubernetes_version"] = f"unknown ({exc})"
    return facts


@dataclass
class BenchSession:
    """Everything measured in this session; written as one benchmark.json plus reports."""

    directory: Path
    plan: BenchPlan
    environment: dict[str, object]
    runs: list[RunRecord] = field(default_factory=list)
    resources: list[ResourceUsage] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    path_verdicts: dict[str, Verdict] = field(default_factory=dict)
    scale_samples: list[ScaleSample] = field(default_factory=list)
    scale_pushes: list[PushWindow] = field(default_factory=list)

    def results(self) -> BenchmarkResults:
        return BenchmarkResults(
            kind="cluster",
            environment=self.environment,
            plan=self.plan.model_dump(mode="json"),
            runs=self.runs,
            resources=self.resources,
            scale_samples=[s.model_dump(mode="json") for s in self.scale_samples],
            scale_pushes=[w.model_dump(mode="json") for w in self.scale_pushes],
            notes=[
                *self.notes,
                *(f"path check {arm}: {v.reason}" for arm, v in sorted(self.path_verdicts.items())),
            ],
        )

    def record(self, outcome: PlanOutcome) -> None:
        """Keep what a plan measured; its failures become notes in the report."""
        self.runs.extend(outcome.runs)
        self.resources.extend(outcome.resources)
        self.notes.extend(f"failed: {f}" for f in outcome.failures)

    def write(self) -> Path:
        return write_reports(self.results(), self.directory).markdown
