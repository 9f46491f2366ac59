"""The test apps: one namespace per workload class, deployed once per run and shared by every test.

Classes (suite-anchors §3 "Fixtures": Istio shares echo deployments per suite because each new
deployment costs ~30 s against ~10 ms of test):

- `sidecar`      namespace enrolled for sidecar injection (istio-facts §2.1)
- `ambient`      namespace captured by ztunnel (`istio.io/dataplane-mode=ambient`, §2.2)
- `waypoint`     ambient namespace whose server Service is bound to a service waypoint (§2.3)
- `out-of-mesh`  no proxy at all: the plaintext client of the negative controls

Every in-mesh namespace runs a `server` (Deployment + Service) and a `client` (Deployment); the
out-of-mesh namespace runs only a `client`. Both roles use one pod template: a fortio server (the echo
that reflects each request) and a curl container to send requests from inside the pod.

Pure rendering and state checks live here; the orchestration (`deploy`, `remove`) drives a Cluster
through the handful of calls of meshproof.kube.Cluster it needs (see `ClusterApi`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import jinja2
import yaml
from filelock import FileLock, Timeout

from meshproof.kube_api import (
    ConditionWaiter,
    ObjectApplier,
    ObjectDeleter,
    ObjectGetter,
    PodLister,
    RolloutWaiter,
)
from meshproof.tools import FORTIO_VERSION

log = logging.getLogger("meshproof.workloads")

MANIFESTS_DIR = Path(__file__).resolve().parent.parent / "manifests" / "workloads"

# Images, pinned by tag. Users who mirror images (air-gapped OpenShift) set MESHPROOF_FORTIO_IMAGE /
# MESHPROOF_CURL_IMAGE and should pin by digest there (`repo@sha256:...`): a tag can be moved, a digest
# cannot. No digest is pinned here because it could not be verified against the registry from the machine
# this was written on.
#
# fortio: its /debug endpoint reflects the request line, every header (incl. X-Forwarded-Client-Cert),
# the source address and the server's hostname (output-formats §1.4), and `fortio server` also runs a TCP
# echo on 8078, so one 4 MB scratch image serves both L7 and L4 checks. It is also the benchmark's load
# tool: one pin (meshproof.tools.FORTIO_VERSION) for the CLI and the image, so the formats the parsers
# were tested on locally are the formats the pods produce.
FORTIO_IMAGE = f"docker.io/fortio/fortio:{FORTIO_VERSION}"
# curl: the mesh's client-visible failure signals are documented as curl exit codes (56 reset, 52 empty
# reply, 7 refused, 28 timeout; output-formats §5.3), and `-w '%{json}'` reports exit code, error text
# and timings per transfer (curl >= 7.75; `%{header_json}` >= 7.83). The alpine-based image has the
# /bin/sh the new-connection loop needs.
CURL_IMAGE = "docker.io/curlimages/curl:8.11.1"

HTTP_PORT = 8080  # fortio http echo (+ /debug)
TCP_PORT = 8078  # fortio tcp echo
APP_CONTAINER = "app"  # the fortio server, also the TCP client (`fortio load tcp://`)
CURL_CONTAINER = "curl"  # the HTTP client
SERVER = "server"
CLIENT = "client"
WAYPOINT_NAME = "waypoint"
# An unprivileged UID that is not Istio's proxy UID 1337: traffic from UID 1337 bypasses sidecar capture.
DEFAULT_RUN_AS_USER = 65532
CLUSTER_DOMAIN = "cluster.local"
CLASS_LABEL = "meshproof.io/workload-class"

# istio-facts §2: enrollment signals a pod carries once the mesh took it in.
SIDECAR_STATUS_ANNOTATION = "sidecar.istio.io/status"
AMBIENT_REDIRECTION_ANNOTATION = "ambient.istio.io/redirection"
SIDECAR_CONTAINER = "istio-proxy"

_NAMESPACE_MAX = 63


class WorkloadClass(StrEnum):
    SIDECAR = "sidecar"
    AMBIENT = "ambient"
    WAYPOINT = "waypoint"
    OUT_OF_MESH = "out-of-mesh"

    @property
    def mesh_mode(self) -> str | None:
        """The mesh mode this class needs installed (None: any)."""
        return {
            WorkloadClass.SIDECAR: "sidecar",
            WorkloadClass.AMBIENT: "ambient",
            WorkloadClass.WAYPOINT: "ambient",
        }.get(self)

    @property
    def in_mesh(self) -> bool:
        return self is not WorkloadClass.OUT_OF_MESH

    @property
    def label(self) -> str:
        """How test ids name the class: the waypoint class is traffic *through* a waypoint."""
        return "ambient->waypoint" if self is WorkloadClass.WAYPOINT else self.value


def classes_for_mode(mode: str) -> tuple[WorkloadClass, ...]:
    """The classes a run in `mode` deploys: one mesh mode per run, plus the out-of-mesh client."""
    if mode == "sidecar":
        return (WorkloadClass.SIDECAR, WorkloadClass.OUT_OF_MESH)
    if mode == "ambient":
        return (WorkloadClass.AMBIENT, WorkloadClass.WAYPOINT, WorkloadClass.OUT_OF_MESH)
    raise ValueError(f"unknown mesh mode {mode!r}: expected sidecar or ambient")


def namespace_name(run_id: str, workload_class: WorkloadClass) -> str:
    """`mp-<run id>-<class>`, DNS-label safe; over-long ids are shortened with a stable hash."""
    return run_namespace(run_id, workload_class.value)


def run_namespace(run_id: str, suffix: str) -> str:
    """`mp-<run id>-<suffix>`, DNS-label safe; over-long ids are shortened with a stable hash."""
    slug = re.sub(r"[^a-z0-9-]+", "-", run_id.lower()).strip("-") or "run"
    name = f"mp-{slug}-{suffix}"
    if len(name) <= _NAMESPACE_MAX:
        return name
    digest = hashlib.sha256(run_id.encode()).hexdigest()[:8]
    room = _NAMESPACE_MAX - len(f"mp--{digest}-{suffix}")
    return f"mp-{slug[:room].rstrip('-')}-{digest}-{suffix}"


@dataclass(frozen=True)
class Workload:
    """One Deployment of a class. Its name is also its app label and its service account."""

    workload_class: WorkloadClass
    namespace: str
    name: str

    @property
    def service_account(self) -> str:
        return self.name

    @property
    def selector(self) -> str:
        return f"app={self.name}"

    @property
    def host(self) -> str:
        """The Service's cluster DNS name (servers only have a Service)."""
        return f"{self.name}.{self.namespace}.svc.{CLUSTER_DOMAIN}"

    def principal(self, trust_domain: str) -> str:
        """The AuthorizationPolicy principal (SPIFFE id without the scheme, istio-facts §3.4)."""
        return f"{trust_domain}/ns/{self.namespace}/sa/{self.service_account}"

    def __str__(self) -> str:
        return f"{self.workload_class.label}:{self.namespace}/{self.name}"


