"""AuthorizationPolicy enforcement at each enforcement point: sidecar, ztunnel and waypoint.

Each path is a client calling its server in one workload class over HTTP or plain TCP. Policies are
attached the way the enforcing proxy reads them (istio-facts §0 trap 6: selector for sidecars and
ztunnel, targetRefs to the Service for the waypoint), and a deny looks like what that proxy does:
Envoy answers HTTP with 403 `RBAC: access denied`; ztunnel, and any proxy on plain TCP, closes the
connection (reset or EOF) (istio-facts §4, output-formats §5.2/§5.3).

A closed connection does not say why: a deny, an ALLOW miss, plaintext into STRICT and a port with
nothing listening look the same to the client (captures/ztunnel-1.27.9). So every ztunnel deny names the
policy the test applied and requires the destination ztunnel's record of it (`explicitly denied by:
<ns>/<policy>` or `allow policies exist, but none allowed`, for this client and server) and its DENY
counter growing. Calls through a waypoint require the client's ztunnel to have sent them to the waypoint.

Every deny has its control in the same test: the policy is removed (or the other one applied) and the
same call succeeds. Every expectation converges on 3 consecutive results.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

import pytest

from fixtures.mtls import workload_identity
from fixtures.traffic import MeshEvidence, as_param
from meshproof.checks import responses
from meshproof.checks.ambient import PolicyRejection
from meshproof.checks.identity import principal, spiffe_id
from meshproof.checks.policy import ztunnel_rejected_action
from meshproof.checks.responses import Check
from meshproof.checks.verdict import require
from meshproof.evidence import collect
from meshproof.evidence.policy_status import admission_denial
from meshproof.kube_connect import KubeApiError
from meshproof.policies import AppliedPolicies, AuthzPath, Denial, Rule, authorization_policy
from meshproof.traffic import ECHO_PATH, Traffic
from meshproof.wait import Timeouts, WaitTimeout, eventually
from meshproof.workloads import HTTP_PORT, WAYPOINT_NAME, Workload, WorkloadClass, WorkloadSet, pod_of

if TYPE_CHECKING:
    from meshproof.kube import Cluster
    from meshproof.mesh.info import MeshInfo

pytestmark = pytest.mark.authz

SIDECAR, AMBIENT, WAYPOINT = WorkloadClass.SIDECAR, WorkloadClass.AMBIENT, WorkloadClass.WAYPOINT
L4_PATHS = [AuthzPath(c, s) for c in (SIDECAR, AMBIENT, WAYPOINT) for s in ("http", "tcp")]
L7_PATHS = [AuthzPath(SIDECAR, "http"), AuthzPath(WAYPOINT, "http")]
L4_PATH_PARAMS = [as_param(p) for p in L4_PATHS]
L7_PATH_PARAMS = [as_param(p) for p in L7_PATHS]
SOURCE_ATTRIBUTES = [
    pytest.param("principal", id="by-principal"),
    pytest.param("namespace", id="by-namespace"),
]
OTHER_PATH = "/private"  # any path but ECHO_PATH; fortio answers it 200 when nothing denies it
ELSEWHERE_NAMESPACE = "meshproof-elsewhere"  # a namespace no client runs in


@pytest.mark.parametrize("attribute", SOURCE_ATTRIBUTES)
@pytest.mark.parametrize("path", L4_PATH_PARAMS)
def test_allow_admits_only_the_named_source(
    path: AuthzPath, attribute: str, calls: Calls, policies: AppliedPolicies, mesh: MeshInfo
) -> None:
    server, client = calls.server, calls.client

    policies.apply(allow(server, source_rule(attribute, client, mesh)))
    calls.expect(path.allowed(), f"ALLOW naming the client's {attribute} admits it")

    policies.apply(allow(server, foreign_rule(attribute, client, mesh)))  # same name: replaces the first
    calls.expect_denied(
        path.denied(PolicyRejection.no_allow_matched()),
        f"ALLOW naming only another {attribute} denies the client",
    )

    policies.remove_all()
    calls.expect(path.allowed(), "control: with the policy removed the same call succeeds")


@pytest.mark.parametrize("attribute", SOURCE_ATTRIBUTES)
@pytest.mark.parametrize("path", L4_PATH_PARAMS)
def test_deny_refuses_only_the_named_source(
    path: AuthzPath, attribute: str, calls: Calls, policies: AppliedPolicies, mesh: MeshInfo
) -> None:
    server, client = calls.server, calls.client

    policies.apply(deny(server, foreign_rule(attribute, client, mesh)))
    calls.expect(path.allowed(), f"DENY naming another {attribute} leaves the client alone")

    deny_policy = deny(server, source_rule(attribute, client, mesh))
    policies.apply(deny_policy)
    calls.expect_denied(
        path.denied(rejected_by(deny_policy)), f"DENY naming the client's {attribute} refuses it"
    )

    policies.remove_all()
    calls.expect(path.allowed(), "control: with the policy removed the same call succeeds")


@pytest.mark.parametrize("path", L4_PATH_PARAMS)
def test_deny_takes_precedence_over_allow(
    path: AuthzPath, calls: Calls, policies: AppliedPolicies, mesh: MeshInfo
) -> None:
    server, client = calls.server, calls.client
    both = source_rule("principal", client, mesh)
    deny_policy = deny(server, both)

    policies.apply(allow(server, both), deny_policy)
    calls.expect_denied(
        path.denied(rejected_by(deny_policy)), "an ALLOW and a DENY both match the client: the DENY wins"
    )

    policies.remove(deny_policy)
    calls.expect(path.allowed(), "control: without the DENY the remaining ALLOW admits the same call")


@pytest.mark.parametrize("path", L7_PATH_PARAMS)
def test_l7_rules_on_path_and_method(calls: Calls, policies: AppliedPolicies) -> None:
    policies.apply(allow(calls.server, Rule(paths=(ECHO_PATH,), methods=("GET",))))
    calls.expect(
        responses.all_of(responses.ok(), responses.l7_processed()),
        "GET on the allowed path passes the L7 rule, and an L7 proxy handled it",
    )
    calls.expect(responses.denied_l7(), "GET on another path is denied with 403", path=OTHER_PATH)
    calls.expect(responses.denied_l7(), "POST on the allowed path is denied with 403", method="POST")

    policies.remove_all()
    calls.expect(
        responses.ok(), "control: without the policy GET on the other path succeeds", path=OTHER_PATH
    )
    calls.expect(responses.ok(), "control: without the policy POST succeeds", method="POST")


@pytest.mark.parametrize("path", [as_param(AuthzPath(AMBIENT, "http"))])
def test_l7_rule_enforced_by_ztunnel_fails_closed(
    calls: Calls, policies: AppliedPolicies, mesh: MeshInfo
) -> None:
    """istio-facts §0 trap 7: ztunnel cannot match HTTP attributes, so an ALLOW rule with a method never
    matches; the very GET it names from the very principal it names is refused."""
    rule = Rule(principals=source_rule("principal", calls.client, mesh).principals, methods=("GET",))

    policies.apply(allow(calls.server, rule))
    calls.expect_denied(
        calls.path.denied(PolicyRejection.no_allow_matched()),
        "ztunnel refuses the call an L7-only ALLOW rule names: the rule is dropped, nothing is allowed",
    )

    policies.remove_all()
    calls.expect(responses.ok(), "control: with the policy removed the same call succeeds")


@pytest.mark.parametrize(
    "action", [pytest.param(a, id=f"ambient/{a}", marks=pytest.mark.ambient) for a in ("CUSTOM", "AUDIT")]
)
def test_custom_and_audit_are_unsupported_on_ztunnel(
    action: str,
    workloads: WorkloadSet,
    policies: AppliedPolicies,
    cluster: Cluster,
    mesh: MeshInfo,
    timeouts: Timeouts,
    record_property: Any,
) -> None:
    """ztunnel applies only ALLOW and DENY (istio-facts §0 trap 8). The test applies the policy to read
    what istiod says about it, then reports the combination as unsupported: never as a pass.

    The CUSTOM policy names a provider and matches the server's port: Istio 1.27's validation refuses
    CUSTOM rules that name sources (`From.Principals is currently not supported with CUSTOM action`,
    istio/istio@1.27.9 pkg/config/validation/validation.go). If the webhook still refuses the policy,
    that is reported as such: a failure of this test's setup, not a statement about ztunnel."""
    server, client = workloads.server(AMBIENT), workloads.client(AMBIENT)
    policy = unsupported_action_policy(action, server, client, mesh)
    try:
        policies.apply(policy)
    except KubeApiError as exc:
        denial = admission_denial(str(exc))
        if denial is None:
            raise
        pytest.fail(
            f"istiod's validation webhook refused the {action} policy meshproof built, so nothing about "
            f"ztunnel was read: {denial}",
            pytrace=False,
        )
    try:
        verdict = eventually(
            lambda: require(
                ztunnel_rejected_action(
                    collect.authorization_policy(cluster, policy["metadata"]["name"], server.namespace),
                    action,
                )
            ),
            timeout=timeouts.traffic,
            description=f"istiod reports that ztunnel does not apply the {action} policy",
        )
        status = verdict.reason
    except WaitTimeout as exc:
        status = f"istiod wrote no matching ZtunnelAccepted condition ({exc})"
    record_property("ztunnel-status", status)
    pytest.skip(f"unsupported: ztunnel applies only ALLOW and DENY, not {action}; {status}")


