"""One cluster context over the official kubernetes client: apply, get/list/delete, waits, exec, logs, events.

Everything `apply` creates carries `meshproof.io/run-id` (and `meshproof.io/test-id` when a test is
named), so a failed test's objects can be dumped and a run's leftovers removed by label. Arbitrary kinds,
CRDs included, go through the dynamic client; namespaced vs cluster-scoped comes from discovery.
Errors users see are one line, name the cluster, and never carry credentials.
"""

from __future__ import annotations

import copy
import logging
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from kubernetes import client as k8s
from kubernetes.client.rest import ApiException
from kubernetes.dynamic import DynamicClient, ResourceList
from kubernetes.dynamic.exceptions import DynamicApiError, NotFoundError, ResourceNotFoundError
from kubernetes.stream import portforward, stream

from meshproof import wait
from meshproof.kube_connect import (
    PROBE_READ_TIMEOUT_S,
    REQUEST_READ_TIMEOUT_S,
    ClusterError,
    ClusterUnreachable,
    KubeApiError,
    api_error_line,
    connect_read_timeout,
    current_context,
    load_api_client,
    network_error_line,
    one_line,
)
from meshproof.kube_objects import (
    FIELD_MANAGER,
    ManifestError,
    Obj,
    ObjectRef,
    meshproof_labels,
    parse_documents,
    ref_of,
    with_labels,
)
from meshproof.kube_stream import ExecError, ExecResult, ExecTimeout, PortForwarder, run_exec_stream
from meshproof.kube_wait import (
    ResourceWaitTimeout,
    describe_status,
    find_condition,
    pod_summary,
    rollout_state,
    selector_string,
    timeout_message,
)
from meshproof.redact import redact_text

__all__ = ["Cluster", "ClusterError", "ClusterUnreachable", "ExecError", "ExecResult", "KubeApiError"]

log = logging.getLogger("meshproof.kube")
T = TypeVar("T")
ObjList = list[Obj]
RefList = list[ObjectRef]
_ROLLOUT_API = {"Deployment": "apps/v1", "DaemonSet": "apps/v1", "StatefulSet": "apps/v1"}
# Kinds never labelled by us and expensive or pointless to sweep.
_SWEEP_SKIP_KINDS = frozenset({"Event", "ComponentStatus", "Binding", "TokenReview", "SubjectAccessReview"})


