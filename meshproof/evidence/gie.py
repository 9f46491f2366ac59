"""Observations of the inference set-up: the model server's reply, its vLLM-style metrics, the status istiod
wrote on the route and the pool, and the routes the Gateway's proxy was programmed with. Nothing decides.

Formats (read at their sources, llm-d-inference-sim v0.4.0):
- reply: OpenAI completions JSON (`object`, `model`, `choices[].text`), the serving pod in the
  `x-inference-pod` header (success replies only); errors as the flat `CompletionError`
  `{"object": "error", "message", "type", "param", "code"}` (pkg/openai-server-api/response.go,
  simulator.go sendCompletionError);
- metrics: Prometheus text with `vllm:num_requests_running`, `vllm:num_requests_waiting`,
  `vllm:gpu_cache_usage_perc` and `vllm:lora_requests_info{running_lora_adapters,waiting_lora_adapters,
  max_lora}` (pkg/llm-d-inference-sim/metrics.go) - the names the EPP scrapes.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from meshproof.evidence.collect import Istioctl
from meshproof.evidence.errors import EvidenceCollectionError, EvidenceParseError
from meshproof.evidence.prometheus import MetricSample, parse_exposition
from meshproof.kube_api import PodLister, PortForwarding
from meshproof.traffic import Response

POD_HEADER = "x-inference-pod"
RUNNING = "vllm:num_requests_running"
WAITING = "vllm:num_requests_waiting"
KV_CACHE = "vllm:gpu_cache_usage_perc"
LORA_INFO = "vllm:lora_requests_info"
# Label Gateway API implementations put on the Deployment/pods they create for a Gateway (Istio 1.27).
GATEWAY_NAME_LABEL = "gateway.networking.k8s.io/gateway-name"


@dataclass(frozen=True)
class CompletionReply:
    """What a completions call returned: status, serving pod, model, or the error message."""

    status: int | None
    pod: str | None
    model: str | None
    error: str | None


def completion_reply(response: Response) -> CompletionReply:
    """Read a Response of a completions call. A body that is not JSON (a gateway's own text reply) leaves
    `model` empty and the text as `error`, so a check can say what answered instead."""
    body: Any = None
    try:
        body = json.loads(response.body) if response.body.strip() else None
    except json.JSONDecodeError:
        body = None
    model = error = None
    if isinstance(body, dict):
        model = _str(body.get("model"))
        if body.get("object") == "error":
            error = _str(body.get("message"))
    elif response.body.strip():
        error = response.body.strip()[:300]
    return CompletionReply(
        status=response.status,
        pod=response.headers.get(POD_HEADER) or None,
        model=model,
        error=error,
    )


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True)
class ModelServerLoad:
    """The load a model server reports to the EPP."""

    running: float
    waiting: float
    kv_cache: float
    running_adapters: tuple[str, ...]
    waiting_adapters: tuple[str, ...]


def model_server_load(samples: Sequence[MetricSample]) -> ModelServerLoad:
    """The vLLM gauges of one scrape; raises EvidenceParseError when the queue gauges are missing."""

    def gauge(name: str) -> float:
        values = [s.value for s in samples if s.name == name]
        if not values:
            raise EvidenceParseError(f"no {name} sample in the model server's metrics")
        return sum(values)

    # vllm:lora_requests_info is one series per observation; the newest (highest value = timestamp) counts.
    lora = max((s for s in samples if s.name == LORA_INFO), key=lambda s: s.value, default=None)

    def adapters(label: str) -> tuple[str, ...]:
        text = lora.label(label) if lora is not None else None
        return tuple(a for a in (text or "").split(",") if a)

    return ModelServerLoad(
        running=gauge(RUNNING),
        waiting=gauge(WAITING),
        kv_cache=gauge(KV_CACHE),
        running_adapters=adapters("running_lora_adapters"),
        waiting_adapters=adapters("waiting_lora_adapters"),
    )


# --- collectors ----------------------------------------------------------------------------------------


def model_server_metrics(
    cluster: PortForwarding, pod: str, namespace: str, port: int, *, timeout: float = 10.0
) -> list[MetricSample]:
    """Scrape a model server's `/metrics` (what the EPP reads) through a loopback port-forward."""
    with cluster.port_forward(pod, namespace, port) as local_port:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{local_port}/metrics", timeout=timeout) as reply:
                text = reply.read().decode("utf-8", errors="replace")
        except (urllib.error.URLError, OSError) as exc:
            raise EvidenceCollectionError(f"metrics of {namespace}/{pod}:{port}: {exc}") from exc
    try:
        return parse_exposition(text)
    except EvidenceParseError as exc:
        raise EvidenceCollectionError(f"metrics of {namespace}/{pod}: {exc}") from exc


def gateway_pod(cluster: PodLister, gateway: str, namespace: str) -> str:
    """The running pod Istio deployed for a Gateway."""
    pods = cluster.pods(namespace, f"{GATEWAY_NAME_LABEL}={gateway}")
    running = [p for p in pods if (p.get("status") or {}).get("phase") == "Running"]
    if not running:
        raise EvidenceCollectionError(f"no running pod for Gateway {namespace}/{gateway} ({len(pods)} found)")
    return str(running[0]["metadata"]["name"])


def gateway_routes(istioctl: Istioctl, pod: str, namespace: str) -> Any:
    """`istioctl proxy-config route <pod> -n <ns> -o json`: the gateway's route configurations (a list)."""
    text = istioctl.output(["proxy-config", "route", pod, "-n", namespace, "-o", "json"])
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise EvidenceCollectionError(f"proxy-config route of {namespace}/{pod} is not JSON: {exc}") from exc


def pod_names(cluster: PodLister, namespace: str, label_selector: str) -> dict[str, str]:
    """Running pods by the value of their model-server role label -> pod name."""
    out: dict[str, str] = {}
    for pod in cluster.pods(namespace, label_selector):
        if (pod.get("status") or {}).get("phase") != "Running":
            continue
        labels = pod["metadata"].get("labels") or {}
        role = labels.get("meshproof.io/model-server-role")
        if role:
            out[str(role)] = str(pod["metadata"]["name"])
    return out