@dataclass(frozen=True)
class WorkloadImages:
    fortio: str = FORTIO_IMAGE
    curl: str = CURL_IMAGE

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WorkloadImages:
        env = os.environ if env is None else env
        return cls(
            fortio=env.get("MESHPROOF_FORTIO_IMAGE") or FORTIO_IMAGE,
            curl=env.get("MESHPROOF_CURL_IMAGE") or CURL_IMAGE,
        )


@dataclass(frozen=True)
class RenderOptions:
    """What rendering needs to know about the mesh and the platform."""

    revision: str | None = None  # the control-plane revision from the mesh fixture
    run_as_user: int | None = DEFAULT_RUN_AS_USER  # None on OpenShift: the SCC assigns the UID
    images: WorkloadImages = field(default_factory=WorkloadImages)


@dataclass(frozen=True)
class WorkloadSet:
    """The classes deployed for one run and their workloads."""

    run_id: str
    classes: tuple[WorkloadClass, ...]

    def namespace(self, workload_class: WorkloadClass) -> str:
        self._require(workload_class)
        return namespace_name(self.run_id, workload_class)

    @property
    def namespaces(self) -> list[str]:
        return [self.namespace(c) for c in self.classes]

    def server(self, workload_class: WorkloadClass) -> Workload:
        if not workload_class.in_mesh:
            raise ValueError("the out-of-mesh class has no server: it only sends plaintext")
        return Workload(workload_class, self.namespace(workload_class), SERVER)

    def client(self, workload_class: WorkloadClass) -> Workload:
        return Workload(workload_class, self.namespace(workload_class), CLIENT)

    def workloads(self, workload_class: WorkloadClass) -> list[Workload]:
        members = [self.client(workload_class)]
        if workload_class.in_mesh:
            members.insert(0, self.server(workload_class))
        return members

    def _require(self, workload_class: WorkloadClass) -> None:
        if workload_class not in self.classes:
            deployed = ", ".join(c.value for c in self.classes)
            raise LookupError(
                f"workload class {workload_class.value} is not deployed in this run ({deployed})"
            )


