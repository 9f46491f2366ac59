"""Gateway API Inference Extension: an HTTPRoute to an InferencePool, where the endpoint picker decides.

The install deploys the set-up (meshproof.gie, shown by `meshproof plan --features gie`): an Istio-class
Gateway, a route whose backend is an InferencePool of three llm-d-inference-sim pods (idle; busy, reporting
a saturated queue and KV cache; lora, serving a LoRA adapter), the EPP, and two control backends on the same
Gateway: a pool of the API group this Istio does not watch, and a plain Service over the same pods. The API
is the one the install watches (upstream 1.27: v1alpha2; OSSM 3.2: v1; istio-facts §0 trap 2) and each test
records which (`gie.api`).

Evidence: the pod that served each reply (`x-inference-pod`), the status istiod wrote on the route and the
pool, and the gateway proxy's routes (ext_proc to the EPP's cluster). Every behaviour has its control in the
same test: the same request without the picker (plain Service), the other API group's pool, the EPP gone.
Needs a real cluster: Envoy's ext_proc call, the EPP's scheduling and the simulators run only there.
"""

from __future__ import annotations

from typing import Any

import pytest

from fixtures.gie import Inference
from meshproof import gie
from meshproof.checks import gie as checks
from meshproof.evidence.gie import model_server_load

pytestmark = [pytest.mark.gie, pytest.mark.feature("gie")]

HTTPROUTE = ("gateway.networking.k8s.io/v1", "HTTPRoute")


def pool_kind(api_version: str) -> tuple[str, str]:
    return (api_version, "InferencePool")


def test_route_to_the_pool_is_resolved_and_the_pool_accepted(inference: Inference) -> None:
    setup = inference.setup
    inference.require_status(
        lambda route: checks.route_refs_resolved(route, gie.GATEWAY),
        HTTPROUTE,
        gie.POOL_ROUTE,
        "istiod resolved the route's InferencePool backend (ResolvedRefs=True)",
    )
    inference.require_status(
        lambda pool: checks.pool_accepted_by(pool, gie.GATEWAY),
        pool_kind(setup.build.api_version),
        gie.POOL,
        f"the {setup.build.api_version} pool names the Gateway as accepted",
    )
    # Control: the same pool in the API group this Istio does not watch is not resolved.
    inference.require_status(
        lambda route: checks.route_refs_unresolved(route, gie.GATEWAY),
        HTTPROUTE,
        gie.OTHER_API_ROUTE,
        f"control: a route to a {setup.other.api_version} pool is not resolved (ResolvedRefs=False)",
    )


def test_gateway_proxy_calls_the_endpoint_picker(inference: Inference) -> None:
    setup = inference.setup
    inference.require_gateway_routes(
        lambda routes: checks.ext_proc_calls(routes, gie.POOL_HOST, setup.epp_cluster),
        f"the gateway's route to the pool calls ext_proc at {setup.epp_cluster} (FailClose)",
    )
    # Control: the route to a plain Service over the same pods gets no picker.
    inference.require_gateway_routes(
        lambda routes: checks.no_ext_proc(routes, gie.PLAIN_HOST),
        "control: the gateway's route to the plain Service has no ext_proc",
    )


def test_replies_through_the_gateway_name_the_serving_pool_pod(inference: Inference) -> None:
    pods = inference.pods()
    inference.expect_each(
        checks.served_by(pods.values(), model=gie.BASE_MODEL),
        "completions through the Gateway are served by pods of the pool, each reply naming its pod",
    )
    # Control: the route to the unresolved (other API) pool reaches no model server.
    inference.expect_each(
        checks.fails_closed(),
        "control: through the route to the unwatched pool no model server answers",
        host=gie.OTHER_API_HOST,
    )


def test_saturated_pod_gets_no_requests_from_the_picker(inference: Inference, record_property: Any) -> None:
    pods = inference.pods()
    busy = pods["busy"]
    load = model_server_load(inference.metrics("busy"))  # what the EPP reads from the busy pod
    record_property("gie.busy-load", f"{busy}: waiting={load.waiting} kv_cache={load.kv_cache}")
    assert load.waiting > 128 and load.kv_cache > 0.9, f"{busy} does not report saturation: {load}"
    inference.expect_batch(
        lambda replies: checks.avoided(replies, busy),
        f"the EPP sends no request to the saturated pod {busy}",
    )
    # Control: without the picker (plain Service, same pods) the saturated pod is served like the others.
    inference.expect_batch(
        lambda replies: checks.spread_over(replies, pods.values()),
        "control: through the plain Service every pod, the saturated one included, serves requests",
        host=gie.PLAIN_HOST,
        count=24,
    )


def test_lora_adapter_request_lands_on_the_pod_that_serves_it(inference: Inference) -> None:
    pods = inference.pods()
    inference.expect_each(
        checks.served_by({pods["lora"]}, model=gie.ADAPTER),
        f"requests for the adapter {gie.ADAPTER} are served by its pod {pods['lora']}",
        model=gie.ADAPTER,
        count=6,
    )
    # Control: without the picker, the adapter request also reaches pods that do not serve it, which refuse.
    inference.expect_batch(
        lambda replies: checks.refused_somewhere(replies, gie.ADAPTER),
        f"control: through the plain Service pods without {gie.ADAPTER} refuse it",
        host=gie.PLAIN_HOST,
        model=gie.ADAPTER,
        count=12,
    )


def test_unknown_model_is_refused(inference: Inference) -> None:
    inference.expect_each(
        checks.unknown_model_refused(gie.UNKNOWN_MODEL),
        f"a request for {gie.UNKNOWN_MODEL}, which no pod of the pool serves, is refused",
        model=gie.UNKNOWN_MODEL,
    )
    # Control: the same request for the pool's model is served.
    inference.expect_each(
        checks.served_by(inference.pods().values(), model=gie.BASE_MODEL),
        "control: the same request for the pool's model is served",
    )


def test_route_fails_closed_without_the_endpoint_picker(inference: Inference) -> None:
    with inference.epp_scaled_to_zero():
        inference.expect_each(
            checks.fails_closed(),
            "with the EPP scaled to zero the FailClose pool's route answers 5xx, reaching no model server",
        )
    # Control: with the EPP back, the same request is served again.
    inference.expect_each(
        checks.served_by(inference.pods().values(), model=gie.BASE_MODEL),
        "control: with the EPP restored the route serves again",
    )
