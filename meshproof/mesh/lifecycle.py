"""A run's lifecycle: provision the clusters once, install (or reuse) the mesh once, and tear down exactly
what this run created unless the keep flags say otherwise.

"Once" holds across pytest-xdist workers (`RunOnce`). Whether an existing mesh is reused, replaced or
refused is decided by `decide_mesh`, a pure function over what each cluster's install record says and the
marks of a control plane found there (`meshproof.mesh.detect`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from meshproof import tools
from meshproof.clusters import Provider, ProvisionError, provider_for
from meshproof.clusters.once import RunOnce
from meshproof.config import RunConfig
from meshproof.mesh.detect import MeshMarks, find_mesh_marks
from meshproof.mesh.install import Progress, Runner, apply_plan, uninstall
from meshproof.mesh.model import InstallPlan
from meshproof.mesh.plan import plan_for_spec
from meshproof.mesh.record import InstallRecord, read_record
from meshproof.mesh.spec import ClusterSpec, MeshSpec
from meshproof.wait import Timeouts

if TYPE_CHECKING:
    from meshproof.kube import Cluster

log = logging.getLogger("meshproof.lifecycle")

INSTALL_OVER_FLAG = "install-over-existing-mesh"

ClusterFactory = Callable[[ClusterSpec], "Cluster"]
ApplyFn = Callable[..., list[int]]
UninstallFn = Callable[..., list[str]]


class LazyClusters(Mapping[str, "Cluster"]):
    """Cluster objects by plan name, built on first use: a kind cluster's kubeconfig context exists only
    after its creation step ran."""

    def __init__(self, specs: tuple[ClusterSpec, ...], factory: ClusterFactory) -> None:
        self._specs = {c.name: c for c in specs}
        self._factory = factory
        self._made: dict[str, Cluster] = {}

    def __getitem__(self, name: str) -> Cluster:
        if name not in self._made:
            self._made[name] = self._factory(self._specs[name])
        return self._made[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    def close(self) -> None:
        for cluster in self._made.values():
            cluster.close()
        self._made.clear()


# --- deciding about an existing mesh ------------------------------------------------------------------


@dataclass(frozen=True)
class MeshDecision:
    action: Literal["install", "reuse", "replace"]
    reason: str
    replaced: InstallRecord | None = None


def decide_mesh(
    spec: MeshSpec,
    records: Mapping[str, InstallRecord | None],
    marks: Mapping[str, MeshMarks],
    *,
    disposable: bool,
    install_over: bool = False,
) -> MeshDecision:
    """What to do given each cluster's install record and the marks of a control plane found in it.

    Disposable clusters (kind) are overwritten when a different meshproof install is recorded; shared ones
    (openshift, existing) never, because the other install may be someone's. A control plane meshproof
    did not install is never installed over unless `install_over` (--install-over-existing-mesh) says so,
    on any provider: it may be an OSSM or revisioned mesh someone depends on. Raises ProvisionError (one
    line, naming what was found) to refuse.
    """
    mismatched = {name: rec for name, rec in records.items() if rec is not None and not rec.matches(spec)}
    if mismatched:
        name, rec = sorted(mismatched.items())[0]
        if not disposable:
            raise ProvisionError(
                f"cluster {name} already has a different meshproof install ({rec.summary}); "
                "remove it first or rerun with the options it was installed with"
            )
        return MeshDecision("replace", f"cluster {name} had a different install ({rec.summary})", rec)
    if records and all(rec is not None for rec in records.values()):
        return MeshDecision("reuse", "every cluster records this exact install")
    foreign = {
        name: found
        for name, found in sorted(marks.items())
        if found and records.get(name) is None and not found.started_by_meshproof
    }
    if foreign:
        name, found = next(iter(foreign.items()))
        if not install_over:
            raise ProvisionError(
                f"cluster {name} already runs an Istio control plane that meshproof did not install "
                f"(found {found.summary()}); use a cluster without Istio, or pass "
                f"--{INSTALL_OVER_FLAG} to install over it"
            )
        return MeshDecision(
            "install", f"installing over the control plane found on cluster {name} ({found.summary()})"
        )
    return MeshDecision("install", "no complete meshproof install recorded")


# --- the provisioner ----------------------------------------------------------------------------------


@dataclass
class Provisioner:
    cfg: RunConfig
    plan: InstallPlan
    shared_dir: Path
    timeouts: Timeouts
    cluster_factory: ClusterFactory
    progress: Progress | None = None
    runner: Runner = tools.run
    apply: ApplyFn = apply_plan
    undo: UninstallFn = uninstall
    provider: Provider = field(init=False)
    clusters: LazyClusters = field(init=False)

    def __post_init__(self) -> None:
        self.provider = provider_for(self.plan.spec.provider)
        self.clusters = LazyClusters(self.plan.spec.clusters, self.cluster_factory)

    @property
    def spec(self) -> MeshSpec:
        return self.plan.spec

    def _once(self, key: str) -> RunOnce:
        # A waiting worker must outlast the provisioning worker's whole budget.
        budget = self.timeouts.cluster_create * len(self.spec.clusters) + self.timeouts.install * 4
        return RunOnce(self.shared_dir, key, lock_timeout=budget)

    def _common(self) -> dict[str, Any]:
        return {
            "timeouts": self.timeouts,
            "kubeconfig": self.cfg.kubeconfig,
            "progress": self.progress,
            "runner": self.runner,
        }

    # --- clusters ---------------------------------------------------------------------------------

    def ensure_clusters(self) -> dict[str, Any]:
        return self._once("clusters").ensure(self.spec.fingerprint(), self._provision_clusters)

    def _provision_clusters(self) -> dict[str, Any]:
        self.provider.before_provision(self.cfg, self.spec)
        executed = self.apply(self.plan, self.clusters, stages=("cluster", "platform"), **self._common())
        facts = self.provider.check_clusters(self.spec, self.clusters)
        for name, fact in sorted(facts.items()):
            self._say(f"cluster {name}: {fact}")
        return {"executed": executed, "facts": facts}

    # --- mesh -------------------------------------------------------------------------------------

    def ensure_mesh(self) -> dict[str, Any]:
        return self._once("mesh").ensure(self.spec.fingerprint(), self._install_mesh)

    def _install_mesh(self) -> dict[str, Any]:
        records = {name: read_record(cluster) for name, cluster in self.clusters.items()}
        # Marks matter only where no meshproof install is recorded; a reused mesh needs no cluster-wide reads.
        marks = {name: self._mesh_marks(self.clusters[name]) for name, rec in records.items() if rec is None}
        decision = decide_mesh(
            self.spec,
            records,
            marks,
            disposable=self.provider.owns_clusters,
            install_over=self.cfg.install_over_existing_mesh,
        )
        self._say(f"mesh: {decision.action} ({decision.reason})")
        if decision.action == "reuse":
            return {"installed": False, "executed": []}
        if decision.replaced is not None:
            contexts = {c.name: c.context for c in self.spec.clusters}
            old_plan = plan_for_spec(decision.replaced.spec(contexts))
            problems = self.undo(old_plan, self.clusters, stages=("mesh",), **self._common())
            if problems:
                raise ProvisionError(f"could not remove the earlier install: {problems[0]}")
        executed = self.apply(self.plan, self.clusters, stages=("mesh",), **self._common())
        return {"installed": True, "executed": executed}

    def _mesh_marks(self, cluster: Cluster) -> MeshMarks:
        return find_mesh_marks(cluster, self.spec.istio_namespace)

    # --- teardown ---------------------------------------------------------------------------------

    def teardown(self, *, failed: bool) -> list[str]:
        """Remove what this run created: the mesh (unless its clusters go too), then created clusters.

        Returns one line per problem; nothing is removed when --keep-cluster, or when the run failed and
        --keep-on-failure is set.
        """
        if self.cfg.keep_cluster or (failed and self.cfg.keep_on_failure):
            why = "--keep-cluster" if self.cfg.keep_cluster else "--keep-on-failure and the run failed"
            self._say(f"teardown: keeping clusters and mesh ({why})")
            return []
        cluster_state = self._once("clusters").result() or {}
        mesh_state = self._once("mesh").result() or {}
        created = set(cluster_state.get("executed") or [])
        problems: list[str] = []
        if mesh_state.get("installed") and not self._clusters_go_away(created):
            problems += self.undo(
                self.plan, self.clusters, stages=("mesh",), only=set(mesh_state["executed"]), **self._common()
            )
        if created:
            problems += self.undo(
                self.plan, self.clusters, stages=("cluster", "platform"), only=created, **self._common()
            )
        self.clusters.close()
        return problems

    def _clusters_go_away(self, created: set[int]) -> bool:
        """True when every cluster was created by this run and its deletion is part of teardown."""
        create_steps = {
            step.cluster
            for index, step in self.plan.steps_in("cluster")
            if index in created
            and step.undo_command
            and step.command
            and step.command[:3] == ["kind", "create", "cluster"]
        }
        return all(c.name in create_steps for c in self.spec.clusters)

    def _say(self, message: str) -> None:
        (self.progress or log.info)(message)
