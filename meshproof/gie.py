"""The Gateway API Inference Extension (GIE) set-up the `gie` suite runs against, rendered from the MeshSpec.

One namespace holds: an Istio-class Gateway; an HTTPRoute whose backend is an InferencePool; the pool,
selecting three model-server pods; its endpoint picker (EPP) with a pinned image and scheduler; and, for
the negative controls, a pool of the other API group and a plain Service over the same pods, each behind
its own route (told apart by host name).

API: the one the installed Istio watches (istio-facts §0 trap 2, §7.1): upstream Istio 1.27 watches only
`inference.networking.x-k8s.io/v1alpha2` (GIE v0.5), Red Hat's 1.27 build in OSSM 3.2 only
`inference.networking.k8s.io/v1` (GIE v1.0). `GieSetup.for_spec` picks it from the spec's build and says
which in `describe()`; the EPP image follows the same GIE release.

Model servers: llm-d-inference-sim, pinned at v0.4.0, because that is the first release that (a) names the
serving pod in an `x-inference-pod` reply header (from POD_NAME), which is how a reply proves which pod the
EPP chose; (b) takes `--fake-metrics`, so one pod can report a saturated queue and KV cache to the EPP
without a load generator racing the test; (c) takes `--lora-modules` for a per-pod LoRA adapter; and (d) is
the simulator GIE v1.0.1's own manifests deploy (istio-facts §7.4). Its vLLM metric names are the ones both
EPP releases scrape (`vllm:num_requests_waiting`, `vllm:gpu_cache_usage_perc`, `vllm:lora_requests_info`).

The model servers stay out of the mesh: the behaviour under test is the gateway's ext_proc call to the EPP
and the EPP's choice, and an enrolled pod would add a second proxy between the two without changing either.
Images are pinned by tag; mirror them and pin digests with MESHPROOF_GIE_EPP_IMAGE / MESHPROOF_GIE_SIM_IMAGE.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from meshproof.mesh import pins
from meshproof.mesh.spec import MeshSpec
from meshproof.mesh.templates import render, render_one

NAMESPACE = "meshproof-gie"
GATEWAY = "meshproof-inference"
# Istio names the Deployment and Service of a Gateway `<name>-<class>` (istio-facts §7.3).
GATEWAY_SERVICE = f"{GATEWAY}-istio"
GATEWAY_PORT = 80
POOL = "meshproof-llm"
OTHER_API_POOL = "meshproof-llm-other-api"
EPP = "meshproof-llm-epp"
PLAIN_SERVICE = "meshproof-llm-plain"
SELECTOR_LABEL = "meshproof.io/inference-pool"
ROLE_LABEL = "meshproof.io/model-server-role"
MODEL_PORT = 8000
EPP_GRPC_PORT = 9002
EPP_HEALTH_PORT = 9003

BASE_MODEL = "meshproof-base"
ADAPTER = "meshproof-adapter"  # a LoRA adapter only the `lora` pod serves
UNKNOWN_MODEL = "meshproof-no-such-model"

# Host names of the three routes on the one Gateway.
POOL_HOST = "pool.gie.meshproof.test"
OTHER_API_HOST = "other-api.gie.meshproof.test"
PLAIN_HOST = "plain.gie.meshproof.test"
POOL_ROUTE, OTHER_API_ROUTE, PLAIN_ROUTE = (
    "meshproof-llm-pool",
    "meshproof-llm-other-api",
    "meshproof-llm-plain",
)

SIM_IMAGE = "ghcr.io/llm-d/llm-d-inference-sim:v0.4.0"
EPP_IMAGES = {
    # The EPP of the GIE minor whose CRDs Istio builds against (meshproof.mesh.pins: v0.5.0 upstream,
    # v1.0.0 OSSM); its patch release, whose API and CRD schemas are the same as the .0 release's.
    pins.GIE_UPSTREAM.api_version: "registry.k8s.io/gateway-api-inference-extension/epp:v0.5.1",
    pins.GIE_OSSM.api_version: "registry.k8s.io/gateway-api-inference-extension/epp:v1.0.1",
}

# What the busy pod reports instead of real metrics: a queue far above the EPP's low-queue threshold (128 in
# GIE v0.5) and a nearly full KV cache, so every scheduler profile below ranks it last.
BUSY_METRICS: dict[str, Any] = {"running-requests": 64, "waiting-requests": 1000, "kv-cache-usage": 0.99}
# The LoRA pod reports its adapter as running, which is what the EPP's LoRA affinity reads
# (`vllm:lora_requests_info`); the fixed timestamp keeps the rendering deterministic.
LORA_METRICS: dict[str, Any] = {
    "running-requests": 0,
    "waiting-requests": 0,
    "kv-cache-usage": 0.0,
    # On the command line `loras` is a list of objects (llm-d-sim@v0.4.0 config.go unmarshalFakeMetrics);
    # only a config file takes them as JSON strings.
    "loras": [{"running": ADAPTER, "waiting": "", "timestamp": 1700000000}],
}


@dataclass(frozen=True)
class ModelServer:
    """One simulator pod of the pool and how it is configured."""

    role: str  # idle | busy | lora
    fake_metrics: dict[str, Any] | None = None
    adapter: str | None = None

    @property
    def name(self) -> str:
        return f"meshproof-llm-{self.role}"

    def args(self) -> list[str]:
        # Flags of llm-d-inference-sim v0.4.0 (llm-d-sim@v0.4.0:pkg/common/config.go, istio-facts §7.4).
        args = ["--model", BASE_MODEL, "--port", str(MODEL_PORT), "--mode", "echo", "--max-loras", "2"]
        if self.adapter:
            args += ["--lora-modules", json.dumps({"name": self.adapter}, separators=(",", ":"))]
        if self.fake_metrics is not None:
            args += ["--fake-metrics", json.dumps(self.fake_metrics, sort_keys=True, separators=(",", ":"))]
        return args


MODEL_SERVERS = (
    ModelServer("idle"),
    ModelServer("busy", fake_metrics=BUSY_METRICS),
    ModelServer("lora", fake_metrics=LORA_METRICS, adapter=ADAPTER),
)


def model_server(role: str) -> ModelServer:
    for server in MODEL_SERVERS:
        if server.role == role:
            return server
    raise KeyError(f"no model server with role {role!r}")


@dataclass(frozen=True)
class GieSetup:
    """Which inference API the run uses, and every object of its set-up."""

    build: pins.GieBuild
    other: pins.GieBuild
    namespace: str = NAMESPACE
    epp_image: str = ""
    sim_image: str = SIM_IMAGE

    @classmethod
    def for_spec(cls, spec: MeshSpec) -> GieSetup:
        build, other = (
            (pins.GIE_OSSM, pins.GIE_UPSTREAM) if spec.build == "ossm" else (pins.GIE_UPSTREAM, pins.GIE_OSSM)
        )
        return cls(
            build=build,
            other=other,
            epp_image=os.environ.get("MESHPROOF_GIE_EPP_IMAGE") or EPP_IMAGES[build.api_version],
            sim_image=os.environ.get("MESHPROOF_GIE_SIM_IMAGE") or SIM_IMAGE,
        )

    def describe(self) -> str:
        return (
            f"InferencePool {self.build.api_version} (GIE {self.build.crd_ref}); the other API "
            f"{self.other.api_version} is the unresolved control"
        )

    # --- rendering --------------------------------------------------------------------------------

    def objects(self) -> list[dict[str, Any]]:
        """Every object of the set-up, in apply order."""
        docs = [render_one("mesh/namespace.yaml.j2", name=self.namespace, labels={})]
        docs += self.model_servers()
        docs += self.epp()
        docs.append(self.pool(self.build, POOL))
        docs.append(self.other_api_pool())
        docs.append(self.plain_service())
        docs.append(render_one("gie/gateway.yaml.j2", name=GATEWAY, namespace=self.namespace))
        docs += self.routes()
        return docs

    def model_servers(self) -> list[dict[str, Any]]:
        return [
            render_one(
                "gie/model-server.yaml.j2",
                name=server.name,
                namespace=self.namespace,
                role=server.role,
                selector_label=SELECTOR_LABEL,
                selector_value=POOL,
                image=self.sim_image,
                args=server.args(),
                port=MODEL_PORT,
            )
            for server in MODEL_SERVERS
        ]

    def epp(self) -> list[dict[str, Any]]:
        return render(
            "gie/epp.yaml.j2",
            name=EPP,
            namespace=self.namespace,
            pool=POOL,
            gie_ref=self.build.crd_ref,
            image=self.epp_image,
            args=epp_args(self.build, self.namespace),
            scheduler_config=scheduler_config(self.build),
            grpc_port=EPP_GRPC_PORT,
            health_port=EPP_HEALTH_PORT,
        )

    def pool(self, build: pins.GieBuild, name: str) -> dict[str, Any]:
        return render_one(
            f"gie/inferencepool-{build.version}.yaml.j2",
            name=name,
            namespace=self.namespace,
            selector_label=SELECTOR_LABEL,
            selector_value=POOL,
            target_port=MODEL_PORT,
            epp_service=EPP,
            epp_port=EPP_GRPC_PORT,
        )

    def other_api_pool(self) -> dict[str, Any]:
        """The same pool in the API group this Istio does not watch (needs that group's CRD installed)."""
        return self.pool(self.other, OTHER_API_POOL)

    def plain_service(self) -> dict[str, Any]:
        return render_one(
            "gie/model-service.yaml.j2",
            name=PLAIN_SERVICE,
            namespace=self.namespace,
            selector_label=SELECTOR_LABEL,
            selector_value=POOL,
            port=MODEL_PORT,
        )

    def routes(self) -> list[dict[str, Any]]:
        return [
            self.route(
                POOL_ROUTE, POOL_HOST, backend_kind="InferencePool", backend=POOL, group=self.build.group
            ),
            self.other_api_route(),
            self.route(PLAIN_ROUTE, PLAIN_HOST, backend_kind="Service", backend=PLAIN_SERVICE),
        ]

    def other_api_route(self) -> dict[str, Any]:
        return self.route(
            OTHER_API_ROUTE,
            OTHER_API_HOST,
            backend_kind="InferencePool",
            backend=OTHER_API_POOL,
            group=self.other.group,
        )

    def route(
        self, name: str, hostname: str, *, backend_kind: str, backend: str, group: str = ""
    ) -> dict[str, Any]:
        return render_one(
            "gie/httproute.yaml.j2",
            name=name,
            namespace=self.namespace,
            gateway=GATEWAY,
            hostname=hostname,
            backend_kind=backend_kind,
            backend=backend,
            backend_group=group,
            backend_port=MODEL_PORT,
        )

    # --- addresses --------------------------------------------------------------------------------

    @property
    def gateway_host(self) -> str:
        return f"{GATEWAY_SERVICE}.{self.namespace}.svc.cluster.local"

    @property
    def epp_cluster(self) -> str:
        """The Envoy cluster the gateway's ext_proc must call (istio@1.27.9 route.go BuildSubsetKey)."""
        return f"outbound|{EPP_GRPC_PORT}||{EPP}.{self.namespace}.svc.cluster.local"


def epp_args(build: pins.GieBuild, namespace: str) -> list[str]:
    """EPP flags: GIE v0.5 spells them in single-dash camelCase, v1.0 in kebab-case (istio-facts §7.3)."""
    if build.version == "v1alpha2":
        return [
            "-poolName", POOL, "-poolNamespace", namespace, "-v", "4", "--zap-encoder", "json",
            "-grpcPort", str(EPP_GRPC_PORT), "-grpcHealthPort", str(EPP_HEALTH_PORT),
            "-configFile", "/config/scheduler.yaml",
        ]  # fmt: skip
    return [
        "--pool-name", POOL, "--pool-namespace", namespace, "--pool-group", build.group, "--v", "4",
        "--zap-encoder", "json", "--grpc-port", str(EPP_GRPC_PORT),
        "--grpc-health-port", str(EPP_HEALTH_PORT), "--config-file", "/config/scheduler.yaml",
    ]  # fmt: skip


def scheduler_config(build: pins.GieBuild) -> str:
    """The EPP's scheduler: queue depth, KV cache and LoRA affinity decide, so the behaviours under test
    (saturated pod avoided, adapter request on the adapter's pod) are the EPP's own choices.

    Plugin type names per release: gie@v0.5.1 pkg/epp/scheduling/framework/plugins/{filter,picker,profile},
    gie@v1.0.1 .../plugins/{scorer,picker,profile}.
    """
    if build.version == "v1alpha2":
        plugins: list[dict[str, Any]] = [
            {"type": "low-queue-filter", "parameters": {"threshold": 128}},
            {"type": "lora-affinity-filter", "parameters": {"threshold": 0.999}},
            {"type": "least-queue-filter"},
            {"type": "random-picker", "parameters": {"maxNumOfEndpoints": 1}},
            {"type": "single-profile-handler"},
        ]
        profile = ["low-queue-filter", "lora-affinity-filter", "least-queue-filter", "random-picker"]
    else:
        plugins = [
            {"type": "queue-scorer"},
            {"type": "kv-cache-utilization-scorer"},
            {"type": "lora-affinity-scorer"},
            {"type": "max-score-picker"},
            {"type": "single-profile-handler"},
        ]
        profile = ["queue-scorer", "kv-cache-utilization-scorer", "lora-affinity-scorer", "max-score-picker"]
    config = {
        "apiVersion": "inference.networking.x-k8s.io/v1alpha1",
        "kind": "EndpointPickerConfig",
        "plugins": plugins,
        "schedulingProfiles": [{"name": "default", "plugins": [{"pluginRef": ref} for ref in profile]}],
    }
    return json.dumps(config, indent=2, sort_keys=False) + "\n"


def completion_request(model: str, prompt: str = "meshproof") -> str:
    """An OpenAI completions request body (istio-facts §7.4 sample request)."""
    return json.dumps({"model": model, "prompt": prompt, "max_tokens": 8, "temperature": 0})