class Cluster:
    """One cluster context. Construct from a kubeconfig (`Cluster(context, kubeconfig, run_id, name)`)
    or from an existing ApiClient (`Cluster.from_api_client`)."""

    def __init__(
        self,
        context: str | None,
        kubeconfig: Path | None,
        run_id: str,
        name: str | None = None,
        *,
        api_client: k8s.ApiClient | None = None,
        request_timeout: float = REQUEST_READ_TIMEOUT_S,
        poll_interval: float = 1.0,
    ) -> None:
        self.run_id = run_id
        self.context = context
        self.api_client = api_client or load_api_client(context, kubeconfig)
        self.name = name or context or current_context(kubeconfig) or "in-cluster"
        self.request_timeout = request_timeout
        self.poll_interval = poll_interval
        self._dynamic: DynamicClient | None = None
        self._discovery_dir = tempfile.TemporaryDirectory(prefix="meshproof-discovery-")

    @classmethod
    def from_api_client(cls, api_client: k8s.ApiClient, *, run_id: str, name: str, **kw: Any) -> Cluster:
        return cls(None, None, run_id, name, api_client=api_client, **kw)

    def __repr__(self) -> str:
        return f"Cluster(name={self.name!r}, run_id={self.run_id!r})"

    # --- connection ------------------------------------------------------------------------------

    @property
    def _dyn(self) -> DynamicClient:
        if self._dynamic is None:
            # A short /version probe first turns a silent API server into a prompt one-line
            # ClusterUnreachable before discovery's many requests each wait out the read timeout.
            self.server_version()
            cache = os.path.join(self._discovery_dir.name, "discovery.json")
            self._dynamic = self._call(
                "discover the API", lambda: DynamicClient(self.api_client, cache_file=cache)
            )
        return self._dynamic

    @property
    def _timeout(self) -> tuple[float, float]:
        return connect_read_timeout(self.request_timeout)

    @property
    def core(self) -> k8s.CoreV1Api:
        return k8s.CoreV1Api(self.api_client)

    def server_version(self, timeout: float = PROBE_READ_TIMEOUT_S) -> str:
        """The API server's gitVersion; raises ClusterUnreachable (one line) when it does not answer."""
        try:
            info = k8s.VersionApi(self.api_client).get_code(_request_timeout=connect_read_timeout(timeout))
        except Exception as exc:
            why = (
                api_error_line(exc)
                if isinstance(exc, ApiException) and exc.status
                else network_error_line(exc)
            )
            raise ClusterUnreachable(
                f"cluster {self.name} ({self.api_client.configuration.host}) is unreachable: "
                f"{why}; check --kubeconfig/--context and that the cluster is running"
            ) from None
        return str(info.git_version)

    def close(self) -> None:
        self.api_client.close()
        self._discovery_dir.cleanup()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- objects ---------------------------------------------------------------------------------

    def apply(self, docs: str | Sequence[Obj], *, test_id: str | None = None, label: bool = True) -> ObjList:
        """Server-side apply each document (field manager "meshproof", conflicts forced); returns results.

        `label=False` applies the documents as they are, without the run (and test) labels: for putting
        back an object the install owns, which `meshproof cleanup` must never select.
        """
        labels = meshproof_labels(self.run_id, test_id) if label else {}
        applied: ObjList = []
        for obj in parse_documents(docs):
            body = with_labels(obj, labels) if labels else copy.deepcopy(dict(obj))
            ref = ref_of(body)
            resource = self._resource(ref.api_version, ref.kind)
            if resource.namespaced and not ref.namespace:
                raise ManifestError(
                    f"{ref}: namespaced kind without metadata.namespace; set it in the manifest"
                )
            if not resource.namespaced:
                body["metadata"].pop("namespace", None)
            applied.append(self._server_side_apply(resource, body, ref))
            log.info("applied %s on cluster %s", ref, self.name)
        return applied

    def _server_side_apply(self, resource: Any, body: Obj, ref: ObjectRef) -> Obj:
        result = self._call(
            f"apply {ref}",
            lambda: self._dyn.server_side_apply(
                resource,
                body=body,
                namespace=ref.namespace if resource.namespaced else None,
                field_manager=FIELD_MANAGER,
                force_conflicts=True,
                _request_timeout=self._timeout,
            ),
        )
        return dict(result.to_dict())

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> Obj | None:
        resource = self._resource(api_version, kind)
        ref = ObjectRef(api_version, kind, name, namespace)
        try:
            got = self._call(
                f"get {ref}",
                lambda: self._dyn.get(
                    resource, name=name, namespace=namespace, _request_timeout=self._timeout
                ),
                not_found=NotFoundError,
            )
        except NotFoundError:
            return None
        return dict(got.to_dict())

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> ObjList:
        resource = self._resource(api_version, kind)
        where = f"in {namespace}" if namespace else "in all namespaces"
        result = self._call(
            f"list {kind} {where}",
            lambda: self._dyn.get(
                resource,
                namespace=namespace,
                label_selector=label_selector,
                field_selector=field_selector,
                _request_timeout=self._timeout,
            ),
        )
        items = [dict(item) for item in result.to_dict().get("items") or []]
        for item in items:  # list items come without apiVersion/kind
            item.setdefault("apiVersion", resource.group_version)
            item.setdefault("kind", kind)
        return items

    def delete(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None = None,
        wait: bool = False,
        timeout: float = 120.0,
    ) -> bool:
        """Delete one object (background propagation); False when it was already gone."""
        resource = self._resource(api_version, kind)
        ref = ObjectRef(api_version, kind, name, namespace)
        try:
            self._call(
                f"delete {ref}",
                lambda: self._dyn.delete(
                    resource,
                    name=name,
                    namespace=namespace,
                    propagation_policy="Background",
                    _request_timeout=self._timeout,
                ),
                not_found=NotFoundError,
            )
        except NotFoundError:
            return False
        log.info("deleted %s on cluster %s", ref, self.name)
        if wait:
            self._wait_gone(ref, timeout)
        return True

    def find_labelled(self, label_selector: str, *, namespaced: bool | None = None) -> ObjList:
        """Every object, of every listable kind the cluster serves, that matches the selector."""
        found: ObjList = []
        for resource in self._listable_resources():
            if namespaced is not None and resource.namespaced != namespaced:
                continue
            try:
                found.extend(self.list(resource.group_version, resource.kind, label_selector=label_selector))
            except ClusterError as exc:  # a broken aggregated API or a forbidden kind must not hide the rest
                log.info("skipping %s while sweeping for %s: %s", resource.kind, label_selector, exc)
        return found

    def delete_labelled(self, label_selector: str, *, dry_run: bool = False) -> RefList:
        """Delete everything matching the selector: namespaces first (they take their contents along), then
        namespaced objects elsewhere, then cluster-scoped objects. Returns what was (or would be) deleted."""
        objects = self.find_labelled(label_selector)
        namespaces = {o["metadata"]["name"] for o in objects if o.get("kind") == "Namespace"}
        first = [o for o in objects if o.get("kind") == "Namespace"]
        then = [o for o in objects if o.get("metadata", {}).get("namespace") not in (None, *namespaces)]
        last = [
            o for o in objects if not o.get("metadata", {}).get("namespace") and o.get("kind") != "Namespace"
        ]
        deleted: RefList = []
        for obj in first + then + last:
            ref = ref_of(obj)
            if obj.get("metadata", {}).get("ownerReferences"):
                continue  # its owner carries the label too, or garbage collection removes it
            if dry_run or self.delete(ref.api_version, ref.kind, ref.name, ref.namespace):
                deleted.append(ref)
        return deleted

    # --- waits -----------------------------------------------------------------------------------

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
    ) -> Obj:
        def check(obj: Obj) -> str | None:
            cond = find_condition(obj, condition)
            if cond and str(cond.get("status")) == status:
                return None
            return describe_status(obj) if cond else f"no {condition} condition yet; {describe_status(obj)}"

        ref = ObjectRef(api_version, kind, name, namespace)
        return self._wait_object(ref, check, f"condition {condition} not {status}", timeout)

    def wait_rollout(self, kind: str, name: str, namespace: str, *, timeout: float) -> Obj:
        if kind not in _ROLLOUT_API:
            raise ValueError(f"wait_rollout supports {', '.join(_ROLLOUT_API)}, not {kind}")
        ref = ObjectRef(_ROLLOUT_API[kind], kind, name, namespace)

        def check(obj: Obj) -> str | None:
            state = rollout_state(obj)
            return None if state.done else state.summary

        try:
            return self._wait_object(ref, check, "rollout not complete", timeout)
        except ResourceWaitTimeout as exc:
            pods = self._pod_summaries(ref)
            raise ResourceWaitTimeout(f"{exc}; pods: {pods}" if pods else str(exc)) from exc

    def wait_for(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None,
        predicate: Callable[[Obj], object],
        description: str,
        *,
        timeout: float,
    ) -> Obj:
        """Wait until predicate(obj) is truthy; a falsy result's `.reason` (a Verdict) is the status shown."""

        def check(obj: Obj) -> str | None:
            outcome = predicate(obj)
            if outcome:
                return None
            return str(getattr(outcome, "reason", "") or describe_status(obj))

        ref = ObjectRef(api_version, kind, name, namespace)
        return self._wait_object(ref, check, f"{description}: not satisfied", timeout)

    def _wait_object(
        self, ref: ObjectRef, check: Callable[[Obj], str | None], what: str, timeout: float
    ) -> Obj:
        last = _LastSeen("not observed yet")

        def attempt() -> Obj:
            try:
                obj = self.get(ref.api_version, ref.kind, ref.name, ref.namespace)
            except ClusterError as exc:
                raise AssertionError(last.saw(f"API error: {exc}")) from exc
            if obj is None:
                raise AssertionError(last.saw("not found"))
            problem = check(obj)
            if problem is not None:
                raise AssertionError(last.saw(problem))
            return obj

        return self._eventually(attempt, ref, what, timeout, last)

    def _wait_gone(self, ref: ObjectRef, timeout: float) -> None:
        last = _LastSeen("still present")

        def gone() -> None:
            obj = self.get(ref.api_version, ref.kind, ref.name, ref.namespace)
            if obj is not None:
                finalizers = obj.get("metadata", {}).get("finalizers") or []
                held = f" (finalizers: {', '.join(finalizers)})" if finalizers else ""
                raise AssertionError(last.saw(f"still present{held}"))

        self._eventually(gone, ref, "not deleted", timeout, last)

    def _eventually(
        self, fn: Callable[[], T], ref: ObjectRef, what: str, timeout: float, last: _LastSeen
    ) -> T:
        try:
            return wait.eventually(
                fn,
                timeout=timeout,
                interval=self.poll_interval,
                description=f"{ref} on cluster {self.name}: {what}",
            )
        except wait.WaitTimeout as exc:
            raise ResourceWaitTimeout(timeout_message(ref, self.name, what, timeout, last.text)) from exc

    def _pod_summaries(self, ref: ObjectRef) -> str:
        try:
            owner = self.get(ref.api_version, ref.kind, ref.name, ref.namespace)
            selector = selector_string(owner) if owner else None
            if not selector or not ref.namespace:
                return ""
            return "; ".join(pod_summary(p) for p in self.pods(ref.namespace, selector)) or "none"
        except ClusterError as exc:
            return f"(could not list pods: {exc})"

    # --- pods ------------------------------------------------------------------------------------

    def pods(self, namespace: str, label_selector: str | None = None) -> ObjList:
        return self.list("v1", "Pod", namespace, label_selector=label_selector)

    def events(self, namespace: str, field_selector: str | None = None) -> ObjList:
        events = self.list("v1", "Event", namespace, field_selector=field_selector)
        return sorted(events, key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))

    def logs(
        self,
        pod: str,
        namespace: str,
        container: str | None = None,
        previous: bool = False,
        since_seconds: int | None = None,
        tail_lines: int | None = None,
    ) -> str:
        kwargs: dict[str, Any] = {"container": container, "previous": previous}
        if since_seconds is not None:
            kwargs["since_seconds"] = since_seconds
        if tail_lines is not None:
            kwargs["tail_lines"] = tail_lines
        which = f"{'previous ' if previous else ''}logs of pod {namespace}/{pod}" + (
            f" container {container}" if container else ""
        )
        response: Any = self._call(
            which,
            lambda: self.core.read_namespaced_pod_log(
                pod, namespace, _preload_content=False, _request_timeout=self._timeout, **kwargs
            ),
        )
        data = response.data
        return data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)

    def exec(
        self,
        pod: str,
        namespace: str,
        command: Sequence[str],
        container: str | None = None,
        timeout: float = 60.0,
        stdin: str | None = None,
    ) -> ExecResult:
        where = f"pod {namespace}/{pod}" + (f" container {container}" if container else "")
        describe = redact_text(f"exec {[*command]!r} in {where} on cluster {self.name}")
        try:
            ws = stream(
                self.core.connect_get_namespaced_pod_exec,
                pod,
                namespace,
                command=[*command],
                container=container,
                stderr=True,
                stdin=stdin is not None,
                stdout=True,
                tty=False,
                binary=True,
                _preload_content=False,
            )
        except ApiException as exc:
            raise ExecError(f"{describe}: {one_line(exc)}") from None
        try:
            return run_exec_stream(ws, stdin=stdin, timeout=timeout, describe=describe)
        except ExecTimeout:
            raise
        except ExecError as exc:
            raise ExecError(f"{describe}: {exc}") from None

    @contextmanager
    def port_forward(self, pod: str, namespace: str, port: int) -> Iterator[int]:
        """Forward 127.0.0.1:<ephemeral> to the pod's port while the block runs; yields the local port."""

        def open_stream() -> Any:
            return portforward(
                self.core.connect_get_namespaced_pod_portforward, pod, namespace, ports=str(port)
            )

        describe = f"port-forward to pod {namespace}/{pod}:{port} on cluster {self.name}"
        with PortForwarder(open_stream, port, describe) as forwarder:
            yield forwarder.local_port

    # --- plumbing --------------------------------------------------------------------------------

    def _resource(self, api_version: str, kind: str) -> Any:
        try:
            return self._call(
                f"look up {kind}", lambda: self._dyn.resources.get(api_version=api_version, kind=kind)
            )
        except ResourceNotFoundError:
            raise ClusterError(
                f"cluster {self.name} does not serve {kind} ({api_version}); is its CRD installed?"
            ) from None

    def _listable_resources(self) -> Sequence[Any]:
        resources = self._call("discover API resources", lambda: self._dyn.resources.search())
        return [
            r
            for r in resources
            if not isinstance(r, ResourceList)  # the "PodList" pseudo-kinds; they delegate attributes to Pod
            and r.preferred
            and "list" in (getattr(r, "verbs", None) or [])
            and "/" not in getattr(r, "name", "/")
            and r.kind not in _SWEEP_SKIP_KINDS
        ]

    def _call(self, what: str, fn: Callable[[], T], not_found: type[Exception] | None = None) -> T:
        """Run one API call; turn client errors into one-line ClusterErrors (NotFound passes when asked)."""
        try:
            return fn()
        except ResourceNotFoundError:
            raise
        except DynamicApiError as exc:
            if not_found is not None and isinstance(exc, not_found):
                raise
            raise KubeApiError(
                f"{what} on cluster {self.name} failed: {api_error_line(exc)}", exc.status
            ) from None
        except ApiException as exc:
            if exc.status == 0 or exc.status is None:
                raise ClusterUnreachable(f"{what} on cluster {self.name} failed: {one_line(exc)}") from None
            raise KubeApiError(
                f"{what} on cluster {self.name} failed: {api_error_line(exc)}", exc.status
            ) from None
        except (OSError, ConnectionError) as exc:
            raise ClusterUnreachable(
                f"{what} on cluster {self.name} failed: {network_error_line(exc)}"
            ) from None
        except Exception as exc:
            if type(exc).__module__.startswith("urllib3"):
                raise ClusterUnreachable(
                    f"{what} on cluster {self.name} failed: {network_error_line(exc)}"
                ) from None
            raise


class _LastSeen:
    """The most recent status a wait observed, for its timeout message."""

    def __init__(self, text: str) -> None:
        self.text = text

    def saw(self, text: str) -> str:
        self.text = text
        return text
