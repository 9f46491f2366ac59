"""The executor: run an InstallPlan's steps against live clusters, and reverse them.

Commands run through `meshproof.tools.run` (logged, with a deadline), manifests through `Cluster.apply`
(server-side apply, labelled with the run id), waits through the Cluster wait helpers with the run's
scaled budgets. Long waits print a line before and after, so a person watching knows what is slow.
"""

from __future__ import annotations

import copy
import logging
import tempfile
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from meshproof import tools
from meshproof.checks.verdict import Verdict
from meshproof.mesh.certs import CACERTS_KIND, CLUSTER_ANNOTATION, GENERATED_ANNOTATION, SharedCa
from meshproof.mesh.health import crds_at_least
from meshproof.mesh.model import (
    STAGES,
    CrdBundle,
    InstallPlan,
    PlanStep,
    Stage,
    WaitSpec,
)
from meshproof.wait import Timeouts

if TYPE_CHECKING:
    from meshproof.kube import Cluster

log = logging.getLogger("meshproof.install")

Progress = Callable[[str], None]
# Probes answer in seconds; a probe that hangs must not eat the install budget.
PROBE_TIMEOUT = 60.0
CRD_API = "apiextensions.k8s.io/v1"


class Runner(Protocol):
    def __call__(
        self, args: Sequence[str], *, timeout: float, check: bool = True, env: Mapping[str, str] | None = None
    ) -> tools.CommandResult: ...


class InstallError(Exception):
    """A step failed; the message names the step, its cluster and the one-line cause."""


def apply_plan(
    plan: InstallPlan,
    clusters: Mapping[str, Cluster],
    *,
    timeouts: Timeouts,
    stages: Sequence[Stage] = STAGES,
    kubeconfig: Path | None = None,
    progress: Progress | None = None,
    runner: Runner = tools.run,
) -> list[int]:
    """Run the steps of `stages` in plan order. Returns the indices of the steps that ran (skipped ones,
    whose `skip_if` probe succeeded, are left out: they were there before and are not ours to undo).

    `clusters` may construct Cluster objects lazily: a cluster is first used after its creation step.
    Raises InstallError on the first failing step.
    """
    say = progress or log.info
    env = {"KUBECONFIG": str(kubeconfig)} if kubeconfig else None
    ca = SharedCa()
    executed: list[int] = []
    with tempfile.TemporaryDirectory(prefix="meshproof-plan-") as tmp:
        for index, step in plan.steps_in(*stages):
            label = f"step {index + 1}/{len(plan.steps)} '{step.title}' on {step.cluster}"
            try:
                if step.skip_if and _probe_succeeds(step.skip_if, runner, env):
                    say(f"{label}: already in place, skipped")
                    continue
                if step.skip_if_crds is not None:
                    in_place = crds_in_place(clusters[step.cluster], step.skip_if_crds)
                    if in_place.ok:
                        say(f"{label}: already in place ({in_place.reason}), skipped")
                        continue
                    say(f"{label}: needed ({in_place.reason})")
                if step.downloads and plan.spec.offline:
                    urls = ", ".join(d.url for d in step.downloads)
                    raise InstallError(
                        f"{label}: --offline: not downloading {urls}; {step.downloads[0].instead}"
                    )
                say(f"{label}: running")
                if step.command:
                    argv = materialize_command(step, Path(tmp), f"{index + 1:02d}")
                    budget = timeouts.cluster_create if step.stage == "cluster" else timeouts.install
                    runner(argv, timeout=budget, env=env)
                if step.manifests:
                    clusters[step.cluster].apply(materialize_manifests(step, ca, plan.spec.istio_namespace))
                for wait_spec in step.wait:
                    wait_for(clusters[step.cluster], wait_spec, timeouts, say)
            except InstallError:
                raise
            except Exception as exc:
                raise InstallError(f"{label} failed: {_one_line(exc)}") from exc
            executed.append(index)
    return executed