def workload_set(run_id: str, mode: str) -> WorkloadSet:
    return WorkloadSet(run_id=run_id, classes=classes_for_mode(mode))


# --- rendering -------------------------------------------------------------------------------------


def uses_default_revision(revision: str | None) -> bool:
    return not revision or revision == "default"


def namespace_labels(workload_class: WorkloadClass, revision: str | None) -> dict[str, str]:
    """Enrollment labels (istio-facts §2.1, §2.2)."""
    labels = {CLASS_LABEL: workload_class.value}
    if workload_class is WorkloadClass.SIDECAR:
        # The legacy label wins over istio.io/rev when both are present (§2.1), so set exactly one.
        if uses_default_revision(revision):
            labels["istio-injection"] = "enabled"
        else:
            labels["istio.io/rev"] = str(revision)
    elif workload_class in (WorkloadClass.AMBIENT, WorkloadClass.WAYPOINT):
        # No revision label here: istio.io/rev on a namespace selects it for sidecar injection.
        labels["istio.io/dataplane-mode"] = "ambient"
    else:
        # Explicitly off: no injector webhook matches istio-injection=disabled, whatever the revision setup.
        labels["istio-injection"] = "disabled"
    return labels


def pod_labels(workload_class: WorkloadClass) -> dict[str, str]:
    if workload_class is WorkloadClass.OUT_OF_MESH:
        # Belt and braces for the negative controls: never injected, never captured (§2.1, §2.2).
        return {"sidecar.istio.io/inject": "false", "istio.io/dataplane-mode": "none"}
    return {}


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(MANIFESTS_DIR)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # YAML, not HTML; values are quoted with the tojson filter in the templates
    )


def echo_text(
    workload: Workload,
    options: RenderOptions,
    *,
    with_service: bool,
    service_labels: Mapping[str, str],
    pod_annotations: Mapping[str, str] | None = None,
) -> str:
    """The echo app (fortio server + curl client) for one workload, with its Service when asked."""
    return (
        _environment()
        .get_template("echo.yaml.j2")
        .render(
            namespace=workload.namespace,
            name=workload.name,
            workload_class=workload.workload_class.value,
            pod_labels=pod_labels(workload.workload_class),
            pod_annotations=dict(pod_annotations or {}),
            with_service=with_service,
            service_labels=dict(service_labels),
            fortio_image=options.images.fortio,
            curl_image=options.images.curl,
            run_as_user=options.run_as_user,
            http_port=HTTP_PORT,
            tcp_port=TCP_PORT,
            app_container=APP_CONTAINER,
            curl_container=CURL_CONTAINER,
        )
    )


def render_template(template: str, **context: Any) -> list[dict]:
    """One template of manifests/workloads/ as objects, for suites that compose the shared apps their own way
    (the multicluster apps)."""
    return [d for d in yaml.safe_load_all(_environment().get_template(template).render(**context)) if d]