# --- policy vocabulary ---------------------------------------------------------------------------------


def unsupported_action_policy(
    action: str, server: Workload, client: Workload, mesh: MeshInfo
) -> dict[str, Any]:
    """The CUSTOM or AUDIT policy on the ambient server. CUSTOM names a provider and matches the server's
    port: istiod refuses CUSTOM rules that name sources (see the test above)."""
    if action == "CUSTOM":
        rules = [Rule(ports=(HTTP_PORT,))]
        provider: str | None = "meshproof-unconfigured"
    else:
        rules, provider = [source_rule("principal", client, mesh)], None
    return authorization_policy(f"meshproof-{action.lower()}", server, action, rules, provider=provider)


def allow(server: Workload, *rules: Rule) -> dict[str, Any]:
    return authorization_policy("meshproof-allow", server, "ALLOW", rules)


def deny(server: Workload, *rules: Rule) -> dict[str, Any]:
    return authorization_policy("meshproof-deny", server, "DENY", rules)


def rejected_by(policy: dict[str, Any]) -> PolicyRejection:
    """The rejection ztunnel logs when this DENY policy matches: `explicitly denied by: <ns>/<name>`."""
    return PolicyRejection.denied_by(policy["metadata"]["namespace"], policy["metadata"]["name"])


def source_rule(attribute: str, client: Workload, mesh: MeshInfo) -> Rule:
    """A rule naming the client by its principal or its namespace (L4 attributes, istio-facts §4)."""
    if attribute == "principal":
        return Rule(principals=(principal(workload_identity(mesh, client)),))
    return Rule(namespaces=(client.namespace,))


