"""MeshSpec: what decides an install, its fingerprint, and the derived names."""

from __future__ import annotations

from meshproof.config import load_config
from meshproof.mesh.info import MeshInfo
from meshproof.mesh.record import InstallRecord, record_from_configmap
from meshproof.mesh.spec import MeshSpec


def spec(**cli: object) -> MeshSpec:
    return MeshSpec.from_config(
        load_config({"provider": "kind", "installer": "helm", "mode": "ambient", **cli}, env={})
    )


def test_fingerprint_is_stable_and_ignores_run_identity():
    a = MeshSpec.from_config(load_config({"mode": "ambient"}, env={"MESHPROOF_RUN_ID": "run-a"}))
    b = MeshSpec.from_config(
        load_config({"mode": "ambient", "results_dir": "/tmp/x", "timeout_scale": "3"}, env={})
    )
    assert a.fingerprint() == b.fingerprint()
    assert len(a.fingerprint()) == 64


def test_fingerprint_changes_with_what_is_installed():
    base = spec().fingerprint()
    assert spec(mode="sidecar").fingerprint() != base
    assert spec(features="gie").fingerprint() != base
    assert spec(istio_version="1.27.3").fingerprint() != base
    assert spec(cluster_name="other").fingerprint() != base


def test_kube_contexts_do_not_change_the_fingerprint():
    one = MeshSpec.from_config(
        load_config({"provider": "existing", "installer": "helm", "context": ["admin@a"]}, env={})
    )
    two = MeshSpec.from_config(
        load_config({"provider": "existing", "installer": "helm", "context": ["other-name-for-a"]}, env={})
    )
    assert one.fingerprint() == two.fingerprint()
    assert one.primary.context == "admin@a"


def test_feature_order_does_not_matter():
    assert spec(features="gie,istio-csr").fingerprint() == spec(features="istio-csr,gie").fingerprint()


def test_namespaces_per_installer_and_platform():
    assert (spec().cni_namespace, spec().ztunnel_namespace) == ("istio-system", "istio-system")
    assert spec(mode="sidecar").cni_namespace is None
    assert spec(mode="sidecar", features="nftables").cni_namespace == "istio-system"
    sail = spec(installer="sail")
    assert (sail.cni_namespace, sail.ztunnel_namespace) == ("istio-cni", "ztunnel")
    ocp = MeshSpec.from_config(
        load_config({"provider": "openshift", "installer": "helm", "mode": "ambient"}, env={})
    )
    assert (ocp.cni_namespace, ocp.ztunnel_namespace, ocp.platform) == (
        "kube-system",
        "kube-system",
        "openshift",
    )


def test_revision_names():
    assert spec(installer="sail").revision == "default"
    revision_based = MeshSpec.from_config(
        load_config({"installer": "sail"}, env={}), revision_strategy="RevisionBased"
    )
    assert revision_based.revision == "default-v1-27-9"
    assert revision_based.istiod_deployment == "istiod-default-v1-27-9"


def test_record_round_trip_restores_the_spec_with_contexts():
    original = spec(features="multicluster")
    configmap = {
        "data": {
            "fingerprint": original.fingerprint(),
            "summary": original.summary(),
            "spec.json": original.canonical_json(),
        }
    }
    record = record_from_configmap(configmap)
    assert isinstance(record, InstallRecord) and record.matches(original)
    restored = record.spec({c.name: c.context for c in original.clusters})
    assert restored == original
    assert record_from_configmap({"data": {}}) is None
    assert record_from_configmap(None) is None


def test_mesh_info_labels_follow_the_mode():
    ambient = MeshInfo.from_spec(spec())
    assert ambient.enrollment_labels() == {"istio.io/dataplane-mode": "ambient"}
    sidecar = MeshInfo.from_spec(spec(mode="sidecar"))
    assert sidecar.enrollment_labels() == {"istio-injection": "enabled"}
    assert sidecar.root_namespace == "istio-system"
    assert sidecar.spiffe_id("ns", "sa") == "spiffe://cluster.local/ns/ns/sa/sa"


def test_ossm_version_alone_picks_the_istio_that_ossm_version_ships():
    """`--ossm-version 3.2.0` without `--istio-version` was refused although the message named the fix."""
    sail_on_ocp = {"provider": "openshift", "installer": "sail"}
    only_320 = MeshSpec.from_config(load_config({**sail_on_ocp, "ossm_version": "3.2.0"}, env={}))
    assert (only_320.istio_version, only_320.ossm_version) == ("1.27.3", "3.2.0")
    newest = MeshSpec.from_config(load_config({**sail_on_ocp, "ossm_version": "3.2.9"}, env={}))
    assert newest.istio_version == "1.27.9"
    from_env = load_config(sail_on_ocp, env={"MESHPROOF_OSSM_VERSION": "3.2.0"})
    assert from_env.istio_version == "1.27.3"
    # an explicit --istio-version is never overridden (and refused when OSSM does not offer it)
    explicit = load_config({**sail_on_ocp, "ossm_version": "3.2.0", "istio_version": "1.27.9"}, env={})
    assert explicit.istio_version == "1.27.9"
    # where OSSM does not install the mesh, its version changes nothing
    kind = load_config({"provider": "kind", "installer": "sail", "ossm_version": "3.2.0"}, env={})
    assert kind.istio_version == "1.27.9"
