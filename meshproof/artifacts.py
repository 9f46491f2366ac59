"""Dump what a failed test touched, redacted, into `<results>/artifacts/<test-id>/<cluster>/`.

Per cluster: every object carrying the test's `meshproof.io/test-id` label (YAML), and for each namespace
the test touched (its objects' namespaces, its labelled Namespaces, and any it registered): pods (YAML and a
one-line summary each), container logs incl. the previous container's when it restarted, and events.
Collected right when the test fails, before fixture teardown changes the cluster (suite-anchors §2:
Sail's JustAfterEach), and written to files with only a pointer printed, never to the console (§2 #2029).

Collection never raises: a part that fails is noted in the dump's README.txt and the rest goes on.
The number of dumps per run is capped across xdist workers by a counter file under a lock.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import yaml
from filelock import FileLock

from meshproof.kube_api import EventReader, LabelledFinder, LogReader, PodLister
from meshproof.kube_objects import selector_for_test
from meshproof.kube_wait import pod_summary
from meshproof.redact import redact_object, redact_text

log = logging.getLogger("meshproof.artifacts")

DEFAULT_MAX_DUMPS = 20
LOG_TAIL_LINES = 5000  # enough for a test's window; a day-old istiod log is not what anyone reads
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")
_COUNTER_FILE = ".dump-count"


@runtime_checkable
class DumpSource(LabelledFinder, PodLister, EventReader, LogReader, Protocol):
    """What a dump needs from a cluster; `meshproof.kube.Cluster` provides it."""

    name: str


@dataclass
class Dump:
    """Where a dump went, how many files it wrote, and what could not be collected."""

    path: Path
    files: int = 0
    problems: list[str] = field(default_factory=list)


def sources_from(value: object) -> list[DumpSource]:
    """Clusters from a fixture value: one cluster, a mapping of them, or a sequence of them."""
    if isinstance(value, DumpSource):
        return [value]
    if isinstance(value, Mapping):
        return [v for v in value.values() if isinstance(v, DumpSource)]
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return [v for v in value if isinstance(v, DumpSource)]
    return []


def unique_sources(*values: object) -> list[DumpSource]:
    """The clusters in several fixture values, each once (by name), in first-seen order.

    A test's `cluster` is also one of its `clusters` (the fixture is built from that mapping), so reading
    both would dump the same cluster twice.
    """
    seen: dict[str, DumpSource] = {}
    for value in values:
        for source in sources_from(value):
            seen.setdefault(source.name, source)
    return list(seen.values())


class ArtifactDumper:
    def __init__(
        self, results_dir: Path, max_dumps: int = DEFAULT_MAX_DUMPS, log_tail_lines: int = LOG_TAIL_LINES
    ):
        self.artifacts_dir = results_dir / "artifacts"
        self.max_dumps = max_dumps
        self.log_tail_lines = log_tail_lines

    def claim_slot(self) -> bool:
        """Count one dump against the run's cap; False once the cap is reached (shared by xdist workers)."""
        if self.max_dumps <= 0:
            return False
        self.artifacts_dir.mkdir(parents=True, exist_ok=True)
        counter = self.artifacts_dir / _COUNTER_FILE
        with FileLock(str(counter) + ".lock", timeout=30):
            used = int(counter.read_text() or 0) if counter.exists() else 0
            if used >= self.max_dumps:
                return False
            counter.write_text(str(used + 1))
        return True

    def dump(
        self,
        test_id: str | None,
        clusters: Sequence[DumpSource],
        extra_namespaces: Iterable[str] = (),
        dirname: str | None = None,
    ) -> Dump:
        dest = _unique_dir(self.artifacts_dir / safe_name(dirname or test_id or "unnamed-test"))
        result = Dump(dest)
        clusters = unique_sources(clusters)  # one folder per cluster, however the caller gathered them
        extra = sorted(set(extra_namespaces))
        for cluster in clusters:
            _ClusterDump(cluster, dest / safe_name(cluster.name), result, self.log_tail_lines).run(
                test_id, extra
            )
        _write_readme(dest, test_id, clusters, extra, result)
        return result


