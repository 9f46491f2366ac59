"""Read a pod's network-namespace rules (nftables and legacy iptables) from the node it runs on.

How, and why this way (the least privileged way that works on kind and OpenShift alike):
- `kubectl debug --profile netadmin` (an ephemeral container in the pod, Istio's own advice) cannot read the
  rules of meshproof's workloads: they run as a non-root UID (pod-level `runAsNonRoot`), which an ephemeral
  container inherits, and a non-root process does not get the NET_ADMIN capability Kubernetes adds (no
  ambient capabilities), so `nft list ruleset` is refused.
- So a short-lived reader pod runs on the pod's node with `hostPID` and `privileged` (what `oc debug node`
  gets on OpenShift), finds a process of the pod's container by its container id in `/proc/<pid>/cgroup`
  (containerd on kind, CRI-O on OpenShift both name the id there), and runs `nsenter -t <pid> -n nft -j list
  ruleset` and `iptables-legacy-save` in that network namespace only. Its namespace is the test's own
  (Pod Security `privileged`; on OpenShift bound to the `privileged` SCC), and the pod is deleted after.
- Its image is the mesh's own proxy image, read from the pod's `istio-proxy` container: that image applies
  the nftables rules itself when there is no CNI, so it carries `nft` (and `nsenter`, from util-linux).
  MESHPROOF_NFT_IMAGE overrides it (mirrors, or a proxy image without nft).

Nothing here decides: meshproof.checks.nftables judges the ruleset.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from meshproof.evidence.errors import EvidenceCollectionError, EvidenceParseError
from meshproof.evidence.iptables import parse_iptables_chains
from meshproof.evidence.nftables import Ruleset, parse_ruleset
from meshproof.kube_api import LogReader, ObjectApplier, ObjectDeleter, ObjectGetter

NFT_IMAGE_ENV = "MESHPROOF_NFT_IMAGE"
SIDECAR_CONTAINER = "istio-proxy"
READER_CONTAINER = "reader"
NFT_MARK = "### meshproof nft"
IPTABLES_MARK = "### meshproof iptables-legacy"
END_MARK = "### meshproof end"
# One line per legacy tool, after its output: `<mark> <tool> exit <status>`, or `<mark> <tool> missing`.
IPTABLES_STATUS_MARK = "### meshproof legacy-tool"
LEGACY_TOOLS = ("iptables-legacy-save", "ip6tables-legacy-save")

# Arguments: $1 = the container id. Prints the two sections between markers (the iptables one with a status
# line per legacy tool: whether it ran and its exit status); exit 3 if no process is found.
READER_SCRIPT = """set -u
cid="$1"
pid=""
for f in /proc/[0-9]*/cgroup; do
  if grep -q "$cid" "$f" 2>/dev/null; then p="${f#/proc/}"; pid="${p%/cgroup}"; break; fi
done
[ -n "$pid" ] || { echo "no process of container $cid on this node" >&2; exit 3; }
dump_netns "$pid"
"""
# Arguments: $1 = a pid. The part of the reader that the local-real tier runs against its own namespaces.
DUMP_FUNCTION = f"""dump_netns() {{
  echo "{NFT_MARK}"
  nsenter -t "$1" -n nft -j list ruleset || echo "nft failed: exit $?"
  echo "{IPTABLES_MARK}"
  for tool in {" ".join(LEGACY_TOOLS)}; do
    if command -v "$tool" >/dev/null 2>&1; then
      nsenter -t "$1" -n "$tool" 2>/dev/null; rc=$?; echo; echo "{IPTABLES_STATUS_MARK} $tool exit $rc"
    else
      echo "{IPTABLES_STATUS_MARK} $tool missing"
    fi
  done
  echo "{END_MARK}"
}}
"""

_CONTAINER_ID = re.compile(r"^[a-z0-9-]+://([0-9a-f]{12,128})$")
_STATUS_LINE = re.compile(rf"^{re.escape(IPTABLES_STATUS_MARK)} (?P<tool>\S+) (?P<what>missing|exit \d+)$")


@dataclass(frozen=True)
class PodNetnsRules:
    """What the reader saw in one pod's network namespace."""

    pod: str
    node: str
    ruleset: Ruleset
    iptables_chains: tuple[str, ...]  # `<table> <chain>` from iptables-legacy-save / ip6tables-legacy-save
    # Whether every legacy tool ran and exited 0 (only then does an empty `iptables_chains` mean "none"),
    # and what the reader said of each (`iptables-legacy-save exit 0, ip6tables-legacy-save missing`).
    iptables_read: bool = False
    iptables_status: str = "the reader reported no iptables-legacy status"


class ReaderCluster(ObjectApplier, ObjectGetter, ObjectDeleter, LogReader, Protocol):
    """The Cluster calls the reader needs (apply the pod, poll it, read its log, delete it)."""


def proxy_image(pod: Mapping[str, Any], env: Mapping[str, str] | None = None) -> str:
    """The image for the reader: MESHPROOF_NFT_IMAGE, else the pod's own istio-proxy image."""
    env = os.environ if env is None else env
    if env.get(NFT_IMAGE_ENV):
        return env[NFT_IMAGE_ENV]
    spec = pod.get("spec") or {}
    for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        if container.get("name") == SIDECAR_CONTAINER and container.get("image"):
            return str(container["image"])
    name = (pod.get("metadata") or {}).get("name", "?")
    raise EvidenceCollectionError(
        f"pod {name} has no {SIDECAR_CONTAINER} container to take the nft image from; set {NFT_IMAGE_ENV}"
    )