def uninstall(
    plan: InstallPlan,
    clusters: Mapping[str, Cluster],
    *,
    timeouts: Timeouts,
    stages: Sequence[Stage] = ("mesh",),
    only: Collection[int] | None = None,
    kubeconfig: Path | None = None,
    progress: Progress | None = None,
    runner: Runner = tools.run,
) -> list[str]:
    """Reverse the steps of `stages` (only the indices in `only`, when given), last step first.

    Keeps going past failures so one stuck object does not leave the rest behind; returns one line per
    problem (empty when everything went). Manifests are deleted and awaited, so an operator still running
    can finish its finalizers before it is itself removed by an earlier step's undo.
    """
    say = progress or log.info
    env = {"KUBECONFIG": str(kubeconfig)} if kubeconfig else None
    problems: list[str] = []
    for index, step in reversed(plan.steps_in(*stages)):
        if only is not None and index not in only:
            continue
        label = f"undo step {index + 1} '{step.title}' on {step.cluster}"
        say(label)
        if step.undo_command:
            try:
                runner(step.undo_command, timeout=timeouts.install, check=True, env=env)
            except Exception as exc:
                problems.append(f"{label}: {_one_line(exc)}")
        for doc in reversed(step.manifests):
            meta = doc.get("metadata") or {}
            try:
                clusters[step.cluster].delete(
                    str(doc["apiVersion"]),
                    str(doc["kind"]),
                    str(meta["name"]),
                    meta.get("namespace"),
                    wait=True,
                    timeout=timeouts.install,
                )
            except Exception as exc:
                problems.append(f"{label}: delete {doc.get('kind')} {meta.get('name')}: {_one_line(exc)}")
    return problems


# --- pieces -------------------------------------------------------------------------------------------


def materialize_command(step: PlanStep, directory: Path, prefix: str) -> list[str]:
    """The step's command with each document written to a file and its placeholder replaced by the path."""
    assert step.command is not None
    files = step.write_documents(directory, f"{prefix}-{step.slug}")
    return step.command_reading({placeholder: str(path) for placeholder, path in files.items()})


def materialize_manifests(step: PlanStep, ca: SharedCa, istio_namespace: str) -> list[dict[str, Any]]:
    """The step's manifests, with generated Secrets (the plug-in CA) filled in. The plan is not modified."""
    docs = copy.deepcopy(step.manifests)
    for doc in docs:
        annotations = (doc.get("metadata") or {}).get("annotations") or {}
        if annotations.get(GENERATED_ANNOTATION) == CACERTS_KIND:
            cluster = str(annotations.get(CLUSTER_ANNOTATION, step.cluster))
            doc["stringData"] = ca.cacerts_for(cluster, istio_namespace)
    return docs


def crds_in_place(cluster: Cluster, bundle: CrdBundle) -> Verdict:
    """Whether the bundle's CRDs are installed at its version or newer (one GET per CRD)."""
    crds = {name: cluster.get(CRD_API, "CustomResourceDefinition", name) for name in bundle.names}
    return crds_at_least(crds, bundle.version_annotation, bundle.min_version)


def wait_for(cluster: Cluster, spec: WaitSpec, timeouts: Timeouts, say: Progress) -> None:
    budget = float(getattr(timeouts, spec.budget))
    say(f"  waiting up to {budget:.0f}s: {spec.describe()}")
    started = time.monotonic()
    if spec.condition is not None:
        cluster.wait_for_condition(
            spec.api_version, spec.kind, spec.name, spec.namespace, spec.condition, timeout=budget
        )
    elif spec.rollout:
        if spec.namespace is None:
            raise ValueError(f"rollout wait on {spec.target} needs a namespace")
        cluster.wait_rollout(spec.kind, spec.name, spec.namespace, timeout=budget)
    else:
        assert spec.field is not None
        field, equals = spec.field, spec.equals
        cluster.wait_for(
            spec.api_version,
            spec.kind,
            spec.name,
            spec.namespace,
            lambda obj: field_satisfied(obj, field, equals),
            spec.describe(),
            timeout=budget,
        )
    say(f"  ok after {time.monotonic() - started:.0f}s: {spec.describe()}")


def field_satisfied(obj: Mapping[str, Any], path: str, equals: str | None) -> Verdict:
    """Whether `obj` at dotted `path` is non-empty (equals None) or equals `equals` (as text)."""
    value: Any = obj
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return Verdict.failed(f"{path} not set yet")
        value = value[part]
    if equals is None:
        return Verdict(bool(value), f"{path} = {value!r}")
    return Verdict(str(value) == equals, f"{path} = {value!r}, want {equals!r}")


def _probe_succeeds(probe: Sequence[str], runner: Runner, env: Mapping[str, str] | None) -> bool:
    try:
        return runner(probe, timeout=PROBE_TIMEOUT, check=False, env=env).returncode == 0
    except tools.ToolError:
        return False


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " | ".join(line.strip() for line in text.splitlines() if line.strip())