def render_class(workload_set: WorkloadSet, workload_class: WorkloadClass, options: RenderOptions) -> str:
    """Multi-document YAML for one class: its namespace, workloads and (waypoint class) the waypoint."""
    env = _environment()
    namespace = workload_set.namespace(workload_class)
    parts = [
        env.get_template("namespace.yaml.j2").render(
            namespace=namespace, labels=namespace_labels(workload_class, options.revision)
        )
    ]
    for workload in workload_set.workloads(workload_class):
        is_server = workload.name == SERVER
        service_labels = (
            {"istio.io/use-waypoint": WAYPOINT_NAME}
            if (is_server and workload_class is WorkloadClass.WAYPOINT)
            else {}
        )
        parts.append(echo_text(workload, options, with_service=is_server, service_labels=service_labels))
    if workload_class is WorkloadClass.WAYPOINT:
        gateway_labels = {"istio.io/waypoint-for": "service"}
        if not uses_default_revision(options.revision):
            gateway_labels["istio.io/rev"] = str(options.revision)  # as `istioctl waypoint -r` does (§2.3)
        parts.append(
            env.get_template("waypoint.yaml.j2").render(
                namespace=namespace, name=WAYPOINT_NAME, labels=gateway_labels
            )
        )
    return "---\n".join(p if p.endswith("\n") else p + "\n" for p in parts)


def render_extra_server(
    workload_set: WorkloadSet,
    workload_class: WorkloadClass,
    name: str,
    options: RenderOptions,
    *,
    pod_annotations: Mapping[str, str],
) -> str:
    """One more server (Deployment + Service) in a class namespace, with pod annotations: a test's own
    variant of the shared server (e.g. one excluded from sidecar capture), removed by the test."""
    workload = Workload(workload_class, workload_set.namespace(workload_class), name)
    return echo_text(workload, options, with_service=True, service_labels={}, pod_annotations=pod_annotations)


@contextmanager
def extra_server(
    cluster: ClusterApi,
    workload_set: WorkloadSet,
    workload_class: WorkloadClass,
    name: str,
    options: RenderOptions,
    *,
    pod_annotations: Mapping[str, str],
    rollout_timeout: float,
    test_id: str | None = None,
) -> Iterator[Workload]:
    """Deploy `render_extra_server`, wait for it to roll out, yield it; delete it afterwards, pass or fail."""
    workload = Workload(workload_class, workload_set.namespace(workload_class), name)
    cluster.apply(
        render_extra_server(workload_set, workload_class, name, options, pod_annotations=pod_annotations),
        test_id=test_id,
    )
    try:
        cluster.wait_rollout("Deployment", name, workload.namespace, timeout=rollout_timeout)
        yield workload
    finally:
        for api_version, kind in (("apps/v1", "Deployment"), ("v1", "Service"), ("v1", "ServiceAccount")):
            cluster.delete(api_version, kind, name, workload.namespace)


def render_documents(
    workload_set: WorkloadSet, workload_class: WorkloadClass, options: RenderOptions
) -> list[dict]:
    return [d for d in yaml.safe_load_all(render_class(workload_set, workload_class, options)) if d]


# --- state checks (pure) ---------------------------------------------------------------------------


def _containers(pod: Mapping[str, Any]) -> list[str]:
    spec = pod.get("spec") or {}
    return [c.get("name", "") for c in (spec.get("containers") or []) + (spec.get("initContainers") or [])]