def container_id(pod: Mapping[str, Any]) -> str:
    """The runtime id of the pod's first running container (any container: they share the netns)."""
    status = pod.get("status") or {}
    for entry in (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or []):
        match = _CONTAINER_ID.match(str(entry.get("containerID") or ""))
        if match and (entry.get("state") or {}).get("running") is not None:
            return match.group(1)
    name = (pod.get("metadata") or {}).get("name", "?")
    raise EvidenceCollectionError(f"pod {name} has no running container with a containerID yet")


def reader_pod(name: str, namespace: str, node: str, image: str, target_container_id: str) -> dict[str, Any]:
    """The privileged, host-PID reader pod pinned to `node` (see the module docstring for why)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": "meshproof-netns-reader"}},
        "spec": {
            "nodeName": node,
            "hostPID": True,
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 0,
            "tolerations": [{"operator": "Exists"}],
            "containers": [
                {
                    "name": READER_CONTAINER,
                    "image": image,
                    "command": [
                        "/bin/sh",
                        "-c",
                        DUMP_FUNCTION + READER_SCRIPT,
                        "reader",
                        target_container_id,
                    ],
                    "securityContext": {"privileged": True, "runAsUser": 0, "runAsNonRoot": False},
                }
            ],
        },
    }


def reader_namespace(name: str, *, openshift: bool) -> list[dict[str, Any]]:
    """The test's namespace for reader pods: Pod Security `privileged`; on OpenShift its default service
    account may use the `privileged` SCC (the ClusterRole OpenShift ships for that SCC)."""
    docs: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": name,
                "labels": {
                    "pod-security.kubernetes.io/enforce": "privileged",
                    "istio-injection": "disabled",
                },
            },
        }
    ]
    if openshift:
        docs.append(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": "meshproof-netns-reader", "namespace": name},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "system:openshift:scc:privileged",
                },
                "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": name}],
            }
        )
    return docs


def split_reader_output(text: str) -> tuple[str, str]:
    """(nft JSON, iptables-legacy-save text) from the reader's log. Raises EvidenceParseError."""
    if NFT_MARK not in text or IPTABLES_MARK not in text or END_MARK not in text:
        raise EvidenceParseError(f"netns reader output lacks its section markers: {text.strip()[-300:]!r}")
    nft = text.split(NFT_MARK, 1)[1].split(IPTABLES_MARK, 1)[0].strip()
    iptables = text.split(IPTABLES_MARK, 1)[1].split(END_MARK, 1)[0].strip()
    if nft.startswith("nft failed"):
        raise EvidenceParseError(f"nft in the pod's netns failed ({nft}); does the reader image carry nft?")
    return nft, iptables


def split_legacy_status(section: str) -> tuple[str, bool, str]:
    """(the iptables-save text without the status lines, whether every legacy tool ran and exited 0, what
    the reader said of each tool). A tool without a status line counts as not read."""
    said: dict[str, str] = {}
    kept: list[str] = []
    for line in section.splitlines():
        match = _STATUS_LINE.match(line.strip())
        if match:
            said[match.group("tool")] = match.group("what")
        else:
            kept.append(line)
    read = all(said.get(tool) == "exit 0" for tool in LEGACY_TOOLS)
    status = ", ".join(f"{tool} {said.get(tool, 'gave no status')}" for tool in LEGACY_TOOLS)
    return "\n".join(kept), read, status


def parse_reader_output(text: str, *, pod: str, node: str) -> PodNetnsRules:
    nft, iptables = split_reader_output(text)
    saved, read, status = split_legacy_status(iptables)
    return PodNetnsRules(
        pod=pod,
        node=node,
        ruleset=parse_ruleset(nft),
        iptables_chains=tuple(parse_iptables_chains(saved)),
        iptables_read=read,
        iptables_status=status,
    )


def reader_finished(pod: Mapping[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def read_pod_netns(
    cluster: ReaderCluster,
    pod: Mapping[str, Any],
    *,
    reader_namespace: str,
    wait: Any,
    timeout: float,
    test_id: str | None = None,
) -> PodNetnsRules:
    """Run the reader for `pod`, return what it saw, delete the reader. `wait(fn, timeout, description)` polls
    (meshproof.wait.eventually); the reader's log is read once it finished."""
    meta = pod.get("metadata") or {}
    node = str((pod.get("spec") or {}).get("nodeName") or "")
    if not node:
        raise EvidenceCollectionError(f"pod {meta.get('name')} is not scheduled on a node yet")
    name = f"netns-{meta.get('name', 'pod')}"[:63].rstrip("-")
    cluster.apply(
        [reader_pod(name, reader_namespace, node, proxy_image(pod), container_id(pod))], test_id=test_id
    )
    try:

        def finished() -> dict[str, Any]:
            current = cluster.get("v1", "Pod", name, reader_namespace)
            if current is None or not reader_finished(current):
                phase = ((current or {}).get("status") or {}).get("phase", "not created")
                raise AssertionError(f"netns reader {reader_namespace}/{name} is {phase}")
            return current

        done = wait(finished, timeout, f"netns reader for {meta.get('namespace')}/{meta.get('name')}")
        log = cluster.logs(name, reader_namespace, READER_CONTAINER)
        if (done.get("status") or {}).get("phase") != "Succeeded":
            raise EvidenceCollectionError(f"netns reader {name} on {node} failed: {log.strip()[-300:]}")
        try:
            return parse_reader_output(log, pod=str(meta.get("name")), node=node)
        except EvidenceParseError as exc:
            raise EvidenceCollectionError(
                f"netns of {meta.get('namespace')}/{meta.get('name')}: {exc}"
            ) from exc
    finally:
        cluster.delete("v1", "Pod", name, reader_namespace)
