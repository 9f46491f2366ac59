"""Every document meshproof's install plan renders, validated against the upstream definitions it targets.

Covers each provider x installer x mode x feature combination `build_plan` accepts (OSSM 3.2.0 and the default
for Sail on OpenShift), each against the exact releases it targets: Istio 1.27.9/1.27.3 CRDs and chart values,
the Sail/OSSM operator's own CRDs and charts (../shared/upstream). What it cannot prove: that a cluster
accepts the install (admission webhooks, operator reconciliation, image pulls), semantic validation of
built-in kinds, and anything about the documents listed as uncovered; the Go IstioOperator/Values types
still come from the nearest Istio the Go proxy serves (1.30 development) - see tests/contract/README.md.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from meshproof.config import ConfigError, load_config
from meshproof.contract.checker import Finding
from meshproof.contract.documents import (
    UNCOVERED_CHARTS,
    UNCOVERED_KINDS,
    PlannedDocument,
    helm_document,
    istio_operator_document,
    kind_config_document,
    manifest_document,
)
from meshproof.contract.upstream import FETCH_COMMAND, Target, Upstream, UpstreamMissing, load_upstream
from meshproof.contract.validate import PlanUnderTest, check_documents, validate_plans
from meshproof.mesh.plan import PlanStep, build_plan
from meshproof.mesh.spec import UnsupportedCombination
from meshproof.policies import Rule, authorization_policy, peer_authentication
from meshproof.workloads import Workload, WorkloadClass

pytestmark = pytest.mark.contract

FEATURES = ("nftables", "istio-csr", "gie", "multicluster")


def combinations() -> Iterator[dict[str, Any]]:
    for provider, installer, mode in itertools.product(
        ("kind", "openshift", "existing"), ("istioctl", "helm", "sail"), ("sidecar", "ambient")
    ):
        for n in range(len(FEATURES) + 1):
            for features in itertools.combinations(FEATURES, n):
                cli: dict[str, Any] = dict(
                    provider=provider, installer=installer, mode=mode, features=list(features)
                )
                yield cli
                if installer == "sail" and provider == "openshift":
                    # OSSM 3.2.0: ZTunnel only as v1alpha1, Istio 1.27 only as 1.27.3 (istio-facts §0).
                    yield dict(cli, ossm_version="3.2.0", istio_version="1.27.3")


def label(cli: dict[str, Any]) -> str:
    extra = f" ossm={cli['ossm_version']}" if "ossm_version" in cli else ""
    features = "+".join(cli["features"]) or "no-features"
    return f"{cli['provider']}/{cli['installer']}/{cli['mode']}/{features}{extra}"


def valid_plans() -> list[PlanUnderTest]:
    plans = []
    for cli in combinations():
        try:
            cfg = load_config(cli)
            plan = build_plan(cfg)
        except (UnsupportedCombination, ConfigError):
            continue  # refused combinations are the plan tests' business
        plans.append(
            PlanUnderTest(label(cli), list(plan.steps), cfg.provider, cfg.ossm_version, cfg.istio_version)
        )
    return plans


@pytest.fixture(scope="module")
def plans() -> list[PlanUnderTest]:
    return valid_plans()


@pytest.fixture(scope="module")
def report(plans: list[PlanUnderTest], upstream: Upstream) -> Any:
    return validate_plans(plans, upstream)


def test_every_rendered_document_matches_upstream(report: Any, upstream: Upstream) -> None:
    if report.problems:
        lines = [str(p) for p in report.problems]
        shown = "\n".join(lines[:80])
        more = f"\n... and {len(lines) - 80} more" if len(lines) > 80 else ""
        pytest.fail(
            f"{len(lines)} contract violations against {upstream.describe()}\n"
            f"(combination | document | field path: what upstream says)\n{shown}{more}",
            pytrace=False,
        )


def test_matrix_exercises_every_provider_installer_and_mode(plans: list[PlanUnderTest]) -> None:
    seen = {tuple(p.combination.split("/")[:3]) for p in plans}
    expected = set(
        itertools.product(
            ("kind", "openshift", "existing"), ("istioctl", "helm", "sail"), ("sidecar", "ambient")
        )
    )
    # istioctl and helm are refused on OpenShift (istio-facts §0 trap 12: install goes through the operator).
    expected -= {("openshift", i, m) for i in ("istioctl", "helm") for m in ("sidecar", "ambient")}
    assert expected <= seen, f"combinations that no longer render: {sorted(expected - seen)}"
    assert any("ossm=3.2.0" in p.combination for p in plans), "no OSSM 3.2.0 plan was checked"


def test_every_route_checked_documents(report: Any) -> None:
    """Guard against a vacuous pass: each kind of upstream check ran on rendered documents."""
    routes = " ".join(report.checked_by)
    for route in ("crd ", "k8s.io/api strict decode", "IstioOperator", "Values", "kind pkg/apis/config"):
        assert route in routes, (
            f"no rendered document went through the {route!r} check: {dict(report.checked_by)}"
        )
    assert report.checked_documents > 100


def test_only_documented_documents_are_uncovered(report: Any) -> None:
    documented = set(UNCOVERED_KINDS.values()) | set(UNCOVERED_CHARTS.values())
    assert set(report.uncovered) <= documented


def test_plans_are_checked_against_the_exact_releases_they_target(report: Any) -> None:
    assert report.targets == {
        "istio 1.27.9, ossm-sail-operator-release-3.2",
        "istio 1.27.3, ossm-sail-operator-release-3.2.0",
        "istio 1.27.9, sail-operator-1.29.2",
    }


def test_missing_upstream_fails_with_the_fetch_command(tmp_path: Path, upstream: Upstream) -> None:
    with pytest.raises(UpstreamMissing) as excinfo:
        load_upstream(upstream.shared, tmp_path)
    message = str(excinfo.value)
    assert FETCH_COMMAND in message and "\n" not in message


# --- negative controls: the checker must bite on each class of mistake, and pass the corrected document ---


OSSM_320 = Target("1.27.3", "ossm-sail-operator-release-3.2.0")
OSSM_LATEST = Target("1.27.9", "ossm-sail-operator-release-3.2")


def findings_for(
    upstream: Upstream, document: PlannedDocument, target: Target = OSSM_LATEST
) -> list[Finding]:
    return check_documents([document], upstream.for_target(target))[document.label]


def assert_rejected(findings: list[Finding], path: str, words: str) -> None:
    hits = [f for f in findings if f.path == path and words.lower() in f.message.lower()]
    assert hits, f"expected a finding at {path!r} mentioning {words!r}, got {[str(f) for f in findings]}"


def iop_step(spec: dict[str, Any], command: list[str] | None = None) -> PlanStep:
    iop = {
        "apiVersion": "install.istio.io/v1alpha1",
        "kind": "IstioOperator",
        "metadata": {"name": "t"},
        "spec": spec,
    }
    return PlanStep(
        title="t",
        cluster="c",
        command=command or ["istioctl", "install", "--filename", "<istio-operator-file>"],
        istio_operator=iop,
    )


def helm_step(chart: str, values: dict[str, Any]) -> PlanStep:
    return PlanStep(
        title="t",
        cluster="c",
        command=["helm", "install", chart, "--values", "<values-file>"],
        helm_chart=chart,
        helm_values=values,
    )


def test_unknown_istio_operator_field_is_rejected(upstream: Upstream) -> None:
    bad = istio_operator_document(iop_step({"profil": "ambient"}), "iop", "iop", upstream)
    assert_rejected(findings_for(upstream, bad), "spec.profil", "unknown field")
    good = istio_operator_document(iop_step({"profile": "ambient"}), "iop", "iop", upstream)
    assert findings_for(upstream, good) == []


def test_values_key_that_does_not_exist_is_rejected(upstream: Upstream) -> None:
    spec = {"values": {"global": {"nativeNftable": True}}}
    bad = istio_operator_document(iop_step(spec), "iop", "iop", upstream)
    assert_rejected(findings_for(upstream, bad), "spec.values.global.nativeNftable", "unknown field")
    good = istio_operator_document(
        iop_step({"values": {"global": {"nativeNftables": True}}}), "iop", "iop", upstream
    )
    assert findings_for(upstream, good) == []


def test_ztunnel_values_are_checked_against_the_ztunnel_chart(upstream: Upstream) -> None:
    iop = istio_operator_document(
        iop_step({"values": {"ztunnel": {"caAdress": "x:443"}}}), "iop", "iop", upstream
    )
    assert_rejected(findings_for(upstream, iop), "spec.values.ztunnel.caAdress", "not in the chart")
    spec = {"namespace": "ztunnel", "values": {"ztunnel": {"env": {"A": 1}, "network": "n1"}}}
    sail = manifest_document(ztunnel("sailoperator.io/v1", spec), "z", "z", upstream)
    assert_rejected(findings_for(upstream, sail), "spec.values.ztunnel.env.A", "must be a string")


def test_istioctl_set_flags_are_checked(upstream: Upstream) -> None:
    step = iop_step(
        {}, ["istioctl", "install", "--filename", "<istio-operator-file>", "--set", "values.pilot.envv.A=b"]
    )
    assert_rejected(
        findings_for(upstream, istio_operator_document(step, "iop", "iop", upstream)),
        "spec.values.pilot.envv",
        "unknown",
    )


def test_helm_values_key_not_in_the_chart_is_rejected(upstream: Upstream) -> None:
    # The istiod chart takes env at the top level; `pilot.env` is the istioctl/Sail form (istio-facts §7.2).
    bad = helm_document(helm_step("istiod", {"pilot": {"env": {"A": "b"}}}), upstream, "helm", "helm")
    assert_rejected(findings_for(upstream, bad), "pilot", "not in the chart")
    good = helm_document(
        helm_step("istiod", {"env": {"A": "b"}, "profile": "ambient"}), upstream, "helm", "helm"
    )
    assert findings_for(upstream, good) == []


def test_helm_profile_without_a_profile_file_is_rejected(upstream: Upstream) -> None:
    bad = helm_document(helm_step("cni", {"profile": "ambiant"}), upstream, "helm", "helm")
    assert_rejected(findings_for(upstream, bad), "profile", "files/profile-ambiant.yaml")


def test_env_value_as_bool_is_rejected(upstream: Upstream) -> None:
    istio = {
        "apiVersion": "sailoperator.io/v1",
        "kind": "Istio",
        "metadata": {"name": "default"},
        "spec": {
            "version": "v1.27.9",
            "namespace": "istio-system",
            "values": {"pilot": {"env": {"ENABLE_GATEWAY_API_INFERENCE_EXTENSION": True}}},
        },
    }
    bad = manifest_document(istio, "istio", "istio", upstream)
    assert_rejected(
        findings_for(upstream, bad), "pilot.env.ENABLE_GATEWAY_API_INFERENCE_EXTENSION", "must be strings"
    )
    istio["spec"]["values"]["pilot"]["env"]["ENABLE_GATEWAY_API_INFERENCE_EXTENSION"] = "true"
    assert findings_for(upstream, manifest_document(istio, "istio", "istio", upstream)) == []
    iop = istio_operator_document(
        iop_step({"values": {"pilot": {"env": {"X": True}}}}), "iop", "iop", upstream
    )
    assert_rejected(findings_for(upstream, iop), "spec.values.pilot.env.X", "must be a string")


def ztunnel(api_version: str, spec: dict[str, Any], name: str = "default") -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": "ZTunnel", "metadata": {"name": name}, "spec": spec}


def sail_v1(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "sailoperator.io/v1", "kind": kind, "metadata": {"name": "default"}, "spec": spec}


def test_ztunnel_v1_with_profile_is_rejected(upstream: Upstream) -> None:
    bad = manifest_document(
        ztunnel("sailoperator.io/v1", {"namespace": "ztunnel", "profile": "ambient"}), "z", "z", upstream
    )
    assert_rejected(findings_for(upstream, bad), "spec.profile", "unknown field")
    good = manifest_document(ztunnel("sailoperator.io/v1", {"namespace": "ztunnel"}), "z", "z", upstream)
    assert findings_for(upstream, good) == []


def test_ossm_320_serves_only_ztunnel_v1alpha1(upstream: Upstream) -> None:
    v1 = manifest_document(
        ztunnel("sailoperator.io/v1", {"namespace": "ztunnel", "version": "v1.27.3"}), "z", "z", upstream
    )
    assert_rejected(findings_for(upstream, v1, OSSM_320), "apiVersion", "no upstream definition")
    spec = {"namespace": "ztunnel", "version": "v1.27.3", "profile": "ambient"}
    v1alpha1 = manifest_document(ztunnel("sailoperator.io/v1alpha1", spec), "z", "z", upstream)
    assert findings_for(upstream, v1alpha1, OSSM_320) == []


def test_sail_cel_rules_are_evaluated(upstream: Upstream) -> None:
    named = manifest_document(
        ztunnel("sailoperator.io/v1", {"namespace": "ztunnel"}, name="mine"), "z", "z", upstream
    )
    assert_rejected(findings_for(upstream, named), "", "metadata.name must be 'default'")
    istio = sail_v1("Istio", {"namespace": "istio-system", "values": {"global": {"istioNamespace": "other"}}})
    assert_rejected(
        findings_for(upstream, manifest_document(istio, "i", "i", upstream)),
        "spec",
        "must match spec.namespace",
    )


def test_wrong_enum_is_rejected(upstream: Upstream) -> None:
    pa = {
        "apiVersion": "security.istio.io/v1",
        "kind": "PeerAuthentication",
        "metadata": {"name": "default", "namespace": "istio-system"},
        "spec": {"mtls": {"mode": "STRICTEST"}},
    }
    assert_rejected(
        findings_for(upstream, manifest_document(pa, "pa", "pa", upstream)),
        "spec.mtls.mode",
        "Unsupported value",
    )
    pa["spec"] = {"mtls": {"mode": "STRICT"}}
    assert findings_for(upstream, manifest_document(pa, "pa", "pa", upstream)) == []


def test_unknown_fields_in_crs_builtins_meshconfig_and_kind_config_are_rejected(upstream: Upstream) -> None:
    gw = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": "g", "namespace": "n"},
        "spec": {
            "gatewayClassName": "istio",
            "listeners": [{"name": "h", "port": 80, "protocol": "HTTP", "hostnam": "x"}],
        },
    }
    assert_rejected(
        findings_for(upstream, manifest_document(gw, "gw", "gw", upstream)),
        "spec.listeners[0].hostnam",
        "unknown field",
    )
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "n"}, "datta": {}}
    assert_rejected(
        findings_for(upstream, manifest_document(cm, "cm", "cm", upstream)), "datta", "unknown field"
    )
    mesh = helm_document(
        helm_step("istiod", {"meshConfig": {"accessLogFil": "/dev/stdout"}}), upstream, "h", "h"
    )
    assert_rejected(findings_for(upstream, mesh), "accessLogFil", "unknown field")
    kind = kind_config_document(
        {"apiVersion": "kind.x-k8s.io/v1alpha4", "kind": "Cluster", "nodez": []}, "k", "k"
    )
    assert_rejected(findings_for(upstream, kind), "nodez", "unknown field")


def test_a_kind_without_upstream_definition_fails(upstream: Upstream) -> None:
    doc = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    assert_rejected(
        findings_for(upstream, manifest_document(doc, "w", "w", upstream)),
        "apiVersion",
        "no upstream definition",
    )


def test_values_keys_that_istio_1_27_lacks_are_rejected(upstream: Upstream) -> None:
    # Keys of later Istio charts (the 1.30-dev snapshot accepted them): 1.27.9's charts do not have them.
    istiod = helm_document(helm_step("istiod", {"global": {"resourceScope": "all"}}), upstream, "h", "h")
    assert_rejected(findings_for(upstream, istiod), "global.resourceScope", "not in the chart")
    ztunnel_chart = helm_document(helm_step("ztunnel", {"dnsPolicy": "ClusterFirst"}), upstream, "h", "h")
    assert_rejected(findings_for(upstream, ztunnel_chart), "dnsPolicy", "not in the chart")
    good = helm_document(helm_step("ztunnel", {"network": "n1"}), upstream, "h", "h")
    assert findings_for(upstream, good) == []


def test_istio_version_outside_the_ossm_releases_enum_is_rejected(upstream: Upstream) -> None:
    istio = sail_v1("Istio", {"version": "v1.27.9", "namespace": "istio-system"})
    assert findings_for(upstream, manifest_document(istio, "i", "i", upstream)) == []
    # OSSM 3.2.0's Istio CRD offers only v1.27.3 of 1.27 (its spec.version enum).
    old = upstream.for_target(OSSM_320)
    assert_rejected(
        findings_for(upstream, manifest_document(istio, "i", "i", old), OSSM_320),
        "spec.version",
        "Unsupported value",
    )


def test_unknown_key_in_sail_values_is_rejected_by_the_real_crd(upstream: Upstream) -> None:
    cni = sail_v1("IstioCNI", {"namespace": "istio-cni", "values": {"cni": {"cniBinDirr": "/opt/cni/bin"}}})
    assert_rejected(
        findings_for(upstream, manifest_document(cni, "c", "c", upstream)),
        "spec.values.cni.cniBinDirr",
        "unknown",
    )


def test_ztunnel_chart_flattens_global_onto_its_own_keys(upstream: Upstream) -> None:
    # istio@1.27.9 ztunnel zzz_profile.yaml merges .Values.global over the chart's top-level defaults.
    platform_only = helm_document(
        helm_step("ztunnel", {"global": {"platform": "openshift"}}), upstream, "h", "h"
    )
    assert findings_for(upstream, platform_only) == []
    flattened = helm_document(helm_step("ztunnel", {"global": {"hub": "quay.io/x"}}), upstream, "h", "h")
    assert findings_for(upstream, flattened) == []
    unknown = helm_document(helm_step("ztunnel", {"global": {"resourceScope": "all"}}), upstream, "h", "h")
    assert_rejected(findings_for(upstream, unknown), "global.resourceScope", "not in the chart")


def test_istio_csr_values_are_checked_against_the_chart_meshproof_installs(upstream: Upstream) -> None:
    # istio-csr's chart (../shared/upstream at the pinned version) has values.yaml and values.schema.json.
    chart = "cert-manager-istio-csr"
    good = helm_document(helm_step(chart, {"app": {"tls": {"trustDomain": "td"}}}), upstream, "h", "h")
    assert findings_for(upstream, good) == []
    bad = helm_document(helm_step(chart, {"app": {"tls": {"trustDomian": "td"}}}), upstream, "h", "h")
    assert_rejected(findings_for(upstream, bad), "app.tls.trustDomian", "not in the chart")


def test_istio_csr_plans_were_checked(report: Any, plans: list[PlanUnderTest]) -> None:
    assert any("istio-csr" in p.combination and p.provider == "kind" for p in plans)
    uncovered = [doc for docs in report.uncovered.values() for doc in docs]
    assert not [doc for doc in uncovered if "cert-manager-istio-csr" in doc], uncovered


def suite_policies() -> list[dict[str, Any]]:
    """Every shape of policy the conformance suites render (meshproof/policies.py), per enforcement point."""
    docs: list[dict[str, Any]] = []
    for workload_class in (WorkloadClass.SIDECAR, WorkloadClass.AMBIENT, WorkloadClass.WAYPOINT):
        server = Workload(workload_class, f"mp-{workload_class.value}", "server")
        source = Rule(principals=("cluster.local/ns/mp/sa/client",), namespaces=("mp",))
        docs += [
            authorization_policy("allow", server, "ALLOW", [source]),
            authorization_policy("deny", server, "DENY", [source, Rule(paths=("/echo",), methods=("GET",))]),
            authorization_policy("audit", server, "AUDIT", [source]),
            authorization_policy("custom", server, "CUSTOM", [Rule(ports=(8080,))], provider="ext"),
            authorization_policy("nothing", server, "ALLOW", None),
        ]
    docs += [peer_authentication("mtls", "mp-ambient", mode) for mode in ("STRICT", "PERMISSIVE", "DISABLE")]
    return docs


def test_suite_policies_match_the_istio_1_27_crds(upstream: Upstream) -> None:
    documents = [
        manifest_document(doc, f"policy {i}", f"p{i}", upstream) for i, doc in enumerate(suite_policies())
    ]
    findings = check_documents(documents, upstream.for_target(OSSM_LATEST))
    assert {label: f for label, f in findings.items() if f} == {}
    # The same check bites on a policy field 1.27 does not have.
    bad = dict(suite_policies()[0], spec={**suite_policies()[0]["spec"], "actions": "ALLOW"})
    assert_rejected(
        findings_for(upstream, manifest_document(bad, "b", "b", upstream)), "spec.actions", "unknown field"
    )
