"""A small in-process HTTP server that answers like a Kubernetes API server, for the kube engine's tests.

It serves discovery (/version, /api, /apis and their resource lists), get/list/apply(PATCH)/delete of
objects kept in memory, label and simple field selectors, and pod logs. It records every request so tests
can check what the real `kubernetes` client actually sent (method, path, content type, query).

What it cannot stand in for: real apiserver semantics (server-side apply field ownership and conflicts,
defaulting, validation, admission webhooks, garbage collection, RBAC beyond one bearer token), exec and
port-forward websockets, watch streams, or pagination. Those run against a real kube-apiserver in the
control-plane tier (tests/control_plane). What stays here is what that tier cannot show or produce on cue:
the exact requests the client sent, a kind that is forbidden in the middle of a sweep, a failure injected
on one path at one moment, logs of named containers (e.g. a ztunnel's), objects with hand-made timestamps,
status and owner references set without a controller.
"""

from __future__ import annotations

import copy
import json
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import yaml


@dataclass(frozen=True)
class Kind:
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    verbs: tuple[str, ...] = ("create", "delete", "get", "list", "patch", "update", "watch")

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


KINDS: tuple[Kind, ...] = (
    Kind("", "v1", "Namespace", "namespaces", False),
    Kind("", "v1", "Pod", "pods", True),
    Kind("", "v1", "ConfigMap", "configmaps", True),
    Kind("", "v1", "Secret", "secrets", True),
    Kind("", "v1", "Service", "services", True),
    Kind("", "v1", "ServiceAccount", "serviceaccounts", True),
    Kind("", "v1", "Event", "events", True),
    Kind("apps", "v1", "Deployment", "deployments", True),
    Kind("apps", "v1", "DaemonSet", "daemonsets", True),
    Kind("apps", "v1", "StatefulSet", "statefulsets", True),
    Kind("events.k8s.io", "v1", "Event", "events", True),
    Kind("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", False),
    Kind("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", False),
    Kind(
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingWebhookConfiguration",
        "validatingwebhookconfigurations",
        False,
    ),
    Kind(
        "admissionregistration.k8s.io",
        "v1",
        "MutatingWebhookConfiguration",
        "mutatingwebhookconfigurations",
        False,
    ),
    Kind("security.istio.io", "v1", "AuthorizationPolicy", "authorizationpolicies", True),
    Kind("security.istio.io", "v1", "PeerAuthentication", "peerauthentications", True),
    # a kind that can be created but not listed: the sweep must skip it, not fail
    Kind("authorization.k8s.io", "v1", "SelfSubjectReview", "selfsubjectreviews", False, ("create",)),
)


# what a kind v1.33 node image answers on /version
VERSION = {
    "major": "1",
    "minor": "33",
    "gitVersion": "v1.33.1",
    "gitCommit": "8adc0f041b8e7ad1d30e29cc59c6ae7a15e19828",
    "gitTreeState": "clean",
    "buildDate": "2025-05-15T08:19:08Z",
    "goVersion": "go1.24.2",
    "compiler": "gc",
    "platform": "linux/amd64",
}


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    content_type: str
    body: Any


