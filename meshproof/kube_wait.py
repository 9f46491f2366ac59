"""What a waited-on object looks like right now, in one line, and whether its rollout is done.

Pure functions over object dicts; `Cluster` polls and these read. The one-line summaries end up in
timeout messages ("last status: Available=False (MinimumReplicasUnavailable: ...), 0/1 replicas ready"),
because a timeout that does not say what it saw sends people to kubectl (suite-anchors §2 "Complaints":
debug info that is missing or empty).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from meshproof.kube_objects import ObjectRef
from meshproof.wait import WaitTimeout

_MESSAGE_MAX = 160  # condition messages can be paragraphs; the line has to stay readable
ROLLOUT_KINDS = ("Deployment", "DaemonSet", "StatefulSet")


class ResourceWaitTimeout(WaitTimeout):
    """A wait on one object timed out; the message names kind, name, namespace, cluster and last status."""


def timeout_message(ref: ObjectRef, cluster: str, what: str, timeout: float, last_status: str) -> str:
    return f"{ref} on cluster {cluster}: {what} after {timeout:g}s; last status: {last_status}"


@dataclass(frozen=True)
class Rollout:
    done: bool
    summary: str


def find_condition(obj: Mapping[str, Any], condition: str) -> dict[str, Any] | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == condition:
            return dict(cond)
    return None


def condition_text(cond: Mapping[str, Any]) -> str:
    """`Available=False (MinimumReplicasUnavailable: Deployment does not have minimum availability.)`"""
    text = f"{cond.get('type')}={cond.get('status')}"
    reason, message = cond.get("reason"), _shorten(str(cond.get("message") or ""))
    if reason and message:
        text += f" ({reason}: {message})"
    elif reason or message:
        text += f" ({reason or message})"
    return text


def describe_status(obj: Mapping[str, Any] | None) -> str:
    """One line about an object's state: conditions, replica counts, phase; 'not found' for None."""
    if obj is None:
        return "not found"
    status = obj.get("status") or {}
    parts = [condition_text(c) for c in status.get("conditions") or []]
    counts = _replica_counts(obj)
    if counts:
        parts.append(counts)
    if status.get("phase"):
        parts.append(f"phase {status['phase']}")
    if obj.get("metadata", {}).get("deletionTimestamp"):
        parts.append("being deleted")
    return ", ".join(parts) if parts else "no status reported yet"


def _replica_counts(obj: Mapping[str, Any]) -> str:
    kind, spec, status = obj.get("kind"), obj.get("spec") or {}, obj.get("status") or {}
    if kind in ("Deployment", "StatefulSet", "ReplicaSet"):
        return f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 1)} replicas ready"
    if kind == "DaemonSet":
        return f"{status.get('numberReady', 0)}/{status.get('desiredNumberScheduled', 0)} pods ready"
    return ""


def rollout_state(obj: Mapping[str, Any]) -> Rollout:
    """Whether a Deployment/DaemonSet/StatefulSet rolled out, as `kubectl rollout status` decides."""
    kind = obj.get("kind")
    meta, status = obj.get("metadata") or {}, obj.get("status") or {}
    if status.get("observedGeneration", 0) < meta.get("generation", 0):
        return Rollout(False, f"controller has not observed generation {meta.get('generation')} yet")
    if kind == "Deployment":
        return _deployment_rollout(obj)
    if kind == "DaemonSet":
        return _daemonset_rollout(obj)
    if kind == "StatefulSet":
        return _statefulset_rollout(obj)
    raise ValueError(f"rollout status is defined for {', '.join(ROLLOUT_KINDS)}, not {kind}")


def _deployment_rollout(obj: Mapping[str, Any]) -> Rollout:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    want = spec.get("replicas", 1)
    updated, total = status.get("updatedReplicas", 0), status.get("replicas", 0)
    available = status.get("availableReplicas", 0)
    summary = f"{describe_status(obj)}; {updated} updated, {available} available"
    progressing = find_condition(obj, "Progressing")
    if progressing and progressing.get("reason") == "ProgressDeadlineExceeded":
        return Rollout(False, f"progress deadline exceeded; {summary}")
    done = updated >= want and total <= updated and available >= updated
    return Rollout(done, summary)


def _daemonset_rollout(obj: Mapping[str, Any]) -> Rollout:
    status = obj.get("status") or {}
    desired = status.get("desiredNumberScheduled", 0)
    updated, available = status.get("updatedNumberScheduled", 0), status.get("numberAvailable", 0)
    summary = f"{describe_status(obj)}; {updated}/{desired} updated, {available}/{desired} available"
    if (obj.get("spec") or {}).get("updateStrategy", {}).get("type") == "OnDelete":
        return Rollout(available >= desired, summary)  # nothing rolls until pods are deleted by hand
    return Rollout(updated >= desired and available >= desired, summary)


def _statefulset_rollout(obj: Mapping[str, Any]) -> Rollout:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    want = spec.get("replicas", 1)
    ready, updated = status.get("readyReplicas", 0), status.get("updatedReplicas", 0)
    summary = f"{describe_status(obj)}; {updated} updated"
    if ready < want:
        return Rollout(False, summary)
    strategy = spec.get("updateStrategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        return Rollout(True, summary)
    partition = (strategy.get("rollingUpdate") or {}).get("partition", 0)
    if partition:
        return Rollout(updated >= want - partition, summary)
    return Rollout(status.get("updateRevision") == status.get("currentRevision"), summary)


def pod_summary(pod: Mapping[str, Any]) -> str:
    """`istiod-7d4-x2: Pending, 0/1 ready, discovery waiting (ImagePullBackOff: Back-off pulling ...)`"""
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    statuses = list(status.get("initContainerStatuses") or []) + list(status.get("containerStatuses") or [])
    main = status.get("containerStatuses") or []
    ready = sum(1 for c in main if c.get("ready"))
    parts = [str(status.get("phase", "Unknown")), f"{ready}/{len(main)} ready"]
    for cs in statuses:
        state = cs.get("state") or {}
        for phase in ("waiting", "terminated"):
            detail = state.get(phase)
            if detail and detail.get("reason") not in (None, "Completed"):
                msg = _shorten(str(detail.get("message") or ""))
                parts.append(f"{cs.get('name')} {phase} ({detail['reason']}{': ' + msg if msg else ''})")
        if cs.get("restartCount"):
            parts.append(f"{cs.get('name')} restarted {cs['restartCount']}x")
    unschedulable = find_condition(pod, "PodScheduled")
    if unschedulable and unschedulable.get("status") == "False":
        parts.append(condition_text(unschedulable))
    return f"{meta.get('name')}: {', '.join(parts)}"


def selector_string(obj: Mapping[str, Any]) -> str | None:
    """The workload's spec.selector.matchLabels as a label selector string (None when it has none)."""
    labels = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or None


def _shorten(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MESSAGE_MAX else text[: _MESSAGE_MAX - 3] + "..."
