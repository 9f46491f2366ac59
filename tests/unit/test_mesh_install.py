"""The plan executor (apply_plan / uninstall) against a fake cluster and a fake command runner.

What this proves: steps run in plan order and by stage; documents reach commands as files with the content
the plan shows; `skip_if` probes skip steps and skipped steps are not reported as executed (so teardown never
undoes what it did not create); waits go to the right Cluster helper with the right budget; the plug-in CA
is generated at apply time with a valid chain and never enters the plan; failures name the step; uninstall
reverses and keeps going. What it cannot prove: that kubectl/helm/istioctl/kind accept these command lines,
or how a real API server answers (see the contract and install suites).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from fixtures_data.shared_data import upstream

from meshproof import tools
from meshproof.config import load_config
from meshproof.mesh import pins
from meshproof.mesh.install import InstallError, apply_plan, field_satisfied, uninstall
from meshproof.mesh.plan import build_plan
from meshproof.mesh.spec import MeshSpec
from meshproof.wait import Timeouts

TIMEOUTS = Timeouts.scaled(0.01)


class FakeCluster:
    def __init__(self, name: str, fail_wait: str | None = None) -> None:
        self.name = name
        self.applied: list[dict[str, Any]] = []
        self.waits: list[tuple[str, str, float]] = []
        self.deleted: list[tuple[str, str]] = []
        self.fail_wait = fail_wait
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}

    def apply(self, docs: Sequence[dict[str, Any]], *, test_id: str | None = None) -> list[dict[str, Any]]:
        self.applied.extend(docs)
        return list(docs)

    def get(self, api: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        return self.objects.get((kind, name))

    def wait_for_condition(
        self,
        api: str,
        kind: str,
        name: str,
        ns: str | None,
        condition: str,
        *,
        status: str = "True",
        timeout: float,
    ) -> dict[str, Any]:
        return self._wait(f"{kind}/{name} {condition}", timeout)

    def wait_rollout(self, kind: str, name: str, ns: str, *, timeout: float) -> dict[str, Any]:
        return self._wait(f"{kind}/{name} rollout", timeout)

    def wait_for(
        self,
        api: str,
        kind: str,
        name: str,
        ns: str | None,
        predicate: Any,
        description: str,
        *,
        timeout: float,
    ) -> dict[str, Any]:
        obj = self.objects.get((kind, name), {})
        verdict = predicate(obj)
        if not verdict:
            raise AssertionError(f"{kind}/{name}: {verdict.reason}")
        return self._wait(f"{kind}/{name} field", timeout)

    def _wait(self, what: str, timeout: float) -> dict[str, Any]:
        self.waits.append((self.name, what, timeout))
        if self.fail_wait and self.fail_wait in what:
            raise AssertionError(f"{what}: timed out (fake)")
        return {}

    def delete(
        self,
        api: str,
        kind: str,
        name: str,
        namespace: str | None = None,
        wait: bool = False,
        timeout: float = 0,
    ) -> bool:
        self.deleted.append((kind, name))
        return True


class FakeRunner:
    """Records each command with the content of the files it names, as they were when it ran."""

    def __init__(self, existing: Sequence[str] = (), fail: str | None = None) -> None:
        self.calls: list[list[str]] = []
        self.files: dict[str, str] = {}
        self.existing = set(existing)  # probes for these first words succeed
        self.fail = fail

    def __call__(
        self, args: Sequence[str], *, timeout: float, check: bool = True, env: Mapping[str, str] | None = None
    ) -> tools.CommandResult:
        argv = list(args)
        self.calls.append(argv)
        for part in argv:
            if part.endswith(".yaml") and Path(part).is_file():
                self.files[Path(part).name] = Path(part).read_text()
        is_probe = argv[:3] in (["kind", "get", "kubeconfig"], ["docker", "container", "inspect"])
        code = 0
        if is_probe:
            code = 0 if argv[0] in self.existing else 1
        elif self.fail and self.fail in " ".join(argv):
            result = tools.CommandResult(tuple(argv), 1, "", "boom: no such chart", 0.0)
            if check:
                raise tools.CommandFailed(result)
            return result
        return tools.CommandResult(tuple(argv), code, "", "", 0.0)


def plan_for(**cli: object):
    return build_plan(load_config(cli, env={}))


def test_steps_run_in_order_and_documents_arrive_as_files():
    plan = plan_for(provider="kind", installer="helm", mode="ambient")
    clusters = {"meshproof": FakeCluster("meshproof")}
    runner = FakeRunner()
    executed = apply_plan(plan, clusters, timeouts=TIMEOUTS, runner=runner, progress=lambda _: None)
    assert executed == list(range(len(plan.steps)))
    commands = [
        c
        for c in runner.calls
        if c[:3] not in (["kind", "get", "kubeconfig"], ["docker", "container", "inspect"])
    ]
    assert [c[0] for c in commands if c[0] in ("kind", "helm")][:2] == ["kind", "helm"]
    # helm got the istiod values the plan shows, byte for byte as YAML data.
    (istiod_step,) = [s for s in plan.steps if s.helm_chart == "istiod"]
    (istiod_call,) = [c for c in commands if c[:4] == ["helm", "upgrade", "--install", "istiod"]]
    values_path = istiod_call[istiod_call.index("--values") + 1]
    assert "<values-file>" not in istiod_call
    assert yaml.safe_load(runner.files[Path(values_path).name]) == istiod_step.helm_values
    # Manifests were applied to the cluster the step names.
    assert [d["metadata"]["name"] for d in clusters["meshproof"].applied if d["kind"] == "ConfigMap"] == [
        "meshproof-install"
    ]


def test_stages_select_the_steps():
    plan = plan_for(provider="kind", installer="istioctl", mode="ambient")
    runner = FakeRunner()
    executed = apply_plan(
        plan, {"meshproof": FakeCluster("meshproof")}, timeouts=TIMEOUTS, stages=("mesh",), runner=runner
    )
    assert executed == [i for i, _ in plan.steps_in("mesh")]
    assert not [c for c in runner.calls if c[0] in ("kind", "docker")]


def test_existing_things_are_skipped_and_not_reported_as_created():
    plan = plan_for(provider="kind", installer="istioctl", mode="ambient")
    runner = FakeRunner(existing=("kind", "docker"))
    executed = apply_plan(
        plan, {"meshproof": FakeCluster("meshproof")}, timeouts=TIMEOUTS, stages=("cluster",), runner=runner
    )
    assert executed == []
    assert all(
        c[:3] in (["kind", "get", "kubeconfig"], ["docker", "container", "inspect"]) for c in runner.calls
    )


def test_waits_use_their_budgets_and_helpers():
    plan = plan_for(provider="kind", installer="sail", mode="ambient")
    cluster = FakeCluster("meshproof")
    apply_plan(plan, {"meshproof": cluster}, timeouts=TIMEOUTS, runner=FakeRunner())
    waits = {what: timeout for _, what, timeout in cluster.waits}
    assert waits["ZTunnel/default Ready"] == TIMEOUTS.install
    assert waits["DaemonSet/ztunnel rollout"] == TIMEOUTS.rollout
    assert waits["CustomResourceDefinition/istios.sailoperator.io Established"] == TIMEOUTS.crd_established
    assert waits["Node/meshproof-control-plane Ready"] == TIMEOUTS.cluster_create


def test_a_failing_wait_names_the_step_and_cluster():
    plan = plan_for(provider="kind", installer="sail", mode="ambient")
    cluster = FakeCluster("meshproof", fail_wait="ZTunnel/default Ready")
    with pytest.raises(InstallError) as info:
        apply_plan(plan, {"meshproof": cluster}, timeouts=TIMEOUTS, runner=FakeRunner())
    message = str(info.value)
    assert "'Wait for the control plane and data plane' on meshproof failed" in message
    assert "ZTunnel/default Ready: timed out" in message
    assert "\n" not in message


def test_a_failing_command_names_the_step():
    plan = plan_for(provider="kind", installer="helm", mode="sidecar")
    with pytest.raises(InstallError, match="'Install the istiod chart' on meshproof failed: command failed"):
        apply_plan(
            plan, {"meshproof": FakeCluster("meshproof")}, timeouts=TIMEOUTS, runner=FakeRunner(fail="istiod")
        )


def test_multicluster_ca_is_generated_at_apply_time_and_shares_one_root():
    plan = plan_for(provider="kind", installer="helm", mode="sidecar", features="multicluster")
    clusters = {c.name: FakeCluster(c.name) for c in plan.spec.clusters}
    for cluster in clusters.values():  # cloud-provider-kind gave the east-west gateways addresses
        cluster.objects[("Service", "istio-eastwestgateway")] = {
            "status": {"loadBalancer": {"ingress": [{"ip": "172.18.0.9"}]}}
        }
    apply_plan(plan, clusters, timeouts=TIMEOUTS, runner=FakeRunner())
    roots, intermediates = set(), []
    for name, cluster in clusters.items():
        (secret,) = [
            d for d in cluster.applied if d["kind"] == "Secret" and d["metadata"]["name"] == "cacerts"
        ]
        data = secret["stringData"]
        assert set(data) == {"ca-cert.pem", "ca-key.pem", "root-cert.pem", "cert-chain.pem"}
        root = x509.load_pem_x509_certificate(data["root-cert.pem"].encode())
        ca = x509.load_pem_x509_certificate(data["ca-cert.pem"].encode())
        ca.verify_directly_issued_by(root)
        assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length == 0
        assert name in ca.subject.rfc4514_string()
        assert data["cert-chain.pem"] == data["ca-cert.pem"] + data["root-cert.pem"]
        roots.add(data["root-cert.pem"])
        intermediates.append(data["ca-cert.pem"])
    assert len(roots) == 1 and len(set(intermediates)) == 2
    # The plan itself never held key material.
    assert "PRIVATE KEY" not in plan.render_text()
    assert all("stringData" not in d for s in plan.steps for d in s.manifests)


def test_field_waits_judge_the_object():
    assert field_satisfied({"status": {"phase": "Succeeded"}}, "status.phase", "Succeeded")
    assert not field_satisfied({"status": {"phase": "Installing"}}, "status.phase", "Succeeded")
    assert not field_satisfied({"status": {}}, "status.installPlanRef.name", None)
    assert field_satisfied(
        {"status": {"loadBalancer": {"ingress": [{"ip": "172.18.0.9"}]}}}, "status.loadBalancer.ingress", None
    )
    assert not field_satisfied(
        {"status": {"loadBalancer": {"ingress": []}}}, "status.loadBalancer.ingress", None
    )


def test_uninstall_reverses_only_what_ran_and_keeps_going():
    plan = plan_for(provider="kind", installer="helm", mode="ambient")
    cluster = FakeCluster("meshproof")
    runner = FakeRunner(fail="uninstall istio-cni")
    mesh = [i for i, _ in plan.steps_in("mesh")]
    problems = uninstall(plan, {"meshproof": cluster}, timeouts=TIMEOUTS, only=set(mesh), runner=runner)
    undo_calls = [c for c in runner.calls if c[:2] == ["helm", "uninstall"]]
    assert [c[2] for c in undo_calls] == ["ztunnel", "istio-cni", "istiod", "istio-base"]
    assert len(problems) == 1 and "istio-cni" in problems[0]
    # Namespaces (an early step) go last; the record (the last step) goes first.
    assert cluster.deleted[0] == ("ConfigMap", "meshproof-install")
    assert cluster.deleted[-1] == ("Namespace", "istio-system")
    assert not [c for c in runner.calls if c[:2] == ["kind", "delete"]]


# --- the Gateway API CRDs (issue 14 item 4) ----------------------------------------------------------------


def installed_gateway_api(cluster: FakeCluster, bundle_version: str | None = None) -> None:
    """Put the real v1.3.0 standard-channel CRDs into the fake cluster (optionally relabelled as another
    release, to stand for an older cluster)."""
    for path in sorted(upstream("gateway-api-v1.3.0", "config", "crd", "standard").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        if bundle_version is not None:
            crd["metadata"]["annotations"]["gateway.networking.k8s.io/bundle-version"] = bundle_version
        cluster.objects[("CustomResourceDefinition", crd["metadata"]["name"])] = crd


def apply_platform(plan: Any, cluster: FakeCluster, runner: FakeRunner, said: list[str]) -> list[int]:
    """The platform stage (where the Gateway API step is) against one cluster, collecting progress lines."""
    return apply_plan(
        plan,
        {cluster.name: cluster},
        timeouts=TIMEOUTS,
        stages=("platform",),
        runner=runner,
        progress=said.append,
    )


def gateway_api_index(plan: Any) -> int:
    return next(i for i, s in enumerate(plan.steps) if s.title.startswith("Install the Gateway API CRDs"))


def kubectl_applies(runner: FakeRunner) -> list[list[str]]:
    return [c for c in runner.calls if c[:1] == ["kubectl"] and "apply" in c]


def test_gateway_api_crds_already_installed_at_the_pinned_version_are_not_downloaded_again():
    """The fake serves the real v1.3.0 CRDs; what it cannot prove is how a real apiserver stores the
    annotation (it keeps metadata.annotations as applied, so this is the same read)."""
    plan = plan_for(provider="existing", mode="ambient")
    cluster = FakeCluster("cluster1")
    installed_gateway_api(cluster)
    said: list[str] = []
    runner = FakeRunner()
    executed = apply_platform(plan, cluster, runner, said)
    assert gateway_api_index(plan) not in executed and kubectl_applies(runner) == []
    assert any("already in place (5 CRDs installed at v1.3.0 (>= v1.3.0)), skipped" in line for line in said)


@pytest.mark.parametrize("older", ["v1.2.1", "v1.3.0-rc.1"])
def test_older_or_missing_gateway_api_crds_are_installed(older: str):
    plan = plan_for(provider="existing", mode="ambient")
    cluster = FakeCluster("cluster1")
    installed_gateway_api(cluster, bundle_version=older)
    said: list[str] = []
    runner = FakeRunner()
    executed = apply_platform(plan, cluster, runner, said)
    assert gateway_api_index(plan) in executed
    assert kubectl_applies(runner)[0][-1] == pins.GATEWAY_API_CRDS_URL
    assert any(f"is at {older}, below v1.3.0" in line for line in said)
    # one CRD missing is as good as none
    installed_gateway_api(cluster)
    del cluster.objects[("CustomResourceDefinition", "grpcroutes.gateway.networking.k8s.io")]
    said.clear()
    again = apply_platform(plan, cluster, FakeRunner(), said)
    assert gateway_api_index(plan) in again
    assert any("grpcroutes.gateway.networking.k8s.io is not installed" in line for line in said)


def test_offline_refuses_the_download_with_one_line_naming_it_and_the_way_around():
    plan = plan_for(provider="existing", mode="ambient", offline=True)
    runner = FakeRunner()
    with pytest.raises(InstallError) as info:
        apply_plan(
            plan,
            {"cluster1": FakeCluster("cluster1")},
            timeouts=TIMEOUTS,
            stages=("platform",),
            runner=runner,
        )
    message = str(info.value)
    assert f"--offline: not downloading {pins.GATEWAY_API_CRDS_URL}" in message
    assert "--gateway-api-crds PATH" in message and "\n" not in message
    assert kubectl_applies(runner) == []
    # offline with the CRDs already there: nothing to download, nothing refused
    cluster = FakeCluster("cluster1")
    installed_gateway_api(cluster)
    apply_plan(plan, {"cluster1": cluster}, timeouts=TIMEOUTS, stages=("platform",), runner=FakeRunner())


def test_a_local_gateway_api_file_is_applied_instead_of_the_url_also_offline(tmp_path: Path):
    local = tmp_path / "standard-install.yaml"
    local.write_text("")
    plan = plan_for(provider="existing", mode="ambient", offline=True, gateway_api_crds=str(local))
    runner = FakeRunner()
    apply_plan(
        plan, {"cluster1": FakeCluster("cluster1")}, timeouts=TIMEOUTS, stages=("platform",), runner=runner
    )
    (applied,) = kubectl_applies(runner)
    assert applied[-2:] == ["--filename", str(local)]
    assert pins.GATEWAY_API_CRDS_URL not in " ".join(" ".join(c) for c in runner.calls)


def test_the_plan_says_which_way_the_gateway_api_crds_come(tmp_path: Path):
    download = plan_for(provider="kind", mode="ambient").render_text()
    assert f"downloads: {pins.GATEWAY_API_CRDS_URL}" in download
    assert "skip when the CRDs gatewayclasses.gateway.networking.k8s.io, " in download
    assert "gateway.networking.k8s.io/bundle-version >= v1.3.0 (read from the cluster)" in download
    offline = plan_for(provider="kind", mode="ambient", offline=True).render_text()
    assert f"--offline: refused unless skipped, as it downloads {pins.GATEWAY_API_CRDS_URL}" in offline
    local = tmp_path / "crds"
    local.mkdir()
    from_file = plan_for(provider="kind", mode="ambient", gateway_api_crds=str(local)).render_text()
    assert f"Install the Gateway API CRDs v1.3.0 from {local}" in from_file
    assert f"--filename {local}" in from_file and pins.GATEWAY_API_CRDS_URL not in from_file
    # the written script says it too (a shell runs it unconditionally; meshproof checks first)
    written = plan_for(provider="kind", mode="ambient").write(tmp_path / "plan")
    (script,) = [p for p in written if "gateway-api" in p.name]
    assert "# meshproof skips this step when the CRDs gatewayclasses" in script.read_text()
    # how this machine gets the CRDs is not part of what is installed: the fingerprint does not change
    plain = MeshSpec.from_config(load_config({"provider": "kind"}, env={}))
    local_spec = MeshSpec.from_config(
        load_config({"provider": "kind", "gateway_api_crds": str(local), "offline": True}, env={})
    )
    assert plain.fingerprint() == local_spec.fingerprint()


def test_the_pinned_crd_list_is_the_upstream_standard_channel():
    standard = upstream("gateway-api-v1.3.0", "config", "crd", "standard")
    names = sorted(yaml.safe_load(p.read_text())["metadata"]["name"] for p in standard.glob("*.yaml"))
    assert tuple(names) == pins.GATEWAY_API_STANDARD_CRDS
    for path in standard.glob("*.yaml"):
        annotations = yaml.safe_load(path.read_text())["metadata"]["annotations"]
        assert annotations[pins.GATEWAY_API_BUNDLE_ANNOTATION] == pins.GATEWAY_API_VERSION
