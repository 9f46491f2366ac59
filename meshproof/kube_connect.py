"""Connecting to one cluster: kubeconfig and context loading, the errors users see, one-line API messages.

Messages never carry credentials: kubeconfig errors and API bodies go through `redact_text`, and only the
server URL and context name are named.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.rest import ApiException
from kubernetes.config.config_exception import ConfigException

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
            return k8s.ApiClient(configuration)
        raise ClusterUnreachable(
            "no kubeconfig found ($KUBECONFIG unset, ~/.kube/config missing); "
            "pass --kubeconfig or create a cluster"
        )
    try:
        names = [c["name"] for c in k8s_config.list_kube_config_contexts(config_file=path)[0]]
        if context is not None and context not in names:
            available = ", ".join(names) or "none"
            raise ClusterUnreachable(f"kubeconfig {path} has no context '{context}'; available: {available}")
        return k8s_config.new_client_from_config(config_file=path, context=context, persist_config=False)
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


def one_line(exc: object) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return redact_text(text)[:400]