def foreign_rule(attribute: str, client: Workload, mesh: MeshInfo) -> Rule:
    """A rule naming a source that is not the client: another service account, another namespace."""
    if attribute == "principal":
        other = spiffe_id(mesh.trust_domain, client.namespace, f"not-{client.service_account}")
        return Rule(principals=(principal(other),))
    return Rule(namespaces=(ELSEWHERE_NAMESPACE,))


@pytest.fixture
def calls(
    path: AuthzPath,
    workloads: WorkloadSet,
    traffic: Traffic,
    evidence: MeshEvidence,
    mesh: MeshInfo,
    cluster: Cluster,
) -> Calls:
    """The parametrized path's call: its class's client to its class's server."""
    client, server = workloads.client(path.workload_class), workloads.server(path.workload_class)
    return Calls(traffic, path, client, server, evidence=evidence, mesh=mesh, cluster=cluster)


class Calls:
    """The path's call (client -> server on the path's port and scheme) with its expectations, and the
    evidence that attributes them: the waypoint on the path, ztunnel's record of a deny."""

    def __init__(
        self,
        traffic: Traffic,
        path: AuthzPath,
        client: Workload,
        server: Workload,
        *,
        evidence: MeshEvidence,
        mesh: MeshInfo,
        cluster: Cluster,
    ) -> None:
        self.traffic, self.path, self.client, self.server = traffic, path, client, server
        self.evidence, self.mesh, self.cluster = evidence, mesh, cluster

    def expect(self, check: Check, description: str, *, path: str = ECHO_PATH, method: str = "GET") -> None:
        with self._through_waypoint():
            self.traffic.expect(
                self.client,
                self.server,
                self.path.port,
                check,
                description=description,
                scheme=self.path.scheme,
                path=path,
                method=method,
            )

    def expect_denied(self, denial: Denial, description: str) -> None:
        """The client sees the path's deny; where ztunnel enforces, its destination ztunnel logged the
        named rejection for this client and server, and counted it."""
        if denial.ztunnel_rejection is None:
            self.expect(denial.check, description)
            return
        with self.evidence.ztunnel_rejects(
            pod_of(self.cluster, self.server),
            denial.ztunnel_rejection,
            src_identity=workload_identity(self.mesh, self.client),
            dst_identity=workload_identity(self.mesh, self.server),
        ):
            self.expect(denial.check, description)

    def _through_waypoint(self) -> AbstractContextManager[None]:
        if self.path.workload_class is not WAYPOINT:
            return nullcontext()
        # The waypoint's service account is its Gateway's name.
        waypoint = spiffe_id(self.mesh.trust_domain, self.server.namespace, WAYPOINT_NAME)
        return self.evidence.through_waypoint(
            pod_of(self.cluster, self.client), workload_identity(self.mesh, self.client), waypoint
        )
