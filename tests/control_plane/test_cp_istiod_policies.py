"""Every policy the conformance suites apply, through the real admission chain and istiod's ambient index.

What this proves about Istio 1.27: the documents meshproof renders pass the Istio 1.27.9 CRD schemas and
their CEL rules (the CRDs are the released 1.27.9 files). What it proves only about istiod's mechanics:
istiod's validating webhook admits them and denies the broken ones with its own message, istiod writes the
ZtunnelAccepted conditions meshproof's evidence code reads, and istiod's ambient index (/debug/ambientz)
holds the translation ztunnel would receive. The istiod here is a 1.30-development build (no 1.27 istiod
is served by the Go module proxy); where 1.27 differs, the difference would show here as a failure to
investigate, not be hidden. No data plane: no ztunnel or Envoy enforces anything in this tier.
"""

from __future__ import annotations

import json
import urllib.request
from types import SimpleNamespace
from typing import Any

import pytest
from fixtures_data.control_plane import ControlPlane

from meshproof.checks.policy import policy_condition_true, ztunnel_rejected_action
from meshproof.evidence import collect
from meshproof.evidence.policy_status import ZTUNNEL_ACCEPTED
from meshproof.kube import Cluster
from meshproof.policies import AuthzPath, EnforcementPoint, Rule, authorization_policy, peer_authentication
from meshproof.traffic import ECHO_PATH
from meshproof.wait import eventually
from meshproof.workloads import RenderOptions, WorkloadClass, WorkloadSet, namespace_labels, render_class
from suites.conformance import test_authz as authz
from suites.conformance import test_mtls as mtls

pytestmark = pytest.mark.control_plane

MESH = SimpleNamespace(trust_domain="cluster.local")
WEBHOOK_DENIAL = 'admission webhook "validation.istio.io" denied the request'


def suite_policies(workloads: WorkloadSet) -> dict[str, dict[str, Any]]:
    """Each AuthorizationPolicy and PeerAuthentication the authz and mTLS suites apply, by a readable id,
    rendered through the suites' own vocabulary (test_authz.allow/deny/source_rule/foreign_rule)."""
    found: dict[str, dict[str, Any]] = {}
    for path in authz.L4_PATHS:
        server, client = workloads.server(path.workload_class), workloads.client(path.workload_class)
        for attribute in ("principal", "namespace"):
            for rule_name, rule in (("source", authz.source_rule), ("foreign", authz.foreign_rule)):
                found[f"{path.id}/allow-{rule_name}-{attribute}"] = authz.allow(
                    server, rule(attribute, client, MESH)
                )
                found[f"{path.id}/deny-{rule_name}-{attribute}"] = authz.deny(
                    server, rule(attribute, client, MESH)
                )
    for path in authz.L7_PATHS:
        server = workloads.server(path.workload_class)
        found[f"{path.id}/l7-path-method"] = authz.allow(server, Rule(paths=(ECHO_PATH,), methods=("GET",)))
    ambient_server, ambient_client = (
        workloads.server(WorkloadClass.AMBIENT),
        workloads.client(WorkloadClass.AMBIENT),
    )
    principal_rule = authz.source_rule("principal", ambient_client, MESH)
    found["ambient/l7-on-ztunnel"] = authz.allow(
        ambient_server, Rule(principals=principal_rule.principals, methods=("GET",))
    )
    for action in ("CUSTOM", "AUDIT"):
        found[f"ambient/{action}"] = authz.unsupported_action_policy(
            action, ambient_server, ambient_client, MESH
        )
    for workload_class in (WorkloadClass.SIDECAR, WorkloadClass.AMBIENT):
        namespace = workloads.namespace(workload_class)
        for mode in sorted({*mtls.OPPOSITE, *mtls.OPPOSITE.values()}):
            found[f"{workload_class.value}/peer-{mode}"] = peer_authentication(
                mtls.PEER_AUTHENTICATION, namespace, mode
            )
    return found


@pytest.fixture
def workloads(cluster: Cluster) -> WorkloadSet:
    """The run's class namespaces, labelled as the workloads fixture labels them (no pods)."""
    ws = WorkloadSet(cluster.run_id, (WorkloadClass.SIDECAR, WorkloadClass.AMBIENT, WorkloadClass.WAYPOINT))
    cluster.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": ws.namespace(c), "labels": namespace_labels(c, None)},
            }
            for c in ws.classes
        ]
    )
    return ws


def dry_run(control_plane: ControlPlane, doc: dict[str, Any]) -> tuple[bool, str]:
    return control_plane.dry_run([doc])


def test_every_suite_policy_is_admitted(control_plane: ControlPlane, workloads: WorkloadSet) -> None:
    policies = suite_policies(workloads)
    assert len(policies) >= 40, f"the suites' policy vocabulary shrank to {len(policies)}: {sorted(policies)}"
    refused = {
        name: why
        for name, doc in policies.items()
        if not (result := dry_run(control_plane, doc))[0]
        for why in [result[1]]
    }
    assert refused == {}, "\n".join(f"{name}: {why}" for name, why in refused.items())