def enrollment_problem(pod: Mapping[str, Any], workload_class: WorkloadClass) -> str | None:
    """Why `pod` is not enrolled the way its class says (None when it is). istio-facts §2, §10."""
    meta = pod.get("metadata") or {}
    name = meta.get("name", "?")
    annotations = meta.get("annotations") or {}
    injected = SIDECAR_STATUS_ANNOTATION in annotations
    has_proxy = SIDECAR_CONTAINER in _containers(pod)
    redirected = annotations.get(AMBIENT_REDIRECTION_ANNOTATION) == "enabled"
    if workload_class is WorkloadClass.SIDECAR:
        if not (injected and has_proxy):
            seen = f"annotation {SIDECAR_STATUS_ANNOTATION}: {_yes(injected)}, "
            seen += f"container {SIDECAR_CONTAINER}: {_yes(has_proxy)}"
            hint = "is the injector webhook installed for this revision?"
            return f"pod {name} has no injected sidecar ({seen}); {hint}"
        return None
    if workload_class in (WorkloadClass.AMBIENT, WorkloadClass.WAYPOINT):
        if injected or has_proxy:
            return f"pod {name} got a sidecar in an ambient namespace; sidecar wins over ambient capture"
        if not redirected:
            return (
                f"pod {name} lacks {AMBIENT_REDIRECTION_ANNOTATION}=enabled: istio-cni did not capture it "
                "for ztunnel (is the CNI node agent running, and ztunnel ready on its node?)"
            )
        return None
    if injected or has_proxy or redirected:
        return f"pod {name} is in the mesh although its namespace is the out-of-mesh control"
    return None


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def running_pod_name(pods: Sequence[Mapping[str, Any]], workload: Workload) -> str:
    """The name of a Running, Ready, not-terminating pod of `workload` (the first by name)."""
    candidates = sorted(
        (p for p in pods if _is_ready(p) and not (p.get("metadata") or {}).get("deletionTimestamp")),
        key=lambda p: str((p.get("metadata") or {}).get("name", "")),
    )
    if not candidates:
        raise WorkloadNotReady(f"no ready pod for {workload} (selector {workload.selector})")
    return str(candidates[0]["metadata"]["name"])


def _is_ready(pod: Mapping[str, Any]) -> bool:
    status = pod.get("status") or {}
    if status.get("phase") != "Running":
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


class WorkloadNotReady(RuntimeError):
    """A workload has no pod to send from or to; the message names it."""


# --- orchestration ---------------------------------------------------------------------------------


class ClusterApi(PodLister, ObjectApplier, ObjectDeleter, RolloutWaiter, ConditionWaiter, Protocol):
    """The part of meshproof.kube.Cluster the workloads need (a fake implements it in unit tests)."""


def pod_name(cluster: PodLister, workload: Workload) -> str:
    return running_pod_name(cluster.pods(workload.namespace, workload.selector), workload)


def pod_of(cluster: PodLister, workload: Workload) -> dict:
    """The pod object `pod_name` would pick (for its IP and node)."""
    pods = cluster.pods(workload.namespace, workload.selector)
    name = running_pod_name(pods, workload)
    return next(p for p in pods if p["metadata"]["name"] == name)


def deploy(
    cluster: ClusterApi,
    workloads: WorkloadSet,
    options: RenderOptions,
    *,
    rollout_timeout: float,
    waypoint_timeout: float,
) -> None:
    """Apply every class, then wait until each is serving and enrolled as its class says.

    Everything is applied first and waited on after, so the classes start in parallel. Idempotent
    (server-side apply), so a second caller (another xdist worker) only waits.
    """
    for workload_class in workloads.classes:
        cluster.apply(render_class(workloads, workload_class, options))
    for workload_class in workloads.classes:
        namespace = workloads.namespace(workload_class)
        if workload_class is WorkloadClass.WAYPOINT:
            # Readiness of a waypoint is its Gateway Programmed (istio-facts §2.3).
            cluster.wait_for_condition(
                "gateway.networking.k8s.io/v1",
                "Gateway",
                WAYPOINT_NAME,
                namespace,
                "Programmed",
                timeout=waypoint_timeout,
            )
        for workload in workloads.workloads(workload_class):
            cluster.wait_rollout("Deployment", workload.name, namespace, timeout=rollout_timeout)
            problems = [
                problem
                for pod in cluster.pods(namespace, workload.selector)
                if (problem := enrollment_problem(pod, workload_class)) is not None
            ]
            if problems:
                raise EnrollmentError(f"{workload}: {problems[0]}")
    log.info("workloads ready: %s", ", ".join(workloads.namespaces))


class EnrollmentError(RuntimeError):
    """A class's pods are not in the mesh the way the class says; tests of that class would prove nothing."""


def remove(cluster: ClusterApi, workloads: WorkloadSet) -> None:
    """Delete the run's namespaces (everything in them goes with them)."""
    for namespace in workloads.namespaces:
        cluster.delete("v1", "Namespace", namespace)


