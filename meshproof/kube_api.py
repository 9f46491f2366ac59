"""The calls of meshproof.kube.Cluster as small structural protocols, each signature declared once.

Engine modules name only the calls they use: one role below, or a protocol that combines a few
(`class BenchCluster(ObjectApplier, PodExecutor, Protocol)`). Fixtures pass the real `Cluster`, and
engine tests pass small fakes that implement just those calls. The signatures mirror meshproof/kube.py;
change them together.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Protocol

from meshproof.kube_objects import Obj


class ExecOutput(Protocol):
    """What an exec returns (meshproof.kube_stream.ExecResult is one)."""

    @property
    def stdout(self) -> str: ...
    @property
    def stderr(self) -> str: ...
    @property
    def exit_code(self) -> int: ...


# --- objects ---------------------------------------------------------------------------------------


class ObjectApplier(Protocol):
    def apply(self, docs: str | Sequence[Obj], *, test_id: str | None = None) -> list[Obj]: ...


class ObjectGetter(Protocol):
    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> Obj | None: ...


class ObjectLister(Protocol):
    # `builtins.list`: inside this class `list` names the method
    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> builtins.list[Obj]: ...


class ObjectDeleter(Protocol):
    def delete(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None = None,
        wait: bool = False,
        timeout: float = 120.0,
    ) -> bool: ...


class LabelledFinder(Protocol):
    def find_labelled(self, label_selector: str, *, namespaced: bool | None = None) -> list[Obj]: ...


# --- waits -----------------------------------------------------------------------------------------


class ConditionWaiter(Protocol):
    def wait_for_condition(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None,
        condition: str,
        *,
        status: str = "True",
        timeout: float,
    ) -> Obj: ...


class RolloutWaiter(Protocol):
    def wait_rollout(self, kind: str, name: str, namespace: str, *, timeout: float) -> Obj: ...


# --- pods ------------------------------------------------------------------------------------------


class PodLister(Protocol):
    def pods(self, namespace: str, label_selector: str | None = None) -> list[Obj]: ...


class EventReader(Protocol):
    def events(self, namespace: str, field_selector: str | None = None) -> list[Obj]: ...


class LogReader(Protocol):
    def logs(
        self,
        pod: str,
        namespace: str,
        container: str | None = None,
        previous: bool = False,
        since_seconds: int | None = None,
        tail_lines: int | None = None,
    ) -> str: ...


class PodExecutor(Protocol):
    def exec(
        self,
        pod: str,
        namespace: str,
        command: Sequence[str],
        container: str | None = None,
        timeout: float = 60.0,
        stdin: str | None = None,
    ) -> ExecOutput: ...


class PortForwarding(Protocol):
    def port_forward(self, pod: str, namespace: str, port: int) -> AbstractContextManager[int]: ...


if TYPE_CHECKING:
    from meshproof.kube import Cluster

    class _EveryRole(
        ObjectApplier,
        ObjectGetter,
        ObjectLister,
        ObjectDeleter,
        LabelledFinder,
        ConditionWaiter,
        RolloutWaiter,
        PodLister,
        EventReader,
        LogReader,
        PodExecutor,
        PortForwarding,
        Protocol,
    ): ...

    def _cluster_plays_every_role(cluster: Cluster) -> _EveryRole:
        """Never called: mypy checks here that the real Cluster still fits every protocol above."""
        return cluster