def broken(doc: dict[str, Any], **spec: Any) -> dict[str, Any]:
    out = json.loads(json.dumps(doc))
    for key, value in spec.items():
        if value is None:
            out["spec"].pop(key, None)
        else:
            out["spec"][key] = value
    return out


def test_istiods_webhook_denies_what_meshproof_refuses_to_render(
    control_plane: ControlPlane, workloads: WorkloadSet
) -> None:
    """Each invalid form policies.py refuses locally is denied by istiod's own validation too (so the
    local refusal matches a real one); the message is istiod's, returned through the apiserver."""
    server = workloads.server(WorkloadClass.SIDECAR)
    custom = authorization_policy("meshproof-custom", server, "CUSTOM", [Rule()], provider="ext")
    allow = authorization_policy("meshproof-allow", server, "ALLOW", [Rule(principals=("a/ns/b/sa/c",))])
    with pytest.raises(ValueError):
        authorization_policy("x", server, "CUSTOM", [Rule()])  # meshproof: CUSTOM needs a provider
    with pytest.raises(ValueError):
        authorization_policy("x", server, "ALLOW", [Rule()], provider="ext")  # and only CUSTOM takes one
    cases = {  # name: (document, what istiod says about it)
        "CUSTOM without provider": (broken(custom, provider=None), "`provider.name` must not be empty"),
        "ALLOW with a provider": (
            broken(allow, provider={"name": "ext"}),
            "`provider` must not be with non CUSTOM action, found ALLOW",
        ),
        "source with no field set": (
            broken(allow, rules=[{"from": [{"source": {}}]}]),
            "`from.source` must not be empty, found at rule 0",
        ),
    }
    for name, (doc, says) in cases.items():
        admitted, message = dry_run(control_plane, doc)
        assert not admitted, f"{name}: admitted, istiod should deny it"
        assert WEBHOOK_DENIAL in message, f"{name}: denied, but not by istiod's webhook: {message}"
        assert says in message, f"{name}: istiod's reason changed: {message}"
    # control: the same documents before breaking them are admitted
    assert dry_run(control_plane, custom)[0] and dry_run(control_plane, allow)[0]


# --- status istiod writes, read by the suite's evidence code ---------------------------------------------


def test_istiod_status_read_by_the_evidence_code(cluster: Cluster, workloads: WorkloadSet) -> None:
    """For ambient (ztunnel) policies istiod writes ZtunnelAccepted; the suite's evidence + checks read it:
    AUDIT is rejected for ztunnel (the combination the suite reports as unsupported), an L7 ALLOW is
    accepted with a warning, a plain L4 ALLOW is accepted. Mechanics of istiod's status writer (1.30-dev)."""
    policies = suite_policies(workloads)
    custom, audit, l7, l4 = (
        policies["ambient/CUSTOM"],
        policies["ambient/AUDIT"],
        policies["ambient/l7-on-ztunnel"],
        policies["ambient/http/allow-source-principal"],
    )
    l7["metadata"]["name"] = "meshproof-l7"
    cluster.apply([custom, audit, l7, l4])
    namespace = workloads.namespace(WorkloadClass.AMBIENT)

    def read(name: str, check: Any) -> Any:
        return eventually(
            lambda: _require(check(collect.authorization_policy(cluster, name, namespace))),
            timeout=60,
            interval=0.5,
            description=f"istiod status on {name}",
        )

    for action in ("CUSTOM", "AUDIT"):
        rejected = read(f"meshproof-{action.lower()}", lambda p, a=action: ztunnel_rejected_action(p, a))
        assert f"ztunnel does not support the {action} action" in rejected.reason
    warned = read("meshproof-l7", lambda p: policy_condition_true(p, ZTUNNEL_ACCEPTED))
    assert "with warning" in warned.reason
    accepted = read("meshproof-allow", lambda p: policy_condition_true(p, ZTUNNEL_ACCEPTED))
    assert "with warning" not in accepted.reason
    # negative controls: the checks refuse the wrong reading of the same real objects
    assert not ztunnel_rejected_action(
        collect.authorization_policy(cluster, "meshproof-allow", namespace), "AUDIT"
    )
    assert not policy_condition_true(
        collect.authorization_policy(cluster, "meshproof-audit", namespace), ZTUNNEL_ACCEPTED
    )


def _require(verdict: Any) -> Any:
    assert verdict, verdict.reason
    return verdict


# --- istiod's derived config for ztunnel -----------------------------------------------------------------