@dataclass
class FakeState:
    token: str
    objects: dict[tuple[str, str, str, str], dict[str, Any]] = field(default_factory=dict)
    logs: dict[tuple[str, str, str, bool], str] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    forbidden_plurals: set[str] = field(default_factory=set)
    # path -> (code, reason, message): the next request to that path fails like this
    failures: dict[str, tuple[int, str, str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class FakeApiServer:
    """Start with `with FakeApiServer() as api:`; `api.url`, `api.put(obj)`, `api.write_kubeconfig(path)`."""

    def __init__(self, token: str = "fake-token-0123456789abcdef") -> None:
        self.state = FakeState(token=token)
        handler = type("Handler", (_Handler,), {"state": self.state})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> FakeApiServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def put(self, obj: dict[str, Any]) -> None:
        kind = _kind_for(obj["apiVersion"], obj["kind"])
        meta = obj["metadata"]
        with self.state.lock:
            self.state.objects[_key(kind, meta.get("namespace", ""), meta["name"])] = copy.deepcopy(obj)

    def stored(self, api_version: str, kind: str, name: str, namespace: str = "") -> dict[str, Any] | None:
        with self.state.lock:
            return self.state.objects.get(_key(_kind_for(api_version, kind), namespace, name))

    def set_log(self, namespace: str, pod: str, container: str, text: str, previous: bool = False) -> None:
        self.state.logs[(namespace, pod, container, previous)] = text

    @property
    def requests(self) -> list[Recorded]:
        return self.state.requests

    def write_kubeconfig(self, path: Path, context: str = "kind-fake") -> Path:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": context,
            "clusters": [{"name": context, "cluster": {"server": self.url}}],
            "users": [{"name": context, "user": {"token": self.state.token}}],
            "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
        }
        path.write_text(yaml.safe_dump(config))
        return path


def _key(kind: Kind, namespace: str, name: str) -> tuple[str, str, str, str]:
    return (kind.group, kind.plural, namespace if kind.namespaced else "", name)


def _kind_for(api_version: str, kind_name: str) -> Kind:
    group, _, version = api_version.rpartition("/")
    for kind in KINDS:
        if kind.group == group and kind.version == version and kind.kind == kind_name:
            return kind
    raise KeyError(f"fake apiserver does not serve {api_version} {kind_name}")


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


def _matches_labels(obj: dict[str, Any], selector: str | None) -> bool:
    if not selector:
        return True
    labels = obj.get("metadata", {}).get("labels") or {}
    for term in selector.split(","):
        if "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k) == v:
                return False
        elif "=" in term:
            k, v = term.split("=", 1)
            if labels.get(k) != v:
                return False
        elif term not in labels:
            return False
    return True


def _matches_fields(obj: dict[str, Any], selector: str | None) -> bool:
    if not selector:
        return True
    for term in selector.split(","):
        path, _, want = term.partition("=")
        node: Any = obj
        for part in path.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if str(node) != want:
            return False
    return True


class _Handler(BaseHTTPRequestHandler):
    state: FakeState

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass

    # --- plumbing ---

    def _send(self, code: int, payload: Any, content_type: str = "application/json") -> None:
        data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _record(self) -> tuple[str, dict[str, list[str]], Any] | None:
        parsed = urlparse(self.path)
        query = parse_qs(parsed.query)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = yaml.safe_load(raw) if raw else None
        self.state.requests.append(
            Recorded(self.command, parsed.path, query, self.headers.get("Content-Type", ""), body)
        )
        if self.headers.get("Authorization") != f"Bearer {self.state.token}":
            self._send(401, _status(401, "Unauthorized", "Unauthorized"))
            return None
        failure = self.state.failures.pop(parsed.path, None)
        if failure is not None:
            self._send(failure[0], _status(*failure))
            return None
        return parsed.path, query, body

    def _route(self, path: str) -> tuple[Kind, str, str | None, str | None] | None:
        """(kind, namespace, name, subresource) for an object path."""
        parts = [p for p in path.split("/") if p]
        if parts[:1] == ["api"]:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[:1] == ["apis"] and len(parts) >= 3:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return None
        namespace = ""
        if len(rest) >= 2 and rest[0] == "namespaces" and len(rest) != 2:
            namespace, rest = rest[1], rest[2:]
        if not rest:
            return None
        for kind in KINDS:
            if kind.group == group and kind.version == version and kind.plural == rest[0]:
                name = rest[1] if len(rest) > 1 else None
                sub = rest[2] if len(rest) > 2 else None
                return kind, namespace, name, sub
        return None

    def _object_request(self) -> tuple[Kind, str, str, dict[str, list[str]], Any] | None:
        """The request, recorded, for one named object: (kind, namespace, name, query, body); None when the
        answer (401, an injected failure, 404) has already been sent."""
        got = self._record()
        if got is None:
            return None
        path, query, body = got
        route = self._route(path)
        if route is None or route[2] is None:
            self._send(404, _status(404, "NotFound", "no such resource"))
            return None
        kind, namespace, name, _ = route
        return kind, namespace, name, query, body

    # --- verbs ---

    def do_GET(self) -> None:
        got = self._record()
        if got is None:
            return
        path, query, _ = got
        path = path.rstrip("/") or "/"
        if path == "/version":
            self._send(200, VERSION)
            return
        if path == "/api":
            self._send(200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []})
            return
        if path == "/apis":
            self._send(200, self._group_list())
            return
        listing = self._resource_list(path)
        if listing is not None:
            self._send(200, listing)
            return
        route = self._route(path)
        if route is None:
            self._send(
                404, _status(404, "NotFound", f"the server could not find the requested resource {path}")
            )
            return
        kind, namespace, name, sub = route
        if kind.plural in self.state.forbidden_plurals:
            self._send(403, _status(403, "Forbidden", f"{kind.plural} is forbidden: User cannot list"))
            return
        if name is None:
            self._list(kind, namespace, query)
        elif sub == "log":
            self._log(namespace, name, query)
        elif sub in ("exec", "portforward"):  # websockets are not faked: answer like a server refusing it
            self._send(400, _status(400, "BadRequest", "Upgrade request required"))
        else:
            obj = self.state.objects.get(_key(kind, namespace, name))
            if obj is None:
                self._send(404, _status(404, "NotFound", f'{kind.plural} "{name}" not found'))
            else:
                self._send(200, obj)

    def do_PATCH(self) -> None:
        request = self._object_request()
        if request is None:
            return
        kind, namespace, name, query, body = request
        if self.headers.get("Content-Type") != "application/apply-patch+yaml":
            self._send(415, _status(415, "UnsupportedMediaType", "only server-side apply is faked"))
            return
        if not query.get("fieldManager"):
            self._send(422, _status(422, "Invalid", "fieldManager is required for apply requests"))
            return
        with self.state.lock:
            key = _key(kind, namespace, name)
            old = self.state.objects.get(key)
            obj = copy.deepcopy(body)
            meta = obj.setdefault("metadata", {})
            if kind.namespaced:
                meta["namespace"] = namespace
            if old is None:
                meta.update(uid=str(uuid.uuid4()), resourceVersion="1", generation=1)
            else:
                old_meta = old["metadata"]
                changed = old.get("spec") != obj.get("spec")
                meta.update(
                    uid=old_meta["uid"],
                    resourceVersion=str(int(old_meta["resourceVersion"]) + 1),
                    generation=old_meta["generation"] + (1 if changed else 0),
                )
                if "status" in old:
                    obj["status"] = old["status"]
            self.state.objects[key] = obj
        self._send(201 if old is None else 200, obj)

    def do_DELETE(self) -> None:
        request = self._object_request()
        if request is None:
            return
        kind, namespace, name, _, _ = request
        with self.state.lock:
            obj = self.state.objects.pop(_key(kind, namespace, name), None)
            if obj is not None and kind.kind == "Namespace":  # the namespace controller, instantly
                for key in [k for k in self.state.objects if k[2] == name]:
                    del self.state.objects[key]
        if obj is None:
            self._send(404, _status(404, "NotFound", f'{kind.plural} "{name}" not found'))
        else:
            self._send(200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})

    # --- bodies ---

    def _list(self, kind: Kind, namespace: str, query: dict[str, list[str]]) -> None:
        labels = (query.get("labelSelector") or [None])[0]
        fields = (query.get("fieldSelector") or [None])[0]
        with self.state.lock:
            items = [
                copy.deepcopy(o)
                for (g, plural, ns, _), o in sorted(self.state.objects.items())
                if g == kind.group
                and plural == kind.plural
                and (not namespace or ns == namespace)
                and _matches_labels(o, labels)
                and _matches_fields(o, fields)
            ]
        for item in items:  # like the real server: list items carry no apiVersion/kind
            item.pop("apiVersion", None)
            item.pop("kind", None)
        self._send(
            200,
            {"apiVersion": kind.group_version, "kind": f"{kind.kind}List", "metadata": {}, "items": items},
        )

    def _log(self, namespace: str, pod: str, query: dict[str, list[str]]) -> None:
        container = (query.get("container") or [""])[0]
        previous = (query.get("previous") or ["false"])[0] == "true"
        text = self.state.logs.get((namespace, pod, container, previous))
        if text is None:
            which = "previous terminated container" if previous else "container"
            self._send(400, _status(400, "BadRequest", f'{which} "{container}" in pod "{pod}" not found'))
            return
        tail = (query.get("tailLines") or [None])[0]
        if tail is not None:
            text = "".join(text.splitlines(keepends=True)[-int(tail) :])
        self._send(200, text, content_type="text/plain")

    def _group_list(self) -> dict[str, Any]:
        groups: dict[str, list[str]] = {}
        for kind in KINDS:
            if kind.group:
                groups.setdefault(kind.group, [])
                if kind.version not in groups[kind.group]:
                    groups[kind.group].append(kind.version)
        return {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [
                {
                    "name": g,
                    "versions": [{"groupVersion": f"{g}/{v}", "version": v} for v in versions],
                    "preferredVersion": {"groupVersion": f"{g}/{versions[0]}", "version": versions[0]},
                }
                for g, versions in groups.items()
            ],
        }

    def _resource_list(self, path: str) -> dict[str, Any] | None:
        parts = [p for p in path.split("/") if p]
        if parts[:1] == ["api"] and len(parts) == 2:
            group, version = "", parts[1]
        elif parts[:1] == ["apis"] and len(parts) == 3:
            group, version = parts[1], parts[2]
        else:
            return None
        resources: list[dict[str, Any]] = []
        for kind in KINDS:
            if kind.group == group and kind.version == version:
                resources.append(
                    {
                        "name": kind.plural,
                        "singularName": kind.kind.lower(),
                        "namespaced": kind.namespaced,
                        "kind": kind.kind,
                        "verbs": list(kind.verbs),
                    }
                )
                if kind.kind == "Pod":
                    for sub in ("log", "exec", "portforward"):
                        resources.append(
                            {
                                "name": f"pods/{sub}",
                                "singularName": "",
                                "namespaced": True,
                                "kind": "Pod",
                                "verbs": ["get"],
                            }
                        )
        if not resources:
            return None
        gv = f"{group}/{version}" if group else version
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}
