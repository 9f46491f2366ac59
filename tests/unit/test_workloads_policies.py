"""Policy rendering per enforcement point (istio-facts §0 traps 6-8), the authz paths' expectations, and the
per-test policy lifecycle (AppliedPolicies) against a fake cluster.

The fake cluster cannot prove that the API server accepts these objects (the contract tests check the
rendered YAML against the upstream CRDs) nor that a proxy enforces them (only a cluster run shows that).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from meshproof.checks.ambient import PolicyRejection
from meshproof.policies import (
    AppliedPolicies,
    AuthzPath,
    EnforcementPoint,
    PolicyCleanupError,
    Rule,
    authorization_policy,
    enforcement_point,
    peer_authentication,
    tcp_echoed,
)
from meshproof.traffic import Response, TransportError
from meshproof.workloads import HTTP_PORT, TCP_PORT, SharedStateBusy, Workload, WorkloadClass, exclusive

SERVERS = {c: Workload(c, f"mp-run-{c.value}", "server") for c in WorkloadClass if c.in_mesh}
CLIENT_PRINCIPAL = "cluster.local/ns/mp-run-sidecar/sa/client"


# --- attachment: trap 6 -------------------------------------------------------------------------------


@pytest.mark.parametrize("workload_class", [WorkloadClass.SIDECAR, WorkloadClass.AMBIENT])
def test_sidecar_and_ztunnel_policies_use_a_selector_and_never_target_refs(
    workload_class: WorkloadClass,
) -> None:
    policy = authorization_policy(
        "p", SERVERS[workload_class], "DENY", [Rule(principals=(CLIENT_PRINCIPAL,))]
    )
    assert policy["spec"]["selector"] == {"matchLabels": {"app": "server"}}
    assert "targetRefs" not in policy["spec"]
    assert policy["metadata"] == {"name": "p", "namespace": f"mp-run-{workload_class.value}"}


def test_waypoint_policies_target_the_service_and_never_use_a_selector() -> None:
    policy = authorization_policy(
        "p", SERVERS[WorkloadClass.WAYPOINT], "ALLOW", [Rule(principals=(CLIENT_PRINCIPAL,))]
    )
    assert policy["spec"]["targetRefs"] == [{"kind": "Service", "group": "", "name": "server"}]
    assert "selector" not in policy["spec"]


def test_the_enforcement_point_can_be_chosen_explicitly() -> None:
    # e.g. a ztunnel policy in a waypoint namespace (the destination ztunnel still reads selectors)
    policy = authorization_policy(
        "p", SERVERS[WorkloadClass.WAYPOINT], "ALLOW", [Rule()], enforced_by=EnforcementPoint.ZTUNNEL
    )
    assert "selector" in policy["spec"] and "targetRefs" not in policy["spec"]


def test_out_of_mesh_workloads_have_no_enforcement_point() -> None:
    with pytest.raises(ValueError, match="no proxy"):
        enforcement_point(WorkloadClass.OUT_OF_MESH)


# --- rules ----------------------------------------------------------------------------------------------


def test_rule_fields_land_under_source_and_operation() -> None:
    rule = Rule(
        principals=(CLIENT_PRINCIPAL,),
        namespaces=("mp-run-sidecar",),
        paths=("/debug",),
        methods=("GET",),
        ports=(8080,),
    )
    (rendered,) = authorization_policy("p", SERVERS[WorkloadClass.SIDECAR], "ALLOW", [rule])["spec"]["rules"]
    assert rendered == {
        "from": [{"source": {"principals": [CLIENT_PRINCIPAL], "namespaces": ["mp-run-sidecar"]}}],
        "to": [{"operation": {"paths": ["/debug"], "methods": ["GET"], "ports": ["8080"]}}],
    }
    assert rule.l7_fields == ["paths", "methods"]
    assert Rule(principals=(CLIENT_PRINCIPAL,)).l7_fields == []


def test_empty_rule_matches_everything_and_no_rules_matches_nothing() -> None:
    server = SERVERS[WorkloadClass.AMBIENT]
    assert authorization_policy("p", server, "ALLOW", [Rule()])["spec"]["rules"] == [{}]
    allow_nothing = authorization_policy("p", server, "ALLOW", [])
    assert "rules" not in allow_nothing["spec"] and allow_nothing["spec"]["action"] == "ALLOW"


def test_actions_and_providers_are_validated() -> None:
    server = SERVERS[WorkloadClass.AMBIENT]
    custom = authorization_policy("p", server, "custom", [Rule()], provider="ext-authz")
    assert custom["spec"]["action"] == "CUSTOM" and custom["spec"]["provider"] == {"name": "ext-authz"}
    with pytest.raises(ValueError, match="provider"):
        authorization_policy("p", server, "CUSTOM", [Rule()])
    with pytest.raises(ValueError, match="provider"):
        authorization_policy("p", server, "ALLOW", [Rule()], provider="ext-authz")


@pytest.mark.parametrize(
    ("rule", "field"),
    [
        (Rule(principals=("cluster.local/ns/a/sa/client",)), "From.Principals"),
        (Rule(namespaces=("a",), ports=(8080,)), "From.Namespaces"),
    ],
)
def test_custom_refuses_the_sources_istio_validation_refuses(rule: Rule, field: str) -> None:
    # istio/istio@1.27.9 pkg/config/validation/validation.go: "<field> is currently not supported with
    # CUSTOM action"; the validation webhook denies such a policy.
    server = Workload(WorkloadClass.AMBIENT, "mp-ambient", "server")
    with pytest.raises(ValueError, match=f"{field} is not supported with CUSTOM"):
        authorization_policy("p", server, "CUSTOM", [rule], provider="ext-authz")

    on_port = authorization_policy("p", server, "CUSTOM", [Rule(ports=(8080,))], provider="ext-authz")
    assert on_port["spec"]["rules"] == [{"to": [{"operation": {"ports": ["8080"]}}]}]
    assert "from" not in on_port["spec"]["rules"][0]
    with pytest.raises(ValueError, match="unknown"):
        authorization_policy("p", server, "LOG", [Rule()])


def test_ztunnel_supports_only_allow_and_deny_and_no_l7() -> None:
    assert EnforcementPoint.ZTUNNEL.supported_actions == {"ALLOW", "DENY"}  # trap 8
    assert not EnforcementPoint.ZTUNNEL.enforces_l7  # trap 7
    assert EnforcementPoint.WAYPOINT.enforces_l7 and EnforcementPoint.SIDECAR.enforces_l7
    assert {"AUDIT", "CUSTOM"} <= EnforcementPoint.WAYPOINT.supported_actions


def test_peer_authentication_is_namespace_wide() -> None:
    pa = peer_authentication("meshproof-mtls", "mp-run-ambient", "strict")
    assert pa["apiVersion"] == "security.istio.io/v1" and pa["kind"] == "PeerAuthentication"
    assert pa["spec"] == {"mtls": {"mode": "STRICT"}}
    assert pa["metadata"] == {"name": "meshproof-mtls", "namespace": "mp-run-ambient"}
    with pytest.raises(ValueError):
        peer_authentication("x", "ns", "OPTIONAL")


# --- the authz paths ----------------------------------------------------------------------------------

RBAC_403 = Response(403, body="RBAC: access denied")
RESET = Response(None, exit_code=56, transport_error=TransportError.RESET, error_message="Recv failure")
TCP_EOF = Response(None, transport_error=TransportError.EOF, error_message="short read: EOF", scheme="tcp")
TCP_ECHO = Response(None, body="meshproof-abc", scheme="tcp")


@pytest.mark.parametrize(
    ("workload_class", "scheme", "path_id", "port", "denial", "not_denial"),
    [
        (WorkloadClass.SIDECAR, "http", "sidecar/http", HTTP_PORT, RBAC_403, RESET),
        (WorkloadClass.SIDECAR, "tcp", "sidecar/tcp", TCP_PORT, TCP_EOF, RBAC_403),
        (WorkloadClass.AMBIENT, "http", "ambient/http", HTTP_PORT, RESET, RBAC_403),
        (WorkloadClass.AMBIENT, "tcp", "ambient/tcp", TCP_PORT, TCP_EOF, TCP_ECHO),
        (WorkloadClass.WAYPOINT, "http", "ambient->waypoint/http", HTTP_PORT, RBAC_403, RESET),
        (WorkloadClass.WAYPOINT, "tcp", "ambient->waypoint/tcp", TCP_PORT, TCP_EOF, RBAC_403),
    ],
)
def test_each_path_expects_the_deny_its_proxy_produces(
    workload_class: WorkloadClass,
    scheme: Any,
    path_id: str,
    port: int,
    denial: Response,
    not_denial: Response,
) -> None:
    path = AuthzPath(workload_class, scheme)
    assert path.id == path_id and path.port == port
    expected = path.denied(PolicyRejection.denied_by("ns", "deny"))
    assert expected.check(denial)
    assert not expected.check(not_denial)


@pytest.mark.parametrize("scheme", ["http", "tcp"])
def test_a_ztunnel_deny_carries_the_rejection_its_ztunnel_must_log(scheme: Any) -> None:
    rejection = PolicyRejection.denied_by("mp-ambient", "meshproof-deny")

    ambient = AuthzPath(WorkloadClass.AMBIENT, scheme).denied(rejection)
    assert ambient.ztunnel_rejection == rejection
    assert ambient.ztunnel_rejection.error == (
        "connection closed due to policy rejection: explicitly denied by: mp-ambient/meshproof-deny"
    )
    # Envoy's denies are their own evidence: nothing for a ztunnel to attribute.
    assert AuthzPath(WorkloadClass.SIDECAR, scheme).denied(rejection).ztunnel_rejection is None
    assert AuthzPath(WorkloadClass.WAYPOINT, scheme).denied(rejection).ztunnel_rejection is None
    miss = AuthzPath(WorkloadClass.AMBIENT, scheme).denied(PolicyRejection.no_allow_matched())
    assert miss.ztunnel_rejection is not None and miss.ztunnel_rejection.error.endswith(
        "allow policies exist, but none allowed"
    )


def test_allowed_means_2xx_for_http_and_the_echo_for_tcp() -> None:
    assert AuthzPath(WorkloadClass.AMBIENT, "http").allowed()(Response(200))
    assert not AuthzPath(WorkloadClass.AMBIENT, "http").allowed()(RBAC_403)
    assert AuthzPath(WorkloadClass.AMBIENT, "tcp").allowed()(TCP_ECHO)
    assert not tcp_echoed()(TCP_EOF)
    assert not tcp_echoed()(Response(200, body="x"))  # an HTTP response is not a TCP echo


# --- applying and removing -------------------------------------------------------------------------------


class FakeCluster:
    def __init__(self, fail_delete: frozenset[str] = frozenset()) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.applied_with: list[str | None] = []
        self.deleted: list[str] = []
        self.fail_delete = fail_delete

    def apply(self, docs: Any, *, test_id: str | None = None) -> list[dict[str, Any]]:
        self.applied_with.append(test_id)
        for doc in docs:
            self.objects[(doc["kind"], doc["metadata"]["namespace"], doc["metadata"]["name"])] = doc
        return list(docs)

    def delete(
        self, api_version: str, kind: str, name: str, namespace: str | None = None, wait: bool = False
    ) -> bool:
        if name in self.fail_delete:
            raise RuntimeError("the server is currently unable to handle the request")
        self.deleted.append(name)
        return self.objects.pop((kind, str(namespace), name), None) is not None


def policy(name: str, cls: WorkloadClass = WorkloadClass.AMBIENT) -> dict[str, Any]:
    return authorization_policy(name, SERVERS[cls], "DENY", [Rule()])


def test_policies_are_applied_with_the_test_id_and_all_removed(tmp_path: Path) -> None:
    cluster = FakeCluster()
    applied = AppliedPolicies(cluster, "test-deny-abc123", tmp_path)
    applied.apply(policy("allow"), policy("deny"))
    applied.apply(policy("deny"))  # re-applying (replacing) keeps one entry
    assert cluster.applied_with == ["test-deny-abc123", "test-deny-abc123"]
    assert applied.applied == [
        "AuthorizationPolicy mp-run-ambient/allow",
        "AuthorizationPolicy mp-run-ambient/deny",
    ]
    applied.remove(policy("deny"))
    assert applied.applied == ["AuthorizationPolicy mp-run-ambient/allow"]
    applied.close()
    assert cluster.objects == {} and cluster.deleted == ["deny", "allow"]


def test_every_policy_is_attempted_even_when_one_delete_fails(tmp_path: Path) -> None:
    cluster = FakeCluster(fail_delete=frozenset({"first"}))
    applied = AppliedPolicies(cluster, "t", tmp_path)
    applied.apply(policy("first"), policy("second"))
    with pytest.raises(PolicyCleanupError, match="first"):
        applied.close()
    assert cluster.deleted == ["second"]


def test_a_namespace_is_held_by_one_test_at_a_time(tmp_path: Path) -> None:
    """Two appliers stand in for two xdist workers; the lock file is the real cross-process mechanism."""
    first = AppliedPolicies(FakeCluster(), "first", tmp_path, lock_timeout=0.2)
    second = AppliedPolicies(FakeCluster(), "second", tmp_path, lock_timeout=0.2)
    first.apply(policy("a"))
    with pytest.raises(SharedStateBusy, match="policies-"):
        second.apply(policy("b"))
    second.apply(policy("c", WorkloadClass.SIDECAR))  # another namespace is free
    first.remove_all()
    with pytest.raises(SharedStateBusy):  # removing the policies mid-test keeps the namespace held
        second.apply(policy("b"))
    first.close()
    second.apply(policy("b"))
    second.close()


def test_policy_without_namespace_is_refused(tmp_path: Path) -> None:
    applied = AppliedPolicies(FakeCluster(), "t", tmp_path)
    doc = policy("x")
    del doc["metadata"]["namespace"]
    with pytest.raises(ValueError, match="namespace"):
        applied.apply(doc)


def test_exclusive_serializes_one_key_and_names_it_when_the_wait_is_over(tmp_path: Path) -> None:
    key = "server/mp-x-sidecar/restart-me"

    def busy(which: str) -> str | None:
        try:
            with exclusive(tmp_path, which, timeout=0.1):
                return None
        except SharedStateBusy as error:
            return str(error)

    with exclusive(tmp_path, key):
        assert "'server/mp-x-sidecar/restart-me'" in (busy(key) or "") and "still holds it" in (
            busy(key) or ""
        )
        assert busy("server/mp-x-sidecar/other") is None, "another key is free"
    assert busy(key) is None, "released after the block"
