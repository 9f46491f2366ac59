"""Command lines for the CLIs a plan runs (kubectl, helm, istioctl, kind), aimed at one cluster.

Each CLI spells "which cluster" differently (`--context`, `--kube-context`); these helpers put it in the
right place so a plan step can never run against the wrong cluster. The kubeconfig file itself is passed
by the executor through KUBECONFIG, so plans hold no local paths.
"""

from __future__ import annotations

import shlex

from meshproof.mesh.model import VALUES_FILE
from meshproof.mesh.spec import ClusterSpec


def kubectl(cluster: ClusterSpec, *args: str) -> list[str]:
    return ["kubectl", *_flag("--context", cluster.context), *args]


def istioctl(cluster: ClusterSpec, *args: str) -> list[str]:
    return ["istioctl", *args, *_flag("--context", cluster.context)]


def helm_install(
    cluster: ClusterSpec, *, release: str, chart: str, repo: str, version: str, namespace: str
) -> list[str]:
    """`helm upgrade --install` from a repository URL (no `helm repo add` state on the machine)."""
    return [
        "helm",
        "upgrade",
        "--install",
        release,
        chart,
        "--repo",
        repo,
        "--version",
        version,
        "--namespace",
        namespace,
        "--create-namespace",
        *_flag("--kube-context", cluster.context),
        "--values",
        VALUES_FILE,
    ]


def helm_uninstall(cluster: ClusterSpec, *, release: str, namespace: str) -> list[str]:
    return [
        "helm",
        "uninstall",
        release,
        "--namespace",
        namespace,
        "--ignore-not-found",
        *_flag("--kube-context", cluster.context),
    ]


def shell(*commands: list[str], pipe: bool = False) -> list[str]:
    """Several commands as one `sh -c` line: joined by `|` (pipe) or `&&`. Used where one tool's output
    feeds another (remote secrets) or a value is read before it is used (InstallPlan approval)."""
    joiner = " | " if pipe else " && "
    return ["sh", "-c", "set -eu; " + joiner.join(shlex.join(c) for c in commands)]


def _flag(name: str, value: str | None) -> list[str]:
    return [name, value] if value else []
