"""Connecting to one cluster: kubeconfig and context loading, the errors users see, one-line API messages.

Messages never carry credentials: kubeconfig errors and API bodies go through `redact_text`, and only the
server URL and context name are named.

Every request is bounded: one attempt (no urllib3 retries, whose warnings and 3x waits turned a silent
server into two minutes of noise), a TCP connect timeout and a read timeout. Calls that name no timeout
(discovery in the dynamic client) get `REQUEST_TIMEOUT`. Websocket streams (exec, port-forward) are
bounded while they open (TCP, TLS, HTTP upgrade); once open they are long-lived and idle for as long as
the command or the forwarded connection is, so their reads are governed by the caller's own deadline
(`run_exec_stream`, the port-forward lifetime), never by a short socket timeout. meshproof opens no watch;
one would pass its own `_request_timeout=connect_read_timeout(timeout_seconds + margin)`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import urllib3.exceptions
import websocket
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.rest import ApiException
from kubernetes.config.config_exception import ConfigException
from kubernetes.stream import ws_client

from meshproof.redact import redact_text


class ClusterError(Exception):
    """A cluster operation failed; the message is one line naming the cluster."""


class ClusterUnreachable(ClusterError):
    """The kubeconfig/context is unusable or the API server does not answer."""


class KubeApiError(ClusterError):
    """The API server refused a request (status in `.status`)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


# --- timeouts ------------------------------------------------------------------------------------

CONNECT_TIMEOUT_S = 5.0  # TCP connect to the API server
PROBE_READ_TIMEOUT_S = 8.0  # GET /version: tiny; a server silent this long is not usable
REQUEST_READ_TIMEOUT_S = 30.0  # any other request (lists of every object of a kind can be slow)
STREAM_OPEN_TIMEOUT_S = 15.0  # exec/port-forward websocket: connect + TLS + upgrade, per socket operation


def connect_read_timeout(read: float) -> tuple[float, float]:
    """The (connect, read) pair the client takes as `_request_timeout`."""
    return (CONNECT_TIMEOUT_S, read)


def bounded_api_client(configuration: k8s.Configuration) -> k8s.ApiClient:
    """An ApiClient whose every request is one bounded attempt (see the module docstring)."""
    configuration.retries = 0
    api_client = k8s.ApiClient(configuration)
    _default_request_timeout(api_client.rest_client)
    _bound_stream_opening()
    return api_client


def _default_request_timeout(rest_client: Any) -> None:
    send = rest_client.request

    def request(*args: Any, **kwargs: Any) -> Any:
        if not kwargs.get("_request_timeout"):
            kwargs["_request_timeout"] = connect_read_timeout(REQUEST_READ_TIMEOUT_S)
        return send(*args, **kwargs)

    rest_client.request = request


class _OpenBoundedWebSocket(websocket.WebSocket):
    """The client's websocket with a timeout while it opens, and none once open (a long-lived stream)."""

    def connect(self, url: str, **options: Any) -> None:
        options.setdefault("timeout", STREAM_OPEN_TIMEOUT_S)
        super().connect(url, **options)
        self.settimeout(None)


def _bound_stream_opening() -> None:
    # The client opens exec/port-forward websockets with no timeout and no hook to pass one; its module
    # looks the class up by name at each call, so this one replacement bounds every stream it opens.
    ws_client.WebSocket = _OpenBoundedWebSocket  # type: ignore[misc]


# --- kubeconfig ----------------------------------------------------------------------------------


def kubeconfig_path(kubeconfig: Path | None) -> str | None:
    if kubeconfig is not None:
        if not kubeconfig.expanduser().exists():
            raise ClusterUnreachable(f"--kubeconfig: file {kubeconfig} does not exist")
        return str(kubeconfig.expanduser())
    env = os.environ.get("KUBECONFIG")
    if env:
        return env  # may list several files; the client merges them like kubectl
    default = Path("~/.kube/config").expanduser()
    return str(default) if default.exists() else None


def load_api_client(context: str | None, kubeconfig: Path | None) -> k8s.ApiClient:
    path = kubeconfig_path(kubeconfig)
    if path is None:
        if os.environ.get("KUBERNETES_SERVICE_HOST") and context is None:
            configuration = k8s.Configuration()
            k8s_config.load_incluster_config(client_configuration=configuration)
            return bounded_api_client(configuration)
        raise ClusterUnreachable(
            "no kubeconfig found ($KUBECONFIG unset, ~/.kube/config missing); "
            "pass --kubeconfig or create a cluster"
        )
    try:
        names = [c["name"] for c in k8s_config.list_kube_config_contexts(config_file=path)[0]]
        if context is not None and context not in names:
            available = ", ".join(names) or "none"
            raise ClusterUnreachable(f"kubeconfig {path} has no context '{context}'; available: {available}")
        configuration = k8s.Configuration()
        k8s_config.load_kube_config(
            config_file=path, context=context, client_configuration=configuration, persist_config=False
        )
        return bounded_api_client(configuration)
    except ConfigException as exc:
        raise ClusterUnreachable(f"kubeconfig {path}: {one_line(exc)}") from None
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise ClusterUnreachable(f"kubeconfig {path} is unreadable: {one_line(exc)}") from None


def current_context(kubeconfig: Path | None) -> str | None:
    try:
        path = kubeconfig_path(kubeconfig)
        return str(k8s_config.list_kube_config_contexts(config_file=path)[1]["name"]) if path else None
    except Exception:
        return None


# --- messages ------------------------------------------------------------------------------------


def api_error_line(exc: ApiException) -> str:
    """`422 Invalid: Deployment.apps "x" is invalid: ...`, from the Status body when there is one."""
    message = ""
    body = getattr(exc, "body", None)
    if body:
        try:
            status = json.loads(body.decode() if isinstance(body, bytes) else body)
            message = str(status.get("message", ""))
        except (ValueError, AttributeError):
            message = ""
    reason = getattr(exc, "reason", "") or ""
    return one_line(f"{exc.status} {reason}: {message}" if message else f"{exc.status} {reason}")


def network_error_line(exc: BaseException) -> str:
    """Why a request got no answer, in words: the urllib3 chain (`Max retries exceeded ... Caused by
    ReadTimeoutError(HTTPSConnectionPool(...): Read timed out. (read timeout=30.0))`) is 400 characters
    that say "it did not answer"."""
    reason: object = exc
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        reason = exc.reason
    if isinstance(reason, urllib3.exceptions.NewConnectionError):  # a ConnectTimeoutError subclass
        return f"cannot connect: {one_line(str(reason).rpartition('): ')[2] or reason)}"
    if isinstance(reason, urllib3.exceptions.ConnectTimeoutError):
        return f"no TCP connection within {CONNECT_TIMEOUT_S:g}s"
    if isinstance(reason, urllib3.exceptions.ReadTimeoutError | TimeoutError):
        return "it accepted the connection but did not answer in time"
    if isinstance(reason, urllib3.exceptions.SSLError):
        return f"TLS failed: {one_line(reason)}"
    return one_line(reason)


def one_line(exc: object) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return redact_text(text)[:400]
