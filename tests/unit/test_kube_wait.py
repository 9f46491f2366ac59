"""Rollout decisions and one-line status summaries over realistic status (as `kubectl -o yaml` shows it)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from meshproof.kube_wait import describe_status, pod_summary, rollout_state, selector_string

ISTIOD_STUCK: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "istiod", "namespace": "istio-system", "generation": 1},
    "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "istiod", "istio.io/rev": "default"}}},
    "status": {
        "observedGeneration": 1,
        "replicas": 1,
        "updatedReplicas": 1,
        "unavailableReplicas": 1,
        "conditions": [
            {
                "type": "Available",
                "status": "False",
                "reason": "MinimumReplicasUnavailable",
                "message": "Deployment does not have minimum availability.",
                "lastTransitionTime": "2026-11-26T06:45:01Z",
            },
            {
                "type": "Progressing",
                "status": "True",
                "reason": "ReplicaSetUpdated",
                "message": 'ReplicaSet "istiod-7d4c9f8b6" is progressing.',
            },
        ],
    },
}


def _ready(deploy: dict[str, Any]) -> dict[str, Any]:
    done = copy.deepcopy(deploy)
    done["status"] = {
        "observedGeneration": 1,
        "replicas": 1,
        "updatedReplicas": 1,
        "readyReplicas": 1,
        "availableReplicas": 1,
        "conditions": [
            {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
            {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
        ],
    }
    return done


def test_stuck_deployment_is_not_done_and_says_why():
    state = rollout_state(ISTIOD_STUCK)
    assert not state.done
    assert state.summary.startswith(
        "Available=False (MinimumReplicasUnavailable: Deployment does not have minimum availability.)"
    )
    assert "0/1 replicas ready" in state.summary
    assert "1 updated, 0 available" in state.summary


def test_available_deployment_is_done():
    assert rollout_state(_ready(ISTIOD_STUCK)).done


def test_unobserved_generation_is_not_done_even_if_counts_look_fine():
    newer = _ready(ISTIOD_STUCK)
    newer["metadata"]["generation"] = 2
    state = rollout_state(newer)
    assert not state.done
    assert "generation 2" in state.summary


def test_old_replicas_still_terminating_is_not_done():
    rolling = _ready(ISTIOD_STUCK)
    rolling["status"]["replicas"] = 2  # one old pod still around
    assert not rollout_state(rolling).done


def test_progress_deadline_exceeded_is_named():
    failed = copy.deepcopy(ISTIOD_STUCK)
    failed["status"]["conditions"][1].update(
        reason="ProgressDeadlineExceeded",
        status="False",
        message='ReplicaSet "istiod-7d4c9f8b6" has timed out',
    )
    state = rollout_state(failed)
    assert not state.done
    assert state.summary.startswith("progress deadline exceeded")


ZTUNNEL: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "DaemonSet",
    "metadata": {"name": "ztunnel", "namespace": "istio-system", "generation": 3},
    "spec": {"updateStrategy": {"type": "RollingUpdate"}},
    "status": {
        "observedGeneration": 3,
        "desiredNumberScheduled": 3,
        "currentNumberScheduled": 3,
        "updatedNumberScheduled": 2,
        "numberReady": 2,
        "numberAvailable": 2,
        "numberUnavailable": 1,
    },
}


def test_daemonset_mid_rollout_is_not_done():
    state = rollout_state(ZTUNNEL)
    assert not state.done
    assert "2/3 pods ready" in state.summary and "2/3 updated" in state.summary


def test_daemonset_all_updated_and_available_is_done():
    done = copy.deepcopy(ZTUNNEL)
    done["status"].update(updatedNumberScheduled=3, numberReady=3, numberAvailable=3, numberUnavailable=0)
    assert rollout_state(done).done


@pytest.mark.parametrize(
    ("status", "done"),
    [
        ({"readyReplicas": 2, "updatedReplicas": 2, "currentRevision": "r1", "updateRevision": "r2"}, False),
        ({"readyReplicas": 2, "updatedReplicas": 2, "currentRevision": "r2", "updateRevision": "r2"}, True),
        ({"readyReplicas": 1, "updatedReplicas": 2, "currentRevision": "r2", "updateRevision": "r2"}, False),
    ],
)
def test_statefulset_waits_for_ready_replicas_and_the_new_revision(status: dict[str, Any], done: bool):
    sts = {
        "kind": "StatefulSet",
        "metadata": {"name": "redis", "generation": 1},
        "spec": {"replicas": 2},
        "status": {"observedGeneration": 1, **status},
    }
    assert rollout_state(sts).done is done


def test_rollout_of_other_kinds_is_refused():
    with pytest.raises(ValueError, match="not Pod"):
        rollout_state({"kind": "Pod", "metadata": {}, "status": {}})


def test_describe_status_of_missing_and_statusless_objects():
    assert describe_status(None) == "not found"
    assert describe_status({"kind": "ConfigMap", "metadata": {"name": "x"}}) == "no status reported yet"


def test_long_condition_messages_are_shortened_to_keep_one_line():
    noisy = copy.deepcopy(ISTIOD_STUCK)
    noisy["status"]["conditions"][0]["message"] = "very long\nmessage " * 50
    text = describe_status(noisy)
    assert "\n" not in text
    shown = text.split("(MinimumReplicasUnavailable: ", 1)[1].split("), ", 1)[0]
    assert len(shown) == 160 and shown.endswith("...")


CRASHING_POD: dict[str, Any] = {
    "kind": "Pod",
    "metadata": {"name": "istiod-7d4c9f8b6-x2kq9", "namespace": "istio-system"},
    "status": {
        "phase": "Running",
        "initContainerStatuses": [
            {
                "name": "istio-init",
                "ready": True,
                "restartCount": 0,
                "state": {"terminated": {"reason": "Completed"}},
            }
        ],
        "containerStatuses": [
            {
                "name": "discovery",
                "ready": False,
                "restartCount": 4,
                "state": {
                    "waiting": {
                        "reason": "CrashLoopBackOff",
                        "message": "back-off 1m20s restarting failed container=discovery",
                    }
                },
            }
        ],
    },
}


def test_pod_summary_names_the_waiting_reason_and_restarts_but_not_completed_init():
    text = pod_summary(CRASHING_POD)
    assert text == (
        "istiod-7d4c9f8b6-x2kq9: Running, 0/1 ready, discovery waiting (CrashLoopBackOff: back-off 1m20s "
        "restarting failed container=discovery), discovery restarted 4x"
    )


def test_pod_summary_shows_unschedulable_pods():
    pending = {
        "metadata": {"name": "p"},
        "status": {
            "phase": "Pending",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "0/1 nodes are available: 1 Insufficient memory.",
                }
            ],
        },
    }
    assert (
        "PodScheduled=False (Unschedulable: 0/1 nodes are available: 1 Insufficient memory.)"
        in pod_summary(pending)
    )


def test_selector_string_from_match_labels():
    assert selector_string(ISTIOD_STUCK) == "app=istiod,istio.io/rev=default"
    assert selector_string({"spec": {}}) is None
