"""The pod-netns reader's pure parts and the pod-spec check of the nftables suite.

The pod specs follow istiod 1.27.9's injection template (manifests/charts/istio-control/istio-discovery/files/
injection-template.yaml): the init container runs `istio-iptables` with `-p 15001 -z 15006 -u 1337 -m REDIRECT
-i * -x "" -b * -d 15090,15021,15020 --log_output_level=default:info`, plus `--run-validation
--skip-rule-apply` with istio-cni and `--native-nftables` when `global.nativeNftables` is set. The reader
script itself runs for real in tests/local_real/test_nftables_netns.py.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from meshproof.checks.nftables import init_container_requests_native_nftables
from meshproof.evidence import pod_netns
from meshproof.evidence.errors import EvidenceCollectionError, EvidenceParseError

BASE_ARGS = [
    "istio-iptables", "-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT", "-i", "*", "-x", "",
    "-b", "*", "-d", "15090,15021,15020", "--log_output_level=default:info",
]  # fmt: skip
CNI_ARGS = ["--run-validation", "--skip-rule-apply"]
CONTAINERD_ID = "containerd://" + "ab" * 32


def pod(
    init: str | None, args: list[str], *, image: str = "docker.io/istio/proxyv2:1.27.9"
) -> dict[str, Any]:
    inits = [{"name": init, "image": image, "args": args}] if init else []
    return {
        "metadata": {"name": "server-1", "namespace": "mp-sidecar"},
        "spec": {
            "nodeName": "kind-worker",
            "initContainers": inits,
            "containers": [{"name": "app", "image": "fortio"}, {"name": "istio-proxy", "image": image}],
        },
        "status": {
            "containerStatuses": [
                {"name": "app", "containerID": CONTAINERD_ID, "state": {"running": {"startedAt": "x"}}}
            ]
        },
    }


@pytest.mark.parametrize(
    ("init", "args"),
    [
        ("istio-init", [*BASE_ARGS, "--native-nftables"]),
        ("istio-validation", [*BASE_ARGS, *CNI_ARGS, "--native-nftables"]),
    ],
    ids=["istio-init", "istio-validation-with-cni"],
)
def test_native_nftables_argument_is_found(init: str, args: list[str]) -> None:
    verdict = init_container_requests_native_nftables(pod(init, args))
    assert verdict.ok and init in verdict.reason


def test_iptables_capture_fails_the_argument_check() -> None:
    verdict = init_container_requests_native_nftables(pod("istio-validation", [*BASE_ARGS, *CNI_ARGS]))
    assert not verdict.ok and "lacks --native-nftables (the capture is iptables)" in verdict.reason


@pytest.mark.parametrize("bad", [None, "pod", {"spec": None}, {"spec": {"initContainers": [None, 3]}}])
def test_argument_check_never_raises(bad: Any) -> None:
    assert not init_container_requests_native_nftables(bad)


def test_pod_without_istio_init_is_named() -> None:
    verdict = init_container_requests_native_nftables(pod(None, []))
    assert not verdict.ok and "has no istio-init/istio-validation init container" in verdict.reason


def test_reader_pod_is_pinned_privileged_and_targets_the_container() -> None:
    target = pod("istio-init", BASE_ARGS)
    reader = pod_netns.reader_pod(
        "netns-server-1",
        "t-netns",
        "kind-worker",
        pod_netns.proxy_image(target, env={}),
        pod_netns.container_id(target),
    )
    spec = reader["spec"]
    assert spec["nodeName"] == "kind-worker" and spec["hostPID"] is True and spec["restartPolicy"] == "Never"
    container = spec["containers"][0]
    assert container["image"] == "docker.io/istio/proxyv2:1.27.9"
    assert container["securityContext"]["privileged"] is True
    assert container["command"][-1] == "ab" * 32


def test_image_override_and_missing_sidecar() -> None:
    assert pod_netns.proxy_image(pod(None, []), env={"MESHPROOF_NFT_IMAGE": "mirror/nft:1"}) == "mirror/nft:1"
    bare = {"metadata": {"name": "x"}, "spec": {"containers": [{"name": "app", "image": "a"}]}}
    with pytest.raises(EvidenceCollectionError, match="MESHPROOF_NFT_IMAGE"):
        pod_netns.proxy_image(bare, env={})


def test_container_id_needs_a_running_container() -> None:
    waiting = pod(None, [])
    waiting["status"]["containerStatuses"][0]["state"] = {"waiting": {}}
    with pytest.raises(EvidenceCollectionError, match="no running container"):
        pod_netns.container_id(waiting)
    crio = pod(None, [])
    crio["status"]["containerStatuses"][0]["containerID"] = "cri-o://" + "cd" * 32
    assert pod_netns.container_id(crio) == "cd" * 32


def test_reader_namespace_is_privileged_and_bound_to_the_scc_only_on_openshift() -> None:
    kind_docs = pod_netns.reader_namespace("t-netns", openshift=False)
    assert [d["kind"] for d in kind_docs] == ["Namespace"]
    assert kind_docs[0]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
    ocp_docs = pod_netns.reader_namespace("t-netns", openshift=True)
    assert ocp_docs[1]["roleRef"]["name"] == "system:openshift:scc:privileged"


def test_reader_output_without_markers_or_nft_is_an_error() -> None:
    with pytest.raises(EvidenceParseError, match="section markers"):
        pod_netns.split_reader_output("nsenter: cannot open /proc/1/ns/net")
    failed = f"{pod_netns.NFT_MARK}\nnft failed: exit 127\n{pod_netns.IPTABLES_MARK}\n{pod_netns.END_MARK}\n"
    with pytest.raises(EvidenceParseError, match="does the reader image carry nft"):
        pod_netns.split_reader_output(failed)


class FakeCluster:
    """Apply/get/logs/delete of one reader pod; what the real Cluster does is the kube helpers' tests' job."""

    def __init__(self, phase: str, log: str) -> None:
        self.phase, self.log = phase, log
        self.applied: list[dict[str, Any]] = []
        self.deleted: list[tuple[str, str, str, str | None]] = []

    def apply(self, docs: Any, *, test_id: str | None = None) -> list[dict[str, Any]]:
        parsed = [d for d in yaml.safe_load_all(docs) if d] if isinstance(docs, str) else list(docs)
        self.applied.extend(parsed)
        return parsed

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None:
        return {"metadata": {"name": name}, "status": {"phase": self.phase}}

    def logs(self, pod: str, namespace: str, container: str | None = None, **_: Any) -> str:
        return self.log

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None, **_: Any) -> bool:
        self.deleted.append((api_version, kind, name, namespace))
        return True


def run_now(fn: Any, timeout: float, description: str) -> Any:
    return fn()


def test_read_pod_netns_parses_the_log_and_deletes_the_reader() -> None:
    nft = '{"nftables": [{"metainfo": {"version": "1.0.6", "json_schema_version": 1}}]}'
    log = f"{pod_netns.NFT_MARK}\n{nft}\n{pod_netns.IPTABLES_MARK}\n{pod_netns.END_MARK}\n"
    cluster = FakeCluster("Succeeded", log)
    seen = pod_netns.read_pod_netns(
        cluster, pod("istio-init", BASE_ARGS), reader_namespace="t-netns", wait=run_now, timeout=1
    )
    assert seen.ruleset.tables == () and seen.iptables_chains == () and seen.node == "kind-worker"
    assert cluster.applied[0]["metadata"]["namespace"] == "t-netns"
    assert cluster.deleted == [("v1", "Pod", "netns-server-1", "t-netns")]


def test_read_pod_netns_reports_a_failed_reader_and_still_deletes_it() -> None:
    cluster = FakeCluster("Failed", "no process of container abab on this node")
    with pytest.raises(EvidenceCollectionError, match="no process of container"):
        pod_netns.read_pod_netns(
            cluster, pod("istio-init", BASE_ARGS), reader_namespace="t-netns", wait=run_now, timeout=1
        )
    assert len(cluster.deleted) == 1


class WorkloadCluster(FakeCluster):
    def __init__(self, *, rollout_fails: bool) -> None:
        super().__init__("Running", "")
        self.rollout_fails = rollout_fails

    def wait_rollout(self, kind: str, name: str, namespace: str, *, timeout: float) -> dict[str, Any]:
        if self.rollout_fails:
            raise TimeoutError(f"{kind} {namespace}/{name} did not roll out")
        return {}


@pytest.mark.parametrize("rollout_fails", [False, True], ids=["rolled-out", "rollout-failed"])
def test_extra_server_is_annotated_and_always_removed(rollout_fails: bool) -> None:
    """The suites' own servers (the capture-excluded one, the istio-csr probe) never outlive their test."""
    from meshproof.workloads import RenderOptions, WorkloadClass, extra_server, workload_set

    cluster = WorkloadCluster(rollout_fails=rollout_fails)
    workloads = workload_set("run1", "sidecar")
    annotation = {"traffic.sidecar.istio.io/excludeInboundPorts": "8080"}
    try:
        with extra_server(
            cluster, workloads, WorkloadClass.SIDECAR, "server-excluded", RenderOptions(),
            pod_annotations=annotation, rollout_timeout=1,
        ) as server:  # fmt: skip
            assert server.name == "server-excluded" and server.namespace == "mp-run1-sidecar"
    except TimeoutError:
        assert rollout_fails
    deployment = next(d for d in cluster.applied if d["kind"] == "Deployment")
    assert deployment["spec"]["template"]["metadata"]["annotations"] == annotation
    assert {kind for _, kind, _, _ in cluster.deleted} == {"Deployment", "Service", "ServiceAccount"}
