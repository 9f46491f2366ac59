"""The gie suite's engine: set-up rendering, reply parsing and the verdicts, each shown to reject.

Real data, through tests/fixtures_data/shared_data.py:
- istiod's own status for routes to an InferencePool (istio@1.27.9 pilot/pkg/config/kube/gateway/testdata/
  reference-policy-inferencepool.status.yaml.golden): both routes there have ResolvedRefs=False and the
  pool has no parent status - the cases the "resolved" and "accepted" checks must reject;
- Gateway route configurations as istioctl reads them (istio@1.27.9 istioctl/pkg/writer/envoy/configdump/
  testdata/routes/*): real Gateway routes without ext_proc - what the ext_proc check must reject and the
  "no picker" check must accept.
No real capture of a route *with* Istio's ext_proc override, or of the simulator's replies, could be
obtained here (the simulator's Go module is not served by the Go module proxy: 403), so the accepting
cases are the real documents above with exactly the change istiod makes, written out in each test.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from fixtures_data.shared_data import upstream

from meshproof import gie
from meshproof.checks import gie as checks
from meshproof.config import load_config
from meshproof.evidence.gie import completion_reply
from meshproof.mesh import pins
from meshproof.mesh.spec import MeshSpec
from meshproof.traffic import Response

GOLDEN_STATUS = ("istio-1.27.9", "pilot", "pkg", "config", "kube", "gateway", "testdata")
ROUTE_DUMPS = ("istio-1.27.9", "istioctl", "pkg", "writer", "envoy", "configdump", "testdata", "routes")
EXT_PROC_PER_ROUTE = "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRoute"
EPP_CLUSTER = "outbound|9002||meshproof-llm-epp.meshproof-gie.svc.cluster.local"


def golden_status() -> dict[tuple[str, str], dict[str, Any]]:
    path = upstream(*GOLDEN_STATUS, "reference-policy-inferencepool.status.yaml.golden")
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def route_dump(name: str) -> Any:
    return json.loads(Path(upstream(*ROUTE_DUMPS, name, "configdump.json")).read_text())


# --- set-up --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cli", "api_version"),
    [
        pytest.param({"features": ["gie"]}, "inference.networking.x-k8s.io/v1alpha2", id="upstream"),
        pytest.param(
            {"features": ["gie"], "provider": "openshift", "installer": "sail"},
            "inference.networking.k8s.io/v1",
            id="ossm",
        ),
    ],
)
def test_the_setup_uses_the_api_the_installed_istio_watches(cli: dict[str, Any], api_version: str) -> None:
    setup = gie.GieSetup.for_spec(MeshSpec.from_config(load_config(cli)))
    assert setup.build.api_version == api_version
    assert api_version in setup.describe()
    pools = {d["metadata"]["name"]: d["apiVersion"] for d in setup.objects() if d["kind"] == "InferencePool"}
    assert pools[gie.POOL] == api_version
    assert pools[gie.OTHER_API_POOL] != api_version
    (epp,) = [d for d in setup.objects() if d["kind"] == "Deployment" and d["metadata"]["name"] == gie.EPP]
    image = epp["spec"]["template"]["spec"]["containers"][0]["image"]
    # The EPP is of the GIE minor whose CRDs the install uses (its patch release may be newer).
    minor = setup.build.crd_ref.rsplit(".", 1)[0]
    assert image == gie.EPP_IMAGES[api_version] and image.rsplit(":", 1)[1].startswith(minor + ".")


def test_each_model_server_is_configured_for_its_role() -> None:
    setup = gie.GieSetup(build=pins.GIE_OSSM, other=pins.GIE_UPSTREAM, epp_image="e")
    args = {
        d["metadata"]["name"]: d["spec"]["template"]["spec"]["containers"][0]["args"]
        for d in setup.model_servers()
    }
    assert set(args) == {"meshproof-llm-idle", "meshproof-llm-busy", "meshproof-llm-lora"}
    assert "--fake-metrics" not in args["meshproof-llm-idle"]
    busy = json.loads(args["meshproof-llm-busy"][args["meshproof-llm-busy"].index("--fake-metrics") + 1])
    assert busy["waiting-requests"] > 128  # above GIE v0.5's low-queue threshold: the EPP ranks it last
    lora = args["meshproof-llm-lora"]
    assert json.loads(lora[lora.index("--lora-modules") + 1]) == {"name": gie.ADAPTER}
    lora_metrics = json.loads(lora[lora.index("--fake-metrics") + 1])
    assert lora_metrics["loras"] == [{"running": gie.ADAPTER, "waiting": "", "timestamp": 1700000000}]
    # Every pod is selected by the pool and names itself in replies.
    for doc in setup.model_servers():
        template = doc["spec"]["template"]
        assert template["metadata"]["labels"][gie.SELECTOR_LABEL] == gie.POOL
        env = {e["name"] for e in template["spec"]["containers"][0]["env"]}
        assert {"POD_NAME", "POD_NAMESPACE"} <= env


@pytest.mark.parametrize("build", [pins.GIE_UPSTREAM, pins.GIE_OSSM], ids=["v0.5", "v1.0"])
def test_epp_flags_and_scheduler_follow_the_gie_release(build: pins.GieBuild) -> None:
    args = gie.epp_args(build, gie.NAMESPACE)
    config = json.loads(gie.scheduler_config(build))
    types = {p["type"] for p in config["plugins"]}
    if build is pins.GIE_UPSTREAM:
        assert "-poolName" in args and "--pool-name" not in args
        assert {"low-queue-filter", "lora-affinity-filter"} <= types
    else:
        assert args[args.index("--pool-group") + 1] == "inference.networking.k8s.io"
        assert {"queue-scorer", "kv-cache-utilization-scorer", "lora-affinity-scorer"} <= types
    refs = {p["pluginRef"] for p in config["schedulingProfiles"][0]["plugins"]}
    assert refs <= types


# --- replies -------------------------------------------------------------------------------------------


def reply(status: int | None, body: str = "", pod: str | None = None) -> Response:
    headers = {"x-inference-pod": pod} if pod else {}
    return Response(status=status, headers=headers, body=body)


def test_served_by_needs_the_pod_header_of_an_expected_pod() -> None:
    body = json.dumps({"object": "text_completion", "model": gie.BASE_MODEL, "choices": [{"text": "x"}]})
    check = checks.served_by({"a", "b"}, model=gie.BASE_MODEL)
    assert check(reply(200, body, pod="a"))
    assert not check(reply(200, body, pod="c")), "another pod"
    assert not check(reply(200, body)), "a 200 no model server named"
    assert not check(reply(503, "no healthy upstream")), "a gateway error"
    other_model = json.dumps({"object": "text_completion", "model": gie.ADAPTER})
    assert not check(reply(200, other_model, pod="a")), "served for another model"


def test_unknown_model_refusal_is_the_model_servers_error() -> None:
    # The simulator's flat CompletionError (llm-d-sim@v0.4.0 simulator.go sendCompletionError).
    body = json.dumps(
        {
            "object": "error",
            "message": f"The model `{gie.UNKNOWN_MODEL}` does not exist.",
            "type": "NotFoundError",
            "param": None,
            "code": 404,
        }
    )
    check = checks.unknown_model_refused(gie.UNKNOWN_MODEL)
    assert check(reply(404, body))
    assert completion_reply(reply(404, body)).error == f"The model `{gie.UNKNOWN_MODEL}` does not exist."
    assert not check(reply(404, "route not found")), "a 404 from the gateway is not the pool refusing"
    assert not check(reply(200, "{}", pod="a")), "served"
    other = body.replace(gie.UNKNOWN_MODEL, "something-else")
    assert not check(reply(404, other)), "refused another model"


def test_refused_somewhere_needs_a_model_servers_refusal_in_the_batch() -> None:
    refusal = json.dumps({"object": "error", "message": f"The model `{gie.ADAPTER}` does not exist."})
    served = reply(200, "{}", pod="lora")
    assert checks.refused_somewhere([served, reply(404, refusal)], gie.ADAPTER)
    assert not checks.refused_somewhere([served, served], gie.ADAPTER)
    assert not checks.refused_somewhere([reply(404, "route not found")], gie.ADAPTER)


def test_fail_closed_is_a_5xx_without_a_model_server() -> None:
    check = checks.fails_closed()
    assert check(reply(500, "", None))
    assert check(reply(503, "upstream connect error"))
    assert not check(reply(200, "{}", pod="a"))
    assert not check(reply(503, "{}", pod="a")), "a model server answered"
    assert not check(Response(status=None, body="")), "no HTTP reply at all is not the gateway failing closed"


def test_avoided_and_spread_count_serving_pods() -> None:
    replies = [reply(200, "{}", pod=p) for p in ("idle", "lora", "idle")]
    assert checks.avoided(replies, "busy")
    assert not checks.avoided([*replies, reply(200, "{}", pod="busy")], "busy")
    assert not checks.avoided([*replies, reply(503, "")], "busy"), "an unserved request is not avoidance"
    assert checks.spread_over([*replies, reply(200, "{}", pod="busy")], {"idle", "lora", "busy"})
    assert not checks.spread_over(replies, {"idle", "lora", "busy"})


# --- status written by istiod --------------------------------------------------------------------------


def test_route_resolution_on_istiods_real_status() -> None:
    status = golden_status()
    route = status[("HTTPRoute", "backend-allowed-ip")]  # istiod: ResolvedRefs=False, BackendNotFound
    assert not checks.route_refs_resolved(route, "gateway")
    unresolved = checks.route_refs_unresolved(route, "gateway")
    assert unresolved and "BackendNotFound" in unresolved.reason
    assert not checks.route_refs_unresolved(route, "another-gateway"), "no status for that parent"
    assert not checks.route_refs_resolved(None, "gateway")
    # The same real status after istiod resolved the pool: the one condition flips.
    resolved = copy.deepcopy(route)
    condition = resolved["status"]["parents"][0]["conditions"][1]
    condition.update(status="True", reason="ResolvedRefs", message="resolved")
    assert checks.route_refs_resolved(resolved, "gateway")
    assert not checks.route_refs_unresolved(resolved, "gateway")


def test_pool_acceptance_on_istiods_real_status() -> None:
    pool = golden_status()[("InferencePool", "my-ip")]  # v1alpha2, `status: {}`: no parent accepted it
    assert not checks.pool_accepted_by(pool, "gateway")
    parent = {
        "parentRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gateway"},
        "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted"}],
    }
    v1alpha2 = dict(pool, status={"parent": [parent]})  # v1alpha2 spells the list `parent`
    v1 = dict(pool, status={"parents": [parent]})
    assert checks.pool_accepted_by(v1alpha2, "gateway")
    assert checks.pool_accepted_by(v1, "gateway")
    assert not checks.pool_accepted_by(v1, "other")
    refused = copy.deepcopy(v1)
    refused["status"]["parents"][0]["conditions"][0].update(status="False", reason="NotSupportedByParent")
    assert not checks.pool_accepted_by(refused, "gateway")


# --- the gateway proxy's routes ------------------------------------------------------------------------


def with_ext_proc(dump: Any, host: str, cluster: str, failure_mode_allow: bool) -> Any:
    """The real dump with the per-route override istiod adds for a pool backend (istio@1.27.9 route.go)."""
    out = copy.deepcopy(dump)
    for config in out["configs"]:
        for dynamic in config.get("dynamic_route_configs", []):
            for vhost in dynamic["route_config"]["virtual_hosts"]:
                if host in vhost["domains"]:
                    for route in vhost["routes"]:
                        route["typed_per_filter_config"] = {
                            "envoy.filters.http.ext_proc": {
                                "@type": EXT_PROC_PER_ROUTE,
                                "overrides": {
                                    "failure_mode_allow": failure_mode_allow,
                                    "grpc_service": {"envoy_grpc": {"cluster_name": cluster}},
                                },
                            }
                        }
    return out


def test_ext_proc_check_rejects_a_real_gateway_route_without_it() -> None:
    dump = route_dump("k8s-gateway-http-route-path-prefix")
    verdict = checks.ext_proc_calls(dump, "httpbin.example.com", EPP_CLUSTER)
    assert not verdict and "no route for httpbin.example.com calls ext_proc" in verdict.reason
    assert checks.no_ext_proc(dump, "httpbin.example.com")
    assert not checks.ext_proc_calls(dump, "nowhere.example", EPP_CLUSTER), "no route for the host"
    assert not checks.no_ext_proc(dump, "nowhere.example")


def test_ext_proc_check_accepts_only_the_epps_cluster_and_fail_close() -> None:
    dump = route_dump("k8s-gateway-http-route-path-prefix")
    host = "httpbin.example.com"
    assert checks.ext_proc_calls(with_ext_proc(dump, host, EPP_CLUSTER, False), host, EPP_CLUSTER)
    assert not checks.no_ext_proc(with_ext_proc(dump, host, EPP_CLUSTER, False), host)
    wrong = with_ext_proc(dump, host, "outbound|9002||other.ns.svc.cluster.local", False)
    assert not checks.ext_proc_calls(wrong, host, EPP_CLUSTER)
    fail_open = with_ext_proc(dump, host, EPP_CLUSTER, True)
    assert not checks.ext_proc_calls(fail_open, host, EPP_CLUSTER)
    assert checks.ext_proc_calls(fail_open, host, EPP_CLUSTER, fail_closed=False)


def test_ext_proc_check_reads_istioctls_camel_case_list_too() -> None:
    routes = [
        {
            "name": "http.80",
            "virtualHosts": [
                {
                    "domains": ["pool.gie.meshproof.test"],
                    "routes": [
                        {
                            "typedPerFilterConfig": {
                                "envoy.filters.http.ext_proc": {
                                    "overrides": {"grpcService": {"envoyGrpc": {"clusterName": EPP_CLUSTER}}}
                                }
                            }
                        }
                    ],
                }
            ],
        }
    ]
    assert checks.ext_proc_calls(routes, "pool.gie.meshproof.test", EPP_CLUSTER)


# --- the EPP scaled to zero (fixtures/gie.py) against a fake cluster -------------------------------------


class FakeEppCluster:
    """Records applies like meshproof.kube.Cluster: the run label unless `label=False`."""

    def __init__(self, live: dict[str, Any]) -> None:
        self.live = live
        self.applied: list[tuple[dict[str, Any], bool]] = []
        self.rollouts: list[str] = []

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> Any:
        return copy.deepcopy(self.live) if (kind, name) == ("Deployment", gie.EPP) else None

    def apply(self, docs: Any, *, test_id: str | None = None, label: bool = True) -> list[dict[str, Any]]:
        self.applied += [(copy.deepcopy(d), label) for d in docs]
        return list(docs)

    def wait_rollout(self, kind: str, name: str, namespace: str, *, timeout: float) -> dict[str, Any]:
        self.rollouts.append(name)
        return {}


def test_epp_is_scaled_back_to_what_the_install_left_without_this_runs_label(tmp_path: Path) -> None:
    from fixtures.gie import Inference
    from meshproof.wait import Timeouts
    from meshproof.workloads import SharedStateBusy, Workload, WorkloadClass, exclusive

    setup = gie.GieSetup(build=pins.GIE_UPSTREAM, other=pins.GIE_OSSM, epp_image="e")
    (rendered,) = [d for d in setup.epp() if d["kind"] == "Deployment"]
    install_labels = {**(rendered["metadata"].get("labels") or {}), "meshproof.io/run-id": "the-install"}
    live = {**rendered, "metadata": {**rendered["metadata"], "labels": install_labels}}
    live["spec"] = {**rendered["spec"], "replicas": 2}
    cluster = FakeEppCluster(live)
    client = Workload(WorkloadClass.OUT_OF_MESH, "mp-x-out", "client")
    istioctl: Any = None
    inference = Inference(cluster, setup, client, istioctl, Timeouts(), lambda k, v: None, tmp_path)
    another_worker = exclusive(tmp_path, f"gie/{setup.namespace}/{gie.EPP}", timeout=0.1)
    with inference.epp_scaled_to_zero(), pytest.raises(SharedStateBusy), another_worker:
        pass  # another worker asking for the EPP waits, then gives up naming it
    (stopped, label_stopped), (restored, label_restored) = cluster.applied
    assert stopped["spec"]["replicas"] == 0 and restored["spec"]["replicas"] == 2, "the count it found"
    assert not label_stopped and not label_restored, "no label of this run on the install's EPP"
    assert restored["metadata"]["labels"] == install_labels, "the install's labels kept"
    assert restored["spec"]["template"] == rendered["spec"]["template"]
    assert cluster.rollouts == [gie.EPP]
