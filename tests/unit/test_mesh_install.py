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

from meshproof import tools
from meshproof.config import load_config
from meshproof.mesh.install import InstallError, apply_plan, field_satisfied, uninstall
from meshproof.mesh.plan import build_plan
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