SHARED_STATE_LOCK_TIMEOUT_S = 900.0  # longer than any one test's changes; a stuck holder fails loudly


class SharedStateBusy(RuntimeError):
    """Another test of the run held a shared object longer than the lock timeout."""


def _lock_file_name(key: str) -> str:
    return "." + re.sub(r"[^A-Za-z0-9._-]", "_", key) + ".lock"


@contextmanager
def exclusive(state_dir: Path, key: str, *, timeout: float = SHARED_STATE_LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold the run-wide lock on `key` (e.g. "server/<namespace>/<name>") for the block.

    A file lock in the run's workload state dir, so the pytest-xdist workers of a run take turns changing
    the same shared object (a fixed-name server, a Deployment's replicas, a remote secret, a namespace's
    policies). Waits at most `timeout` seconds, then raises SharedStateBusy naming the key and lock file.
    Not re-entrant: a process holding `key` must not ask for it again.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / _lock_file_name(key)
    lock = FileLock(str(path), timeout=timeout)
    try:
        lock.acquire()
    except Timeout:
        raise SharedStateBusy(
            f"waited {timeout:g}s for {key!r}: another test of this run still holds it ({path}); "
            "a test that changes shared state must undo it and release the lock"
        ) from None
    try:
        yield
    finally:
        lock.release(force=True)


class SharedWorkloads:
    """Deploy once per run even under pytest-xdist, and remove only when the last user is done.

    Every pytest process of a run (the xdist workers share the run id and results dir) calls `acquire`
    at session start and `release` at session end. A file lock serializes them: the first one deploys;
    the others re-apply (idempotent) and find everything ready. A counter in the state file tells the last
    `release` to remove the workloads, unless a failure anywhere asked to keep them.
    """

    def __init__(self, state_dir: Path, *, lock_timeout: float = 900.0) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(state_dir / ".workloads.lock"), timeout=lock_timeout)
        self._state = state_dir / ".workloads.json"

    def acquire(self, setup: Callable[[], None]) -> None:
        with self._lock:
            setup()  # raises: this process is not a user, nothing to release
            state = self._read()
            state["users"] = int(state.get("users", 0)) + 1
            self._write(state)

    def release(self, teardown: Callable[[], None], *, failed: bool, keep_on_failure: bool) -> bool:
        """Drop this process's use; returns True when it was the last and `teardown` ran."""
        with self._lock:
            state = self._read()
            users = max(0, int(state.get("users", 0)) - 1)
            any_failed = bool(state.get("failed")) or failed
            self._write({"users": users, "failed": any_failed})
            if users > 0:
                return False
            if keep_on_failure and any_failed:
                log.warning("keeping the workload namespaces for inspection (--keep-on-failure)")
                return False
            teardown()
            return True

    def _read(self) -> dict[str, Any]:
        try:
            value = json.loads(self._state.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}
        return value if isinstance(value, dict) else {}

    def _write(self, state: Mapping[str, Any]) -> None:
        self._state.write_text(json.dumps(dict(state)))


# --- what the mesh published into a class namespace ------------------------------------------------

ROOT_CERT_CONFIGMAP = "istio-ca-root-cert"  # istiod (or istio-csr) writes it into every namespace
ROOT_CERT_KEY = "root-cert.pem"


def published_root_pem(cluster: ObjectGetter, namespace: str) -> str:
    """The mesh root the control plane published into `namespace` (ConfigMap istio-ca-root-cert).

    This is the trust anchor workloads are told to use, fetched independently of the proxy whose
    certificate is judged, so a proxy that trusts the wrong root cannot vouch for itself.
    """
    config_map = cluster.get("v1", "ConfigMap", ROOT_CERT_CONFIGMAP, namespace)
    pem = ((config_map or {}).get("data") or {}).get(ROOT_CERT_KEY)
    if not pem:
        raise WorkloadNotReady(
            f"namespace {namespace} has no ConfigMap {ROOT_CERT_CONFIGMAP} with {ROOT_CERT_KEY}: "
            "the control plane has not published its root there (is the namespace watched by istiod?)"
        )
    return str(pem)
