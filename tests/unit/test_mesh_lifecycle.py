"""Reuse, replace or refuse an existing mesh, and tear down exactly what the run created.

A fake cluster answers `get` for the install record and `list` for istiod's pods; the plan executor is a
recording fake. What this proves: the decision table (matching record -> reuse; none -> install; different
on kind -> uninstall the recorded install, then install; different install on a shared cluster, or a
control plane meshproof did not install anywhere -> refuse with one line naming it, unless
--install-over-existing-mesh), and that teardown honours the keep flags and undoes only recorded steps.
What it cannot prove: that deleting a real install through its plan leaves nothing behind on a real
cluster.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from meshproof.clusters import ProvisionError
from meshproof.config import RunConfig, load_config
from meshproof.mesh.detect import MeshMarks
from meshproof.mesh.lifecycle import Provisioner, decide_mesh
from meshproof.mesh.plan import build_plan
from meshproof.mesh.record import RECORD_NAME, RECORD_NAMESPACE, InstallRecord
from meshproof.mesh.spec import MeshSpec
from meshproof.wait import Timeouts


def cfg_for(**cli: object) -> RunConfig:
    return load_config({"provider": "kind", "installer": "helm", "mode": "ambient", **cli}, env={})


def record_of(spec: MeshSpec) -> InstallRecord:
    return InstallRecord(spec.fingerprint(), spec.summary(), spec.canonical_json())


SPEC = MeshSpec.from_config(cfg_for())
ISTIOD = MeshMarks(("pod istio-system/istiod-canary-7c9f-x2k (app=istiod, istio.io/rev=canary)",))
NOTHING = MeshMarks()
OTHER = MeshSpec.from_config(cfg_for(mode="sidecar"))


# What a revisioned istiod (not named `istiod`) leaves in a cluster; see test_mesh_detect for every mark.
REVISIONED_ISTIOD_POD = {
    "metadata": {
        "name": "istiod-canary-7c9f-x2k",
        "namespace": "istio-system",
        "labels": {"app": "istiod", "istio.io/rev": "canary"},
    }
}


class FakeCluster:
    def __init__(self, record: InstallRecord | None = None, istiod: bool = False) -> None:
        self.record = record
        self.istiod = istiod
        self.listed: list[str] = []

    def get(self, api: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        if kind == "ConfigMap" and (name, namespace) == (RECORD_NAME, RECORD_NAMESPACE) and self.record:
            r = self.record
            return {"data": {"fingerprint": r.fingerprint, "summary": r.summary, "spec.json": r.spec_json}}
        return None

    def list(
        self, api: str, kind: str, namespace: str | None = None, label_selector: str | None = None
    ) -> Any:
        self.listed.append(kind)
        if kind == "Pod" and label_selector == "app=istiod" and self.istiod:
            return [dict(REVISIONED_ISTIOD_POD)]
        return []

    def server_version(self) -> str:
        return "v1.33.4"

    def close(self) -> None:
        return None


class Recorder:
    def __init__(self) -> None:
        self.applied: list[tuple[str, tuple[str, ...]]] = []
        self.undone: list[tuple[str, tuple[str, ...], frozenset[int] | None]] = []

    def apply(self, plan: Any, clusters: Any, *, stages: Any, **_: Any) -> list[int]:
        self.applied.append((plan.spec.mode, tuple(stages)))
        return [i for i, _ in plan.steps_in(*stages)]

    def undo(self, plan: Any, clusters: Any, *, stages: Any, only: Any = None, **_: Any) -> list[str]:
        self.undone.append((plan.spec.mode, tuple(stages), frozenset(only) if only is not None else None))
        return []


def provisioner(tmp_path: Path, cfg: RunConfig, cluster: FakeCluster, rec: Recorder) -> Provisioner:
    return Provisioner(
        cfg=cfg,
        plan=build_plan(cfg),
        shared_dir=tmp_path,
        timeouts=Timeouts.scaled(0.1),
        cluster_factory=lambda spec: cluster,  # type: ignore[arg-type,return-value]
        apply=rec.apply,
        undo=rec.undo,
    )


# --- the decision table -----------------------------------------------------------------------------------


def test_matching_record_everywhere_is_reused():
    assert decide_mesh(SPEC, {"c1": record_of(SPEC)}, {"c1": ISTIOD}, disposable=False).action == "reuse"


def test_no_record_means_install():
    assert decide_mesh(SPEC, {"c1": None}, {"c1": NOTHING}, disposable=False).action == "install"


def test_different_install_is_replaced_on_kind_and_refused_elsewhere():
    decision = decide_mesh(SPEC, {"c1": record_of(OTHER)}, {"c1": ISTIOD}, disposable=True)
    assert decision.action == "replace" and decision.replaced == record_of(OTHER)
    with pytest.raises(ProvisionError) as info:
        decide_mesh(SPEC, {"c1": record_of(OTHER)}, {"c1": ISTIOD}, disposable=False)
    assert "already has a different meshproof install (provider=kind installer=helm mode=sidecar" in str(
        info.value
    )
    assert "\n" not in str(info.value)


def test_unrecorded_istio_is_refused_everywhere_unless_asked_and_the_message_says_what_was_found():
    for disposable in (False, True):
        with pytest.raises(ProvisionError) as info:
            decide_mesh(SPEC, {"c1": None}, {"c1": ISTIOD}, disposable=disposable)
        message = str(info.value)
        assert "Istio control plane that meshproof did not install" in message
        assert "found pod istio-system/istiod-canary-7c9f-x2k (app=istiod, istio.io/rev=canary)" in message
        assert "--install-over-existing-mesh" in message and "\n" not in message
    decision = decide_mesh(SPEC, {"c1": None}, {"c1": ISTIOD}, disposable=False, install_over=True)
    assert decision.action == "install" and "istiod-canary" in decision.reason


def test_an_unfinished_meshproof_install_is_completed_not_refused():
    ours = MeshMarks(ISTIOD.found, started_by_meshproof=True)
    assert decide_mesh(SPEC, {"c1": None}, {"c1": ours}, disposable=False).action == "install"


def test_partly_installed_multicluster_is_completed():
    spec = MeshSpec.from_config(cfg_for(features="multicluster"))
    decision = decide_mesh(
        spec, {"a": record_of(spec), "b": None}, {"a": ISTIOD, "b": NOTHING}, disposable=True
    )
    assert decision.action == "install"


# --- the provisioner -----------------------------------------------------------------------------------


def test_reuse_installs_nothing(tmp_path: Path):
    rec = Recorder()
    cluster = FakeCluster(record_of(SPEC), istiod=True)
    result = provisioner(tmp_path, cfg_for(), cluster, rec).ensure_mesh()
    assert result == {"installed": False, "executed": []}
    assert rec.applied == []
    assert cluster.listed == []  # a recorded mesh needs no cluster-wide reads (a user may lack the rights)


def test_replace_uninstalls_the_recorded_install_then_installs(tmp_path: Path):
    rec = Recorder()
    result = provisioner(tmp_path, cfg_for(), FakeCluster(record_of(OTHER), istiod=True), rec).ensure_mesh()
    assert result["installed"] is True
    assert rec.undone == [("sidecar", ("mesh",), None)]  # the recorded (sidecar) install's plan
    assert rec.applied == [("ambient", ("mesh",))]


def test_shared_cluster_with_another_install_is_refused(tmp_path: Path):
    cfg = cfg_for(provider="existing", context=["ctx"])
    other = MeshSpec.from_config(
        load_config(
            {"provider": "existing", "installer": "helm", "mode": "sidecar", "context": ["ctx"]}, env={}
        )
    )
    rec = Recorder()
    with pytest.raises(ProvisionError, match="different meshproof install"):
        provisioner(tmp_path, cfg, FakeCluster(record_of(other), istiod=True), rec).ensure_mesh()
    assert rec.applied == [] and rec.undone == []


def test_a_revisioned_istiod_is_not_installed_over(tmp_path: Path):
    """Issue 14 item 6: only a Deployment named `istiod` was recognised, so `istiod-canary` (or an OSSM or
    out-of-cluster istiod) was installed over. The fake serves the istiod pod's labels; the real reads are
    in meshproof.mesh.detect (tested in test_mesh_detect)."""
    cfg = cfg_for(provider="existing", context=["ctx"])
    rec = Recorder()
    with pytest.raises(ProvisionError, match="found pod istio-system/istiod-canary"):
        provisioner(tmp_path, cfg, FakeCluster(istiod=True), rec).ensure_mesh()
    assert rec.applied == []
    asked = cfg_for(provider="existing", context=["ctx"], install_over_existing_mesh=True)
    result = provisioner(tmp_path / "b", asked, FakeCluster(istiod=True), rec).ensure_mesh()
    assert result["installed"] is True and rec.applied == [("ambient", ("mesh",))]


def test_teardown_keeps_everything_with_keep_flags(tmp_path: Path):
    rec = Recorder()
    prov = provisioner(tmp_path, cfg_for(keep_cluster=True), FakeCluster(), rec)
    assert prov.teardown(failed=False) == [] and rec.undone == []
    rec2 = Recorder()
    prov2 = provisioner(tmp_path / "b", cfg_for(keep_on_failure=True), FakeCluster(), rec2)
    prov2._once("mesh").ensure(prov2.spec.fingerprint(), lambda: {"installed": True, "executed": [7]})
    assert prov2.teardown(failed=True) == [] and rec2.undone == []
    prov2.teardown(failed=False)
    assert rec2.undone == [("ambient", ("mesh",), frozenset({7}))]


def test_teardown_deletes_created_clusters_without_uninstalling_their_mesh(tmp_path: Path):
    rec = Recorder()
    prov = provisioner(tmp_path, cfg_for(), FakeCluster(), rec)
    prov.provider.before_provision = lambda cfg, spec: None  # type: ignore[method-assign]
    prov.ensure_clusters()  # the recording apply reports every cluster/platform step as executed
    prov.ensure_mesh()
    prov.teardown(failed=False)
    created = frozenset(i for i, _ in prov.plan.steps_in("cluster", "platform"))
    assert rec.undone == [("ambient", ("cluster", "platform"), created)]


def test_teardown_uninstalls_a_mesh_it_installed_on_a_reused_cluster(tmp_path: Path):
    rec = Recorder()
    prov = provisioner(tmp_path, cfg_for(reuse_cluster=True), FakeCluster(), rec)
    # The cluster existed: its creation step was skipped, so the clusters record lists no step.
    prov._once("clusters").ensure(prov.spec.fingerprint(), lambda: {"executed": []})
    prov.ensure_mesh()
    prov.teardown(failed=False)
    mesh_steps = frozenset(i for i, _ in prov.plan.steps_in("mesh"))
    assert rec.undone == [("ambient", ("mesh",), mesh_steps)]