class _ClusterDump:
    def __init__(self, cluster: DumpSource, root: Path, result: Dump, tail_lines: int) -> None:
        self.cluster, self.root, self.result, self.tail_lines = cluster, root, result, tail_lines

    def run(self, test_id: str | None, extra_namespaces: Sequence[str]) -> None:
        objects = (
            self._try(f"find objects labelled {test_id}", lambda: self._objects(test_id), [])
            if test_id
            else []
        )
        namespaces = set(extra_namespaces)
        for obj in objects:
            meta = obj.get("metadata") or {}
            if obj.get("kind") == "Namespace":
                namespaces.add(str(meta.get("name")))
            elif meta.get("namespace"):
                namespaces.add(str(meta["namespace"]))
        for namespace in sorted(namespaces):
            self._try(f"pods of namespace {namespace}", partial(self._pods, namespace), None)
            self._try(f"events of namespace {namespace}", partial(self._events, namespace), None)

    def _objects(self, test_id: str) -> list[dict[str, Any]]:
        objects = self.cluster.find_labelled(selector_for_test(test_id))
        for obj in objects:
            meta = obj.get("metadata") or {}
            where = meta.get("namespace") or "_cluster"
            self._write_yaml(Path("objects", where, f"{obj.get('kind')}.{meta.get('name')}.yaml"), obj)
        return objects

    def _pods(self, namespace: str) -> None:
        pods = self.cluster.pods(namespace)
        summaries = [pod_summary(p) for p in pods]
        self._write_text(
            Path("pods", namespace, "_summary.txt"), "\n".join(summaries) + "\n" if pods else "no pods\n"
        )
        for pod in pods:
            name = str(pod.get("metadata", {}).get("name"))
            self._write_yaml(Path("pods", namespace, f"{name}.yaml"), pod)
            for container, restarted in _containers(pod):
                self._log(namespace, name, container, previous=False)
                if restarted:
                    self._log(namespace, name, container, previous=True)

    def _log(self, namespace: str, pod: str, container: str, previous: bool) -> None:
        suffix = ".previous.log" if previous else ".log"
        what = f"{'previous ' if previous else ''}logs of {namespace}/{pod} container {container}"
        text = self._try(
            what,
            lambda: self.cluster.logs(
                pod, namespace, container, previous=previous, tail_lines=self.tail_lines
            ),
            None,
        )
        if text is not None:
            self._write_text(Path("logs", namespace, pod, container + suffix), text)

    def _events(self, namespace: str) -> None:
        events = self.cluster.events(namespace)
        self._write_text(Path("events", f"{namespace}.txt"), "".join(_event_line(e) + "\n" for e in events))
        self._write_yaml(Path("events", f"{namespace}.yaml"), events)

    def _try(self, what: str, fn: Callable[[], Any], default: Any) -> Any:
        try:
            return fn()
        except Exception as exc:
            message = redact_text(
                f"{self.cluster.name}: {what}: {type(exc).__name__}: {' '.join(str(exc).split())}"
            )
            log.warning("artifact collection: %s", message)
            self.result.problems.append(message[:500])
            return default

    def _write_yaml(self, relative: Path, data: Any) -> None:
        clean = redact_object(_without_noise(data))
        self._write_text(
            relative, yaml.safe_dump(clean, sort_keys=False, default_flow_style=False), redact=False
        )

    def _write_text(self, relative: Path, text: str, redact: bool = True) -> None:
        path = self.root / Path(*(safe_name(part) for part in relative.parts))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(redact_text(text) if redact else text)
        self.result.files += 1


def _containers(pod: Mapping[str, Any]) -> list[tuple[str, bool]]:
    """(container name, restarted?) for init, main and ephemeral containers."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    restarts = {
        cs.get("name"): bool(cs.get("restartCount"))
        for key in ("initContainerStatuses", "containerStatuses", "ephemeralContainerStatuses")
        for cs in status.get(key) or []
    }
    names = [
        str(c.get("name"))
        for key in ("initContainers", "containers", "ephemeralContainers")
        for c in spec.get(key) or []
    ]
    return [(name, restarts.get(name, False)) for name in names]


def _event_line(event: Mapping[str, Any]) -> str:
    obj = event.get("involvedObject") or event.get("regarding") or {}
    when = event.get("lastTimestamp") or event.get("eventTime") or event.get("firstTimestamp") or "-"
    count = event.get("count") or 1
    message = " ".join(str(event.get("message") or event.get("note") or "").split())
    what = f"{event.get('type', '-')} {event.get('reason', '-')} {obj.get('kind')}/{obj.get('name')}"
    return f"{when} {what}: {message}" + (f" (x{count})" if count > 1 else "")


def _without_noise(data: Any) -> Any:
    """Drop managedFields: pages of field ownership nobody reads when debugging a failure."""
    if isinstance(data, list):
        return [_without_noise(d) for d in data]
    if isinstance(data, dict):
        meta = data.get("metadata")
        if isinstance(meta, dict) and "managedFields" in meta:
            data = {**data, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}
    return data


def _write_readme(
    dest: Path, test_id: str | None, clusters: Sequence[DumpSource], extra: list[str], dump: Dump
) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    lines = [
        f"test id: {test_id or '(none: the test did not use the test_id fixture, so no labelled objects)'}",
        f"clusters: {', '.join(c.name for c in clusters) or 'none'}",
        f"extra namespaces registered by the test: {', '.join(extra) or 'none'}",
        f"files written: {dump.files}",
        "layout: <cluster>/objects/<namespace|_cluster>/<Kind>.<name>.yaml, <cluster>/pods/<ns>/,"
        " <cluster>/logs/<ns>/<pod>/<container>[.previous].log, <cluster>/events/<ns>.txt",
        "secrets are redacted (Secret data, tokens, kubeconfig credentials, private keys)",
    ]
    if dump.problems:
        lines.append("could not collect:")
        lines.extend(f"  - {p}" for p in dump.problems)
    (dest / "README.txt").write_text("\n".join(lines) + "\n")


def safe_name(text: str) -> str:
    """A file or directory name: anything but letters, digits, '_', '.', '-' becomes '_'."""
    cleaned = _SAFE_NAME.sub("_", text).strip(".") or "_"
    return cleaned[:120]


def _unique_dir(path: Path) -> Path:
    candidate, n = path, 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}-{n}")
    return candidate
