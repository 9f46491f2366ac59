"""Install-health verdicts on realistic objects and log text, each with the case that must fail."""

from __future__ import annotations

from typing import Any

from meshproof.mesh import health

ISTIOD = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "istiod", "namespace": "istio-system", "generation": 3},
    "spec": {
        "replicas": 1,
        "selector": {"matchLabels": {"app": "istiod", "istio.io/rev": "default"}},
        "template": {
            "spec": {
                "containers": [
                    {
                        "name": "discovery",
                        "image": "docker.io/istio/pilot:1.27.9-distroless",
                        "env": [
                            {"name": "PILOT_ENABLE_AMBIENT", "value": "true"},
                            {"name": "CA_TRUSTED_NODE_ACCOUNTS", "value": "ztunnel/ztunnel"},
                            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                        ],
                    }
                ]
            }
        },
    },
    "status": {
        "observedGeneration": 3,
        "replicas": 1,
        "updatedReplicas": 1,
        "readyReplicas": 1,
        "availableReplicas": 1,
        "conditions": [{"type": "Available", "status": "True"}],
    },
}


def _pod(annotations: dict[str, str], containers: list[str], init: list[str] | None = None) -> dict[str, Any]:
    return {
        "kind": "Pod",
        "metadata": {"name": "probe", "namespace": "ns", "annotations": annotations},
        "spec": {
            "containers": [{"name": c} for c in containers],
            "initContainers": [{"name": c} for c in init or []],
        },
    }


def test_rollout_of_an_available_deployment_passes_and_a_lagging_one_fails():
    assert health.rolled_out(ISTIOD)
    lagging = {**ISTIOD, "status": {**ISTIOD["status"], "availableReplicas": 0, "readyReplicas": 0}}
    assert not health.rolled_out(lagging)
    assert not health.rolled_out(None, "istiod")


def test_env_reads_literal_values_and_absent_means_unset():
    assert health.env_is(ISTIOD, "discovery", "CA_TRUSTED_NODE_ACCOUNTS", "ztunnel/ztunnel")
    wrong = health.env_is(ISTIOD, "discovery", "CA_TRUSTED_NODE_ACCOUNTS", "kube-system/ztunnel")
    assert not wrong and "'ztunnel/ztunnel'" in wrong.reason
    assert health.env_is(ISTIOD, "discovery", "ENABLE_GATEWAY_API_INFERENCE_EXTENSION", None)
    assert not health.env_is(ISTIOD, "discovery", "PILOT_ENABLE_AMBIENT", None)
    assert "POD_NAME" not in health.container_env(ISTIOD, "discovery")


def test_sidecar_injection_needs_the_status_annotation_and_the_proxy():
    classic = _pod(
        {"sidecar.istio.io/status": '{"containers":["istio-proxy"]}'}, ["app", "istio-proxy"], ["istio-init"]
    )
    native = _pod({"sidecar.istio.io/status": "{}"}, ["app"], ["istio-validation", "istio-proxy"])  # trap 3
    assert health.sidecar_injected(classic) and health.sidecar_injected(native)
    assert not health.sidecar_injected(_pod({}, ["app"]))
    assert not health.sidecar_injected(_pod({"sidecar.istio.io/status": "{}"}, ["app"]))


def test_ambient_redirection_and_the_negative_control():
    enrolled = _pod({"ambient.istio.io/redirection": "enabled"}, ["app"])
    bare = _pod({}, ["pause"])
    assert health.ambient_redirected(enrolled)
    assert not health.ambient_redirected(bare)
    assert health.not_enrolled(bare)
    assert not health.not_enrolled(enrolled)
    assert not health.not_enrolled(_pod({}, ["app", "istio-proxy"]))


def test_version_match_is_exact_on_the_patch():
    assert health.version_matches("1.27.9\n", "1.27.9")
    assert not health.version_matches("1.27.9\n", "1.27.10")
    assert not health.version_matches("1.27.3-redhat\n", "1.27.9")
    assert health.version_matches("1.27.3_ossm\n", "1.27.3")
    assert not health.version_matches("unknown", "1.27.9")
    dev = health.version_matches("1.30-dev-b01690e6db7d\n", "1.27.9")  # istiod built from master
    assert not dev and dev.reason == "reported 1.30-dev, requested 1.27.9"
    assert health.image_version("docker.io/istio/pilot:1.27.9-distroless") == "1.27.9-distroless"
    assert health.image_version("registry.redhat.io/x/istio-pilot-rhel9@sha256:abc") == ""


SETTLED_LOG = "\n".join(
    [
        "2025-11-26T10:00:01Z\tINFO\tctrlr.istio\tReconciling",
        "2025-11-26T10:00:02Z\tINFO\tctrlr.istio\tReconciliation done. Updating status.",
        "2025-11-26T10:00:30Z\tINFO\tctrlr.ztunnel\tReconciliation done. Updating status.",
    ]
)
HOT_LOOP_LOG = "\n".join(
    f"2025-11-26T10:00:{i % 60:02d}Z\tINFO\tctrlr.istiocni\tReconciliation done. Updating status."
    for i in range(240)
)


def test_reconcile_rate_passes_a_settled_operator_and_fails_a_hot_loop():
    settled = health.reconcile_rate(SETTLED_LOG, window_s=60, max_per_minute=10)
    assert settled and "2 reconciles" in settled.reason
    hot = health.reconcile_rate(HOT_LOOP_LOG, window_s=60, max_per_minute=10)
    assert not hot and "240 reconciles" in hot.reason


def test_condition_true_reads_status_conditions():
    istio = {
        "kind": "Istio",
        "metadata": {"name": "default"},
        "status": {"conditions": [{"type": "Ready", "status": "False", "reason": "IstiodNotReady"}]},
    }
    verdict = health.condition_true(istio, "Ready")
    assert not verdict and "IstiodNotReady" in verdict.reason
    istio["status"]["conditions"][0]["status"] = "True"  # type: ignore[index]
    assert health.condition_true(istio, "Ready")
    assert not health.condition_true(
        {"kind": "ZTunnel", "metadata": {"name": "default"}, "status": {}}, "Ready"
    )
