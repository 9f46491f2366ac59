"""Which steps of an install plan a run will execute, and which CLIs they call: what preflight requires.

A plan lists every step; the live clusters decide which run. A mesh whose install record matches the
options is reused (no mesh-stage step runs), and a step guarded by `skip_if_crds` is skipped when its CRDs
are already in place. Reading that takes one GET per record and CRD; a cluster that cannot be read counts
every step, so a tool is never waived on a guess.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meshproof.kube_connect import one_line
from meshproof.mesh.install import crds_in_place
from meshproof.mesh.model import InstallPlan, PlanStep
from meshproof.mesh.record import read_record
from meshproof.mesh.spec import ClusterSpec

if TYPE_CHECKING:
    from meshproof.kube import Cluster

# The CLIs plan steps call (`sh -c` scripts included).
PLAN_TOOLS = ("istioctl", "helm", "kubectl", "kind", "docker")

ClusterFactory = Callable[[ClusterSpec], Any]  # a reader (get) for one planned cluster; closed after use


@dataclass(frozen=True)
class PlannedSteps:
    steps: tuple[PlanStep, ...]  # the steps that will run, in plan order
    note: str  # what was decided and why, one line

    def first_step(self, tool: str) -> PlanStep | None:
        """The first step that will run and calls `tool`; a `<tool> install` step before any other."""
        using = [s for s in self.steps if tool in step_tools(s)]
        installs = [s for s in using if (s.command or [])[:2] == [tool, "install"]]
        candidates = installs or using
        return candidates[0] if candidates else None


def step_tools(step: PlanStep) -> frozenset[str]:
    """The CLIs a step's command calls (inside `sh -c` scripts too)."""
    command = step.command or []
    words = shlex.split(command[2]) if len(command) == 3 and command[:2] == ["sh", "-c"] else command[:1]
    return frozenset(w for w in words if w in PLAN_TOOLS)


def every_step(plan: InstallPlan, why: str) -> PlannedSteps:
    return PlannedSteps(tuple(plan.steps), why)


def steps_on_clusters(plan: InstallPlan, factory: ClusterFactory) -> PlannedSteps:
    """The steps that will run given what the live clusters hold; every step when they cannot be read."""
    clusters: dict[str, Any] = {}
    try:
        for spec in plan.spec.clusters:
            clusters[spec.name] = factory(spec)
        skipped, why = skipped_on(plan, clusters)
    except Exception as exc:  # a cluster that cannot be read: count every step, say why
        return every_step(plan, f"could not read the clusters ({one_line(exc)[:160]}), so every step counts")
    finally:
        for cluster in clusters.values():
            getattr(cluster, "close", lambda: None)()
    running = tuple(s for i, s in enumerate(plan.steps) if i not in skipped)
    return PlannedSteps(running, "; ".join(why))


def skipped_on(plan: InstallPlan, clusters: Mapping[str, Any]) -> tuple[set[int], list[str]]:
    """The plan steps the live clusters make unnecessary, and why: a mesh recorded with these exact
    options is reused (no mesh step runs), CRD steps whose CRDs are in place are skipped."""
    skipped: set[int] = set()
    records = [read_record(cluster) for cluster in clusters.values()]
    if records and all(r is not None and r.matches(plan.spec) for r in records):
        skipped.update(i for i, _ in plan.steps_in("mesh"))
        why = ["mesh reused (recorded with these options): no install step runs"]
    else:
        why = ["no matching meshproof install recorded: the install steps run"]
    for index, step in plan.steps_in("cluster", "platform"):
        if step.skip_if_crds is not None:
            in_place = crds_in_place(clusters[step.cluster], step.skip_if_crds)
            if in_place.ok:
                skipped.add(index)
                why.append(f"skipped on {step.cluster}: '{step.title}' ({in_place.reason})")
    return skipped, why


def cluster_factory(kubeconfig: Path | None, run_id: str, *, timeout: float) -> ClusterFactory:
    """Real clusters for the planned ones, with short request timeouts (preflight answers in seconds)."""
    from meshproof.kube import Cluster

    def make(spec: ClusterSpec) -> Cluster:
        return Cluster(spec.context, kubeconfig, run_id, spec.name, request_timeout=timeout)

    return make