def ambientz(control_plane: ControlPlane) -> dict[str, Any]:
    url = f"http://127.0.0.1:{control_plane.port('ISTIOD_HTTP')}/debug/ambientz"
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def test_ambient_index_translates_each_policy_for_ztunnel(
    cluster: Cluster, workloads: WorkloadSet, control_plane: ControlPlane
) -> None:
    """istiod's ambient index (what it would send ztunnel over WDS and its authorization xDS), for the
    ambient class deployed as the suite deploys it: under STRICT the server references the
    `istio_converted_static_strict` DENY (no principal: denied), the L4 ALLOW keeps the client's principal,
    and the L7 rule is dropped from the ztunnel policy, so that ALLOW matches nothing (fails closed).
    Mechanics of istiod's translation (1.30-dev); for 1.27 the same translation is istio-facts §4."""
    cluster.apply(render_class(workloads, WorkloadClass.AMBIENT, RenderOptions()))
    namespace = workloads.namespace(WorkloadClass.AMBIENT)
    cluster.wait_rollout("Deployment", "server", namespace, timeout=120)
    policies = suite_policies(workloads)
    l7 = policies["ambient/l7-on-ztunnel"]
    l7["metadata"]["name"] = "meshproof-l7"
    cluster.apply([policies["ambient/peer-STRICT"], policies["ambient/http/allow-source-principal"], l7])
    strict_ref = "istio-system/istio_converted_static_strict"
    wanted = {strict_ref, f"{namespace}/meshproof-allow", f"{namespace}/meshproof-l7"}

    def server_refs() -> set[str]:
        server = [
            w
            for w in ambientz(control_plane).get("workloads") or []
            if w.get("namespace") == namespace and w.get("workloadName") == "server"
        ]
        assert server, f"no server workload of {namespace} in /debug/ambientz yet"
        return set(server[0].get("authorizationPolicies") or [])

    def bound() -> None:
        assert wanted <= server_refs(), f"server references {sorted(server_refs())}"

    eventually(bound, timeout=60, interval=0.5, description="ztunnel policies bound to the ambient server")
    by_name = {
        f"{p.get('namespace')}/{p.get('name')}": p for p in ambientz(control_plane).get("policies") or []
    }
    strict = by_name[strict_ref]
    assert strict["action"] == "DENY" and "notPrincipals" in json.dumps(strict["groups"])
    allow = by_name[f"{namespace}/meshproof-allow"]
    assert allow.get("action", "ALLOW") == "ALLOW"  # proto JSON leaves out the zero value, ALLOW
    assert ambient_principal(workloads) in json.dumps(allow)
    l7_seen = by_name[f"{namespace}/meshproof-l7"]
    assert l7_seen.get("action", "ALLOW") == "ALLOW" and not l7_seen.get("groups"), l7_seen
    # negative control: under PERMISSIVE the server no longer references the static strict DENY
    cluster.apply([policies["ambient/peer-PERMISSIVE"]])

    def strict_gone() -> None:
        assert strict_ref not in server_refs()

    eventually(strict_gone, timeout=60, interval=0.5, description="static strict policy unbound")


def ambient_principal(workloads: WorkloadSet) -> str:
    client = workloads.client(WorkloadClass.AMBIENT)
    return f"{client.namespace}/sa/{client.service_account}"


def test_the_enforcement_points_cover_the_suites_paths() -> None:
    """Guard against a vacuous vocabulary: the policies above include every enforcement point."""
    assert {
        AuthzPath(c, "http").enforced_by
        for c in (WorkloadClass.SIDECAR, WorkloadClass.AMBIENT, WorkloadClass.WAYPOINT)
    } == set(EnforcementPoint)


# --- istioctl analyze ---------------------------------------------------------------------------------------


def test_istioctl_analyze_finds_only_the_deliberately_absent_namespace(
    cluster: Cluster, workloads: WorkloadSet, control_plane: ControlPlane
) -> None:
    """`istioctl analyze` (1.30-dev) over the sidecar and waypoint classes as the suites deploy them, with
    every suite policy of those classes applied at once (renamed apart): its only finding is IST0101 for
    the namespace the suite's "foreign namespace" rules name on purpose (test_authz.ELSEWHERE_NAMESPACE
    never exists). The ambient class is left out: without istio-cni its pods are not captured, and the
    analyzer then reports the selector policies as matching no workload (IST0127), a tier artefact."""
    classes = (WorkloadClass.SIDECAR, WorkloadClass.WAYPOINT)
    for workload_class in classes:
        cluster.apply(render_class(workloads, workload_class, RenderOptions()))
    prefixes = tuple(f"{c.label}/" for c in classes)
    chosen = {name: doc for name, doc in suite_policies(workloads).items() if name.startswith(prefixes)}
    for index, doc in enumerate(chosen.values()):
        doc["metadata"]["name"] = f"{doc['metadata']['name']}-{index}"
    cluster.apply(list(chosen.values()))
    for workload_class in classes:
        cluster.wait_rollout("Deployment", "server", workloads.namespace(workload_class), timeout=120)

    findings = []
    for workload_class in classes:
        namespace = workloads.namespace(workload_class)
        done = control_plane.tool(
            "istioctl", "analyze", "-n", namespace, "--kubeconfig", str(control_plane.kubeconfig), check=False
        )
        findings += [ln for ln in done.stdout.splitlines() if ln.startswith(("Error [", "Warning ["))]
    expected = f'Referenced namespace not found: "{authz.ELSEWHERE_NAMESPACE}"'
    foreign = [name for name in chosen if "foreign-namespace" in name]
    assert len(findings) == len(foreign) and all("IST0101" in f and expected in f for f in findings), findings
