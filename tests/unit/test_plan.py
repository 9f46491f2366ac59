"""Install plans for every provider x installer x mode x feature: they render, are stable, carry the facts.

Assertions read the rendered objects (Helm values, the IstioOperator, Sail CRs, command arguments), never
substrings of the printed text. The "views" below pull the control-plane settings out of whichever shape the
installer uses, independently of meshproof.mesh.values, so a value placed where the installer does not read
it fails here. What this cannot prove: that the upstream APIs accept these documents (the contract tests
check the schemas) or that a cluster converges with them (the install suite does).
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from meshproof.config import Feature, RunConfig, load_config
from meshproof.mesh import pins
from meshproof.mesh.model import InstallPlan, PlanStep
from meshproof.mesh.plan import build_plan
from meshproof.mesh.spec import UnsupportedCombination

PROVIDERS = ("kind", "openshift", "existing")
INSTALLERS = ("istioctl", "helm", "sail")
MODES = ("sidecar", "ambient")
FEATURE_SETS: tuple[tuple[str, ...], ...] = (
    (),
    ("nftables",),
    ("istio-csr",),
    ("gie",),
    ("multicluster",),
    ("gie", "istio-csr", "nftables"),
    ("gie", "multicluster", "nftables"),
)


def make_config(
    provider: str, installer: str, mode: str, features: tuple[str, ...] = (), **extra: Any
) -> RunConfig:
    cli: dict[str, object] = {
        "provider": provider,
        "installer": installer,
        "mode": mode,
        "features": ",".join(features),
    }
    if provider != "kind":
        cli["context"] = ["ctx-a", "ctx-b"]
    cli.update(extra)
    return load_config(cli, env={})


def expected_refusal(provider: str, installer: str, mode: str, features: tuple[str, ...]) -> str | None:
    """The independent oracle: which rule (by its message's start) refuses the combination, if any."""
    if mode == "ambient" and "nftables" in features:
        return "nftables redirection is sidecar-only in Istio 1.27 (ambient nftables arrived in 1.28)"
    if "multicluster" in features:
        if mode == "ambient" and installer == "sail" and provider == "openshift":
            return "ambient multicluster is not supported by OSSM 3.2"
        if "istio-csr" in features:
            return "istio-csr with multicluster needs one cert-manager CA"
    if "istio-csr" in features and mode == "ambient" and provider == "openshift":
        return "istio-csr with ambient on OpenShift needs ztunnel node-account impersonation"
    return None


COMBINATIONS = [
    pytest.param(p, i, m, f, id=f"{p}-{i}-{m}-{'+'.join(f) or 'none'}")
    for p, i, m, f in itertools.product(PROVIDERS, INSTALLERS, MODES, FEATURE_SETS)
]


# --- views: the control plane as each installer renders it ---------------------------------------------


def steps_on(plan: InstallPlan, cluster: str) -> list[PlanStep]:
    return [s for s in plan.steps if s.cluster == cluster]


def helm_values(plan: InstallPlan, cluster: str, chart: str) -> dict[str, Any] | None:
    found = [s.helm_values for s in steps_on(plan, cluster) if s.helm_chart == chart]
    assert len(found) <= 1, f"chart {chart} installed {len(found)} times on {cluster}"
    return found[0] if found else None


def helm_namespace(plan: InstallPlan, cluster: str, chart: str) -> str:
    (step,) = [s for s in steps_on(plan, cluster) if s.helm_chart == chart]
    assert step.command is not None
    return step.command[step.command.index("--namespace") + 1]


def manifests(plan: InstallPlan, cluster: str, kind: str) -> list[dict[str, Any]]:
    return [m for s in steps_on(plan, cluster) for m in s.manifests if m["kind"] == kind]


def east_west(gateways: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The mesh's own gateways, without the gie suite's inference Gateway (its own namespace)."""
    return [g for g in gateways if g["metadata"]["namespace"] != "meshproof-gie"]


def one(items: list[dict[str, Any]]) -> dict[str, Any]:
    assert len(items) == 1, f"expected one object, found {len(items)}"
    return items[0]


def control_plane(plan: InstallPlan, cluster: str) -> dict[str, Any]:
    """global values, istiod env, trusted ztunnel namespace, CNI global values, ztunnel values and the
    namespace ztunnel really runs in — read from whatever the installer renders."""
    installer = plan.spec.installer
    if installer == "istioctl":
        (iop,) = [s.istio_operator for s in steps_on(plan, cluster) if s.istio_operator]
        values = iop["spec"]["values"]
        pilot = values.get("pilot", {})
        components = iop["spec"].get("components", {})
        return {
            "profile": iop["spec"]["profile"],
            "global": values.get("global", {}),
            "env": pilot.get("env", {}),
            "trusted": pilot.get("trustedZtunnelNamespace"),
            "cni_global": values.get("global", {}),  # istioctl shares `global` with every chart
            "ztunnel": values.get("ztunnel", {}),
            "ztunnel_ns": components.get("ztunnel", {}).get("namespace"),
            "cni_enabled": components.get("cni", {}).get("enabled", False),
        }
    if installer == "helm":
        istiod = helm_values(plan, cluster, "istiod") or {}
        cni = helm_values(plan, cluster, "cni")
        ztunnel = helm_values(plan, cluster, "ztunnel")
        return {
            "profile": istiod.get("profile"),
            "cni_profile": (cni or {}).get("profile"),
            "global": istiod.get("global", {}),
            "env": istiod.get("env", {}),
            "trusted": istiod.get("trustedZtunnelNamespace"),
            "cni_global": (cni or {}).get("global", {}),
            "ztunnel": ztunnel or {},
            "ztunnel_ns": helm_namespace(plan, cluster, "ztunnel") if ztunnel is not None else None,
            "cni_enabled": cni is not None,
        }
    istio = one(manifests(plan, cluster, "Istio"))
    values = istio["spec"].get("values", {})
    cni = one(manifests(plan, cluster, "IstioCNI"))
    zt = manifests(plan, cluster, "ZTunnel")
    return {
        "profile": istio["spec"].get("profile"),
        "cni_profile": cni["spec"].get("profile"),
        "global": values.get("global", {}),
        "env": values.get("pilot", {}).get("env", {}),
        "trusted": values.get("pilot", {}).get("trustedZtunnelNamespace"),
        "cni_global": cni["spec"].get("values", {}).get("global", {}),
        "ztunnel": one(zt)["spec"].get("values", {}).get("ztunnel", {}) if zt else {},
        "ztunnel_ns": one(zt)["spec"]["namespace"] if zt else None,
        "cni_enabled": True,
    }


# --- the matrix ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("provider", "installer", "mode", "features"), COMBINATIONS)
def test_plan_renders_stably_and_carries_the_facts(
    provider: str, installer: str, mode: str, features: tuple[str, ...]
):
    cfg = make_config(provider, installer, mode, features)
    refusal = expected_refusal(provider, installer, mode, features)
    if refusal is not None:
        with pytest.raises(UnsupportedCombination) as info:
            build_plan(cfg)
        message = str(info.value)
        assert message.startswith(refusal)
        assert "\n" not in message
        return
    plan = build_plan(cfg)
    again = build_plan(cfg)
    assert plan.render_text() == again.render_text()
    assert plan.spec.fingerprint() == again.spec.fingerprint()

    cluster_names = [c.name for c in plan.spec.clusters]
    assert {s.cluster for s in plan.steps} <= set(cluster_names)
    for name in cluster_names:
        view = control_plane(plan, name)
        assert_mode_facts(plan, name, view)
        assert_feature_facts(plan, name, view)
        assert_recorded_last(plan, name)
    if "multicluster" in features:
        assert_multicluster_facts(plan)


def assert_mode_facts(plan: InstallPlan, cluster: str, view: dict[str, Any]) -> None:
    spec = plan.spec
    openshift = spec.provider == "openshift"
    if spec.mode == "ambient":
        # istiod trusts the namespace ztunnel actually runs in (istio-facts §0 trap 11).
        assert view["ztunnel_ns"] is not None
        assert view["trusted"] == view["ztunnel_ns"] == spec.ztunnel_namespace
        assert view["cni_enabled"]
        if spec.installer == "helm":
            assert view["profile"] == "ambient" and view["cni_profile"] == "ambient"  # istio-facts §1.2
        if spec.installer == "sail":
            assert view["profile"] == "ambient" and view["cni_profile"] == "ambient"
        if spec.installer == "istioctl":
            assert view["profile"] == ("openshift-ambient" if openshift else "ambient")
    else:
        assert view["ztunnel_ns"] is None and view["trusted"] is None
        if spec.installer == "istioctl":
            assert view["profile"] == ("openshift" if openshift else "default")
        if spec.installer in ("helm", "sail"):
            assert view["profile"] is None
        # On OpenShift the CNI is mandatory (istio-facts §1.2); Sail always has IstioCNI.
        if openshift or spec.installer == "sail":
            assert view["cni_enabled"]
    if openshift and spec.installer != "sail":
        assert view["global"].get("platform") == "openshift"
        assert view["cni_global"].get("platform") == "openshift"
    if openshift and spec.installer == "helm" and spec.mode == "ambient":
        assert (
            helm_namespace(plan, cluster, "cni") == helm_namespace(plan, cluster, "ztunnel") == "kube-system"
        )


def assert_feature_facts(plan: InstallPlan, cluster: str, view: dict[str, Any]) -> None:
    spec = plan.spec
    has = spec.has
    # nftables: on both the control plane and the CNI (istio-facts §5), and only when asked for.
    assert view["global"].get("nativeNftables", False) is has(Feature.NFTABLES)
    assert view["cni_global"].get("nativeNftables", False) is has(Feature.NFTABLES)
    if has(Feature.NFTABLES):
        assert view["cni_enabled"]
    # GIE: the real flag (trap 4) and CRDs of the group this build watches (trap 2).
    assert (view["env"].get("ENABLE_GATEWAY_API_INFERENCE_EXTENSION") == "true") is has(Feature.GIE)
    crd_waits = {
        w.name for s in steps_on(plan, cluster) for w in s.wait if w.kind == "CustomResourceDefinition"
    }
    pools = {n for n in crd_waits if n.startswith("inferencepools.")}
    if has(Feature.GIE):
        group = "inference.networking.k8s.io" if spec.build == "ossm" else "inference.networking.x-k8s.io"
        # Both groups' pool CRDs: the watched one, and the other one for the gie suite's control that a
        # pool istiod does not watch stays unresolved (GIE v1.0 ships both; upstream adds v1.0's v1 CRD).
        other = "inference.networking.x-k8s.io" if spec.build == "ossm" else "inference.networking.k8s.io"
        assert pools == {f"inferencepools.{group}", f"inferencepools.{other}"}
        kustomize = [s for s in steps_on(plan, cluster) if s.command and "--kustomize" in s.command]
        assert kustomize and all(f"({group}/" in s.title for s in kustomize)
        assert spec.gie_api_version == (f"{group}/v1" if spec.build == "ossm" else f"{group}/v1alpha2")
    else:
        assert not pools
    # istio-csr: istiod stops signing and points at istio-csr; ztunnel too in ambient (istio-facts §6).
    if has(Feature.ISTIO_CSR):
        address = view["global"].get("caAddress")
        ns = "istio-csr" if spec.provider == "openshift" else "cert-manager"
        assert address == f"cert-manager-istio-csr.{ns}.svc:443"
        assert view["env"].get("ENABLE_CA_SERVER") == "false"
        if spec.ambient:
            assert view["ztunnel"].get("caAddress") == address
            csr = helm_values(plan, cluster, "cert-manager-istio-csr") or {}
            assert csr["app"]["server"]["caTrustedNodeAccounts"] == f"{view['ztunnel_ns']}/ztunnel"
        if spec.provider == "openshift":
            assert one(manifests(plan, cluster, "IstioCSR"))["metadata"]["name"] == "default"
        else:
            assert helm_values(plan, cluster, "cert-manager") == {"crds": {"enabled": True}}
    else:
        assert "caAddress" not in view["global"]
        assert "ENABLE_CA_SERVER" not in view["env"]


def assert_multicluster_facts(plan: InstallPlan) -> None:
    spec = plan.spec
    assert len(spec.clusters) == 2
    networks = set()
    for cluster in spec.clusters:
        view = control_plane(plan, cluster.name)
        glob = view["global"]
        assert glob["meshID"] == "mesh1"
        assert glob["multiCluster"] == {"clusterName": cluster.name}
        assert glob["network"] == cluster.network
        networks.add(cluster.network)
        system_ns = [
            m for m in manifests(plan, cluster.name, "Namespace") if m["metadata"]["name"] == "istio-system"
        ]
        assert one(system_ns)["metadata"]["labels"]["topology.istio.io/network"] == cluster.network
        cacerts = one(
            [m for m in manifests(plan, cluster.name, "Secret") if m["metadata"]["name"] == "cacerts"]
        )
        assert "data" not in cacerts and "stringData" not in cacerts  # keys are made at apply time only
        if spec.ambient:
            assert view["env"]["AMBIENT_ENABLE_MULTI_NETWORK"] == "true"  # istio-facts §8.1
            assert view["ztunnel"]["multiCluster"] == {"clusterName": cluster.name}
            assert view["ztunnel"]["network"] == cluster.network  # top-level from 1.27.3 (§1.2)
            gateway = one(east_west(manifests(plan, cluster.name, "Gateway")))
            assert gateway["spec"]["gatewayClassName"] == "istio-east-west"
        else:
            gateway = one(east_west(manifests(plan, cluster.name, "Gateway")))
            assert gateway["apiVersion"] == "networking.istio.io/v1"
            (server,) = gateway["spec"]["servers"]
            assert (server["port"]["number"], server["tls"]["mode"]) == (15443, "AUTO_PASSTHROUGH")
    assert len(networks) == 2
    # Every cluster gets a remote secret for every other one.
    pairs = {(s.cluster, s.title) for s in plan.steps if s.title.startswith("Give ")}
    assert len(pairs) == 2
    if spec.provider == "kind":
        kind_nodes = [c.kind for c in spec.clusters]
        assert all(k is not None for k in kind_nodes)
        assert len({k.pod_subnet for k in kind_nodes if k}) == 2
        assert len({k.service_subnet for k in kind_nodes if k}) == 2
        configs = [s.config_file for s in plan.steps if s.config_file]
        assert [c["networking"]["podSubnet"] for c in configs] == [k.pod_subnet for k in kind_nodes if k]


def assert_recorded_last(plan: InstallPlan, cluster: str) -> None:
    mesh_steps = [s for s in steps_on(plan, cluster) if s.stage == "mesh"]
    record = one([m for m in mesh_steps[-1].manifests if m["kind"] == "ConfigMap"])
    assert record["metadata"]["name"] == "meshproof-install"
    assert record["data"]["fingerprint"] == plan.spec.fingerprint()


# --- the traps, one by one ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ossm", "istio", "api_version", "profile"),
    [
        pytest.param("3.2.0", "1.27.3", "sailoperator.io/v1alpha1", "ambient", id="ossm-3.2.0"),
        pytest.param("3.2.1", "1.27.3", "sailoperator.io/v1", None, id="ossm-3.2.1"),
        pytest.param("3.2.9", "1.27.9", "sailoperator.io/v1", None, id="ossm-3.2.9"),
    ],
)
def test_ztunnel_api_version_follows_the_ossm_release(
    ossm: str, istio: str, api_version: str, profile: str | None
):
    """istio-facts §0 trap 1: 3.2.0 serves only v1alpha1 (with profile); v1 (3.2.1+) has no profile."""
    cfg = make_config("openshift", "sail", "ambient", ossm_version=ossm, istio_version=istio)
    plan = build_plan(cfg)
    ztunnel = one(manifests(plan, plan.spec.primary.name, "ZTunnel"))
    assert ztunnel["apiVersion"] == api_version
    assert ztunnel["spec"].get("profile") == profile
    waits = [w for s in plan.steps for w in s.wait if w.kind == "ZTunnel"]
    assert [w.api_version for w in waits] == [api_version]


@pytest.mark.parametrize(
    ("istio", "api_version"),
    [("1.27.3", "sailoperator.io/v1alpha1"), ("1.27.9", "sailoperator.io/v1")],
)
def test_upstream_sail_on_kind_uses_the_ztunnel_api_its_release_serves(istio: str, api_version: str):
    plan = build_plan(make_config("kind", "sail", "ambient", istio_version=istio))
    ztunnel = one(manifests(plan, plan.spec.primary.name, "ZTunnel"))
    assert ztunnel["apiVersion"] == api_version
    assert ("profile" in ztunnel["spec"]) is api_version.endswith("v1alpha1")
    assert helm_values(plan, plan.spec.primary.name, "sail-operator") == {}
    assert plan.spec.sail is not None
    assert plan.spec.sail.version == pins.UPSTREAM_SAIL_FOR_ISTIO[istio].chart_version


@pytest.mark.parametrize("provider", ["kind", "openshift"])
def test_sail_sidecar_mode_tells_istiod_to_use_the_cni_it_installs(provider: str):
    # Sail installs IstioCNI in sidecar mode too; istiod's chart defaults pilot.cni.enabled to false and
    # only OpenShift's platform profile enables it, so on kind pods would get istio-init without this.
    plan = build_plan(make_config(provider, "sail", "sidecar"))
    assert manifests(plan, plan.spec.primary.name, "IstioCNI")
    istio = one(manifests(plan, plan.spec.primary.name, "Istio"))
    assert istio["spec"]["values"]["pilot"]["cni"] == {"enabled": True}
    ambient_plan = build_plan(make_config(provider, "sail", "ambient"))
    ambient = one(manifests(ambient_plan, ambient_plan.spec.primary.name, "Istio"))
    assert "cni" not in ambient["spec"].get("values", {}).get("pilot", {})


def test_openshift_sail_pins_the_ossm_csv_through_manual_approval():
    plan = build_plan(make_config("openshift", "sail", "sidecar", ossm_version="3.2.9"))
    sub = one(manifests(plan, "cluster1", "Subscription"))
    assert sub["metadata"] == {"name": "servicemeshoperator3", "namespace": "openshift-operators"}
    assert sub["spec"]["channel"] == "stable-3.2"
    assert sub["spec"]["installPlanApproval"] == "Manual"
    assert sub["spec"]["startingCSV"] == "servicemeshoperator3.v3.2.9"
    csv_waits = [w for s in plan.steps for w in s.wait if w.kind == "ClusterServiceVersion"]
    assert [(w.name, w.field, w.equals) for w in csv_waits] == [
        ("servicemeshoperator3.v3.2.9", "status.phase", "Succeeded")
    ]
    assert not [s for s in plan.steps if s.helm_chart == "sail-operator"]  # OLM, not the upstream chart


def test_revision_based_sail_install_tags_the_revision_default():
    plan = build_plan(make_config("kind", "sail", "sidecar"), revision_strategy="RevisionBased")
    istio = one(manifests(plan, plan.spec.primary.name, "Istio"))
    assert istio["spec"]["updateStrategy"]["type"] == "RevisionBased"
    tag = one(manifests(plan, plan.spec.primary.name, "IstioRevisionTag"))
    assert tag["metadata"]["name"] == "default"  # what istio-injection=enabled selects (istio-facts §1.4)
    assert tag["spec"]["targetRef"] == {"kind": "Istio", "name": "default"}
    assert plan.spec.revision == "default-v1-27-9"
    rollouts = [w.name for s in plan.steps for w in s.wait if w.rollout and w.kind == "Deployment"]
    assert "istiod-default-v1-27-9" in rollouts


def test_in_place_sail_install_has_no_revision_tag():
    # A tag named `default` would clash with the InPlace revision, which is itself named `default`.
    plan = build_plan(make_config("kind", "sail", "sidecar"))
    assert plan.spec.revision == "default"
    assert not manifests(plan, plan.spec.primary.name, "IstioRevisionTag")


def test_kind_cluster_is_pinned_and_reusable():
    plan = build_plan(make_config("kind", "helm", "ambient"))
    create = plan.steps[0]
    assert create.stage == "cluster" and create.config_file is not None
    nodes = create.config_file["nodes"]
    assert [n["role"] for n in nodes] == ["control-plane", "worker", "worker"]
    assert {n["image"] for n in nodes} == {pins.KIND_NODE_IMAGES[pins.DEFAULT_KIND_KUBERNETES]}
    assert "@sha256:" in nodes[0]["image"]
    assert create.skip_if == ["kind", "get", "kubeconfig", "--name", "meshproof"]
    assert create.undo_command == ["kind", "delete", "cluster", "--name", "meshproof"]
    charts = [s.helm_chart for s in plan.steps if s.stage == "platform"]
    assert "metrics-server" in charts


@pytest.mark.parametrize(
    ("overrides", "message_start"),
    [
        pytest.param(
            {"istio_version": "1.26.3"}, "--istio-version 1.26.3: meshproof targets Istio 1.27", id="not-1.27"
        ),
        pytest.param(
            {"installer": "istioctl", "istio_version": "1.27.3"},
            "--installer istioctl installs the version of the istioctl binary",
            id="istioctl-other-patch",
        ),
        pytest.param(
            {
                "provider": "openshift",
                "installer": "sail",
                "ossm_version": "3.2.0",
                "istio_version": "1.27.9",
            },
            "OSSM 3.2.0 does not offer Istio 1.27.9",
            id="ossm-3.2.0-with-1.27.9",
        ),
        pytest.param(
            {"provider": "openshift", "installer": "sail", "ossm_version": "3.1.2"},
            "--ossm-version 3.1.2: meshproof targets OSSM 3.2",
            id="ossm-3.1",
        ),
        pytest.param(
            {"installer": "sail", "istio_version": "1.27.5"},
            "no pinned upstream Sail operator release installs Istio 1.27.5",
            id="kind-sail-unknown-patch",
        ),
    ],
)
def test_refused_versions_say_why(overrides: dict[str, str], message_start: str):
    base = {"provider": "kind", "installer": "helm", "mode": "sidecar"}
    cfg = make_config(**{**base, **overrides})  # type: ignore[arg-type]
    with pytest.raises(
        UnsupportedCombination, match="^" + message_start.replace("(", r"\(").replace(".", r"\.")
    ):
        build_plan(cfg)


def test_multicluster_on_shared_clusters_needs_two_contexts():
    cfg = load_config(
        {
            "provider": "existing",
            "installer": "helm",
            "mode": "sidecar",
            "features": "multicluster",
            "context": ["only"],
        },
        env={},
    )
    with pytest.raises(UnsupportedCombination, match="needs two --context values"):
        build_plan(cfg)


def test_revision_based_is_refused_without_sail():
    with pytest.raises(UnsupportedCombination, match="RevisionBased"):
        build_plan(make_config("kind", "helm", "sidecar"), revision_strategy="RevisionBased")


def test_every_step_document_is_named_by_a_placeholder_in_its_command():
    plan = build_plan(make_config("kind", "istioctl", "ambient", ("gie",)))
    (step,) = [s for s in plan.steps if s.istio_operator]
    assert step.command is not None and "<istio-operator-file>" in step.command
    assert step.istio_operator is not None and step.istio_operator["kind"] == "IstioOperator"


def test_plan_step_refuses_a_command_and_manifests_together():
    with pytest.raises(ValueError, match="either runs a command or applies manifests"):
        PlanStep(
            title="x", cluster="c", command=["true"], manifests=[{"apiVersion": "v1", "kind": "Namespace"}]
        )
