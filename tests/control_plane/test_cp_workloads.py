"""The suite's workload fixtures end to end, as far as a control plane goes.

meshproof.workloads renders and deploys the classes exactly as the `workloads` fixture does. Here the real
apiserver admits them, istiod's injection webhook rewrites the sidecar class's pods, the controllers and
KWOK roll them out to Ready, and istiod's gateway controller turns the waypoint Gateway into a Deployment.
What only a real cluster shows: the injected proxy running, istio-cni capturing ambient pods
(`ambient.istio.io/redirection`), traffic. The ambient classes therefore fail enrollment here, and the
test checks that they fail for exactly that reason (the check refusing a pod no CNI captured).
The injector is istiod 1.30-dev's with the injection templates `istioctl manifest generate` printed.
"""

from __future__ import annotations

import pytest

from meshproof.bench.pathcheck import waypoint_bound
from meshproof.checks.policy import policy_condition_true
from meshproof.checks.verdict import Verdict
from meshproof.evidence import collect
from meshproof.evidence.policy_status import WAYPOINT_ACCEPTED
from meshproof.kube import Cluster
from meshproof.kube_objects import selector_for_run
from meshproof.policies import Rule, authorization_policy
from meshproof.wait import eventually
from meshproof.workloads import (
    SIDECAR_CONTAINER,
    SIDECAR_STATUS_ANNOTATION,
    WAYPOINT_NAME,
    EnrollmentError,
    RenderOptions,
    WorkloadClass,
    WorkloadSet,
    deploy,
    enrollment_problem,
    remove,
    render_class,
)

pytestmark = pytest.mark.control_plane


def test_sidecar_and_out_of_mesh_classes_deploy_with_istiods_injection(cluster: Cluster) -> None:
    workloads = WorkloadSet(cluster.run_id, (WorkloadClass.SIDECAR, WorkloadClass.OUT_OF_MESH))
    deploy(cluster, workloads, RenderOptions(), rollout_timeout=120, waypoint_timeout=120)

    server = workloads.server(WorkloadClass.SIDECAR)
    pods = cluster.pods(server.namespace, server.selector)
    assert pods and all(enrollment_problem(p, WorkloadClass.SIDECAR) is None for p in pods)
    pod = pods[0]
    containers = [c["name"] for c in pod["spec"]["containers"]]
    assert SIDECAR_CONTAINER in containers  # added by istiod's webhook: meshproof never renders it
    assert SIDECAR_STATUS_ANNOTATION in pod["metadata"]["annotations"]
    out = workloads.client(WorkloadClass.OUT_OF_MESH)
    plain = cluster.pods(out.namespace, out.selector)
    assert plain and SIDECAR_CONTAINER not in [c["name"] for c in plain[0]["spec"]["containers"]]

    remove(cluster, workloads)
    for namespace in workloads.namespaces:
        cluster.delete("v1", "Namespace", namespace, wait=True, timeout=120)
    assert cluster.find_labelled(selector_for_run(cluster.run_id)) == []


def test_ambient_class_is_refused_without_a_cni_to_capture_it(cluster: Cluster) -> None:
    """No istio-cni node agent runs in this tier, so no pod gets `ambient.istio.io/redirection`: deploy
    must refuse the class (a test on it would prove nothing), naming istio-cni."""
    workloads = WorkloadSet(cluster.run_id, (WorkloadClass.AMBIENT,))
    with pytest.raises(EnrollmentError, match="istio-cni did not capture it"):
        deploy(cluster, workloads, RenderOptions(), rollout_timeout=120, waypoint_timeout=120)


def test_istio_turns_the_waypoint_gateway_into_a_deployment(cluster: Cluster) -> None:
    """istiod's gateway controller (1.30-dev) programs the rendered waypoint Gateway: it creates the
    waypoint Deployment and Service and sets Programmed, which deploy() waits on before any traffic."""
    workloads = WorkloadSet(cluster.run_id, (WorkloadClass.WAYPOINT,))
    namespace = workloads.namespace(WorkloadClass.WAYPOINT)
    cluster.apply(render_class(workloads, WorkloadClass.WAYPOINT, RenderOptions()))
    gateway = cluster.wait_for_condition(
        "gateway.networking.k8s.io/v1", "Gateway", WAYPOINT_NAME, namespace, "Programmed", timeout=120
    )
    accepted = {c["type"]: c["status"] for c in gateway["status"]["conditions"]}
    assert accepted.get("Accepted") == "True"
    waypoint = cluster.wait_rollout("Deployment", WAYPOINT_NAME, namespace, timeout=120)
    assert waypoint["metadata"]["labels"].get("gateway.networking.k8s.io/gateway-name") == WAYPOINT_NAME
    assert cluster.get("v1", "Service", WAYPOINT_NAME, namespace) is not None


def test_istiod_binds_the_server_to_the_waypoint_and_accepts_its_policy(cluster: Cluster) -> None:
    """The status the benchmark path check and the authz evidence read, written by istiod (1.30-dev):
    the server Service labelled `istio.io/use-waypoint` gets `istio.io/WaypointBound=True`
    (bench.pathcheck.waypoint_bound), and a targetRefs policy on it gets `WaypointAccepted=True`
    (checks.policy.policy_condition_true). Negative control: the client has no Service bound."""
    workloads = WorkloadSet(cluster.run_id, (WorkloadClass.WAYPOINT,))
    namespace = workloads.namespace(WorkloadClass.WAYPOINT)
    cluster.apply(render_class(workloads, WorkloadClass.WAYPOINT, RenderOptions()))
    cluster.wait_for_condition(
        "gateway.networking.k8s.io/v1", "Gateway", WAYPOINT_NAME, namespace, "Programmed", timeout=120
    )
    server = workloads.server(WorkloadClass.WAYPOINT)
    bound = cluster.wait_for(
        "v1", "Service", server.name, namespace, waypoint_bound, "istio.io/WaypointBound=True", timeout=120
    )
    assert waypoint_bound(bound)
    assert not waypoint_bound(cluster.get("v1", "Service", WAYPOINT_NAME, namespace))

    policy = authorization_policy("meshproof-allow", server, "ALLOW", [Rule(namespaces=(namespace,))])
    assert policy["spec"]["targetRefs"][0]["name"] == server.name  # a waypoint reads targetRefs
    cluster.apply([policy])
    accepted = eventually(
        lambda: _passed(
            policy_condition_true(
                collect.authorization_policy(cluster, "meshproof-allow", namespace), WAYPOINT_ACCEPTED
            )
        ),
        timeout=120,
        interval=0.5,
        description="WaypointAccepted on the waypoint policy",
    )
    assert "WaypointAccepted=True" in accepted.reason


def _passed(verdict: Verdict) -> Verdict:
    assert verdict, verdict.reason
    return verdict
