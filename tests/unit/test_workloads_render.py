"""Workload manifests per class (parsed YAML, not text), enrollment checks on realistic pod objects."""

from __future__ import annotations

from typing import Any

import pytest

from meshproof import tools
from meshproof.workloads import (
    APP_CONTAINER,
    CURL_CONTAINER,
    HTTP_PORT,
    TCP_PORT,
    RenderOptions,
    WorkloadClass,
    WorkloadImages,
    WorkloadNotReady,
    classes_for_mode,
    enrollment_problem,
    namespace_name,
    published_root_pem,
    render_documents,
    running_pod_name,
    workload_set,
)

RUN_ID = "20261126-064501-a3f9"


def docs_for(workload_class: WorkloadClass, **options: Any) -> list[dict[str, Any]]:
    mode = "sidecar" if workload_class is WorkloadClass.SIDECAR else "ambient"
    return render_documents(workload_set(RUN_ID, mode), workload_class, RenderOptions(**options))


def only(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def namespace_labels(docs: list[dict[str, Any]]) -> dict[str, str]:
    return only(docs, "Namespace")["metadata"]["labels"]


# --- names and classes ----------------------------------------------------------------------------


def test_classes_follow_the_run_mode() -> None:
    assert classes_for_mode("sidecar") == (WorkloadClass.SIDECAR, WorkloadClass.OUT_OF_MESH)
    assert classes_for_mode("ambient") == (
        WorkloadClass.AMBIENT,
        WorkloadClass.WAYPOINT,
        WorkloadClass.OUT_OF_MESH,
    )
    with pytest.raises(ValueError, match="unknown mesh mode"):
        classes_for_mode("proxyless")


def test_namespaces_are_per_run_and_class_and_dns_safe() -> None:
    assert namespace_name(RUN_ID, WorkloadClass.WAYPOINT) == f"mp-{RUN_ID}-waypoint"
    long_id = "Run_" + "x" * 80
    names = {namespace_name(long_id, c) for c in WorkloadClass}
    assert len(names) == 4
    for name in names:
        assert len(name) <= 63 and name == name.lower() and name.replace("-", "").isalnum()
    assert namespace_name(long_id, WorkloadClass.AMBIENT) == namespace_name(long_id, WorkloadClass.AMBIENT)
    assert namespace_name(long_id, WorkloadClass.AMBIENT) != namespace_name(
        long_id + "y", WorkloadClass.AMBIENT
    )


def test_workload_set_roles_and_identities() -> None:
    ambient = workload_set(RUN_ID, "ambient")
    server = ambient.server(WorkloadClass.WAYPOINT)
    assert server.host == f"server.mp-{RUN_ID}-waypoint.svc.cluster.local"
    assert server.principal("cluster.local") == f"cluster.local/ns/mp-{RUN_ID}-waypoint/sa/server"
    assert str(ambient.client(WorkloadClass.WAYPOINT)) == f"ambient->waypoint:mp-{RUN_ID}-waypoint/client"
    with pytest.raises(ValueError, match="no server"):
        ambient.server(WorkloadClass.OUT_OF_MESH)
    with pytest.raises(LookupError, match="not deployed in this run"):
        ambient.client(WorkloadClass.SIDECAR)


# --- enrollment per class ---------------------------------------------------------------------------


def test_sidecar_namespace_uses_the_injection_label_for_the_default_revision() -> None:
    assert namespace_labels(docs_for(WorkloadClass.SIDECAR, revision=None))["istio-injection"] == "enabled"
    assert "istio.io/rev" not in namespace_labels(docs_for(WorkloadClass.SIDECAR, revision="default"))


def test_sidecar_namespace_uses_the_revision_label_for_a_named_revision() -> None:
    labels = namespace_labels(docs_for(WorkloadClass.SIDECAR, revision="default-v1-27-9"))
    assert labels["istio.io/rev"] == "default-v1-27-9"
    assert "istio-injection" not in labels  # it would win over istio.io/rev (istio-facts §2.1)


@pytest.mark.parametrize("workload_class", [WorkloadClass.AMBIENT, WorkloadClass.WAYPOINT])
def test_ambient_namespaces_are_captured_and_never_labelled_for_injection(
    workload_class: WorkloadClass,
) -> None:
    labels = namespace_labels(docs_for(workload_class, revision="default-v1-27-9"))
    assert labels["istio.io/dataplane-mode"] == "ambient"
    assert "istio.io/rev" not in labels and "istio-injection" not in labels


def test_out_of_mesh_namespace_and_pods_opt_out_of_everything() -> None:
    docs = docs_for(WorkloadClass.OUT_OF_MESH)
    assert namespace_labels(docs)["istio-injection"] == "disabled"
    assert [d["metadata"]["name"] for d in docs if d["kind"] == "Deployment"] == ["client"]
    assert not [d for d in docs if d["kind"] == "Service"]
    pod_labels = only(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert pod_labels["sidecar.istio.io/inject"] == "false"
    assert pod_labels["istio.io/dataplane-mode"] == "none"


def test_waypoint_class_has_a_service_waypoint_and_binds_only_the_server_service() -> None:
    docs = docs_for(WorkloadClass.WAYPOINT, revision="default-v1-27-9")
    gateway = only(docs, "Gateway")
    assert gateway["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert gateway["spec"]["gatewayClassName"] == "istio-waypoint"
    assert gateway["spec"]["listeners"] == [{"name": "mesh", "port": 15008, "protocol": "HBONE"}]
    assert gateway["metadata"]["labels"] == {
        "istio.io/waypoint-for": "service",
        "istio.io/rev": "default-v1-27-9",
    }
    assert (
        only(docs, "Service", "server")["metadata"]["labels"]["istio.io/use-waypoint"]
        == gateway["metadata"]["name"]
    )
    assert "istio.io/rev" not in only(docs_for(WorkloadClass.WAYPOINT), "Gateway")["metadata"]["labels"]


def test_no_waypoint_outside_the_waypoint_class() -> None:
    for workload_class in (WorkloadClass.AMBIENT, WorkloadClass.SIDECAR):
        docs = docs_for(workload_class)
        assert not [d for d in docs if d["kind"] == "Gateway"]
        assert "istio.io/use-waypoint" not in only(docs, "Service")["metadata"]["labels"]


# --- the echo workload ------------------------------------------------------------------------------


@pytest.mark.parametrize("workload_class", list(WorkloadClass))
def test_every_object_lands_in_the_class_namespace(workload_class: WorkloadClass) -> None:
    docs = docs_for(workload_class)
    namespace = namespace_name(RUN_ID, workload_class)
    assert only(docs, "Namespace")["metadata"]["name"] == namespace
    assert {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"} == {namespace}


def test_server_service_exposes_http_and_plain_tcp_with_explicit_protocols() -> None:
    service = only(docs_for(WorkloadClass.AMBIENT), "Service", "server")
    ports = {p["name"]: p for p in service["spec"]["ports"]}
    assert ports["http"]["port"] == HTTP_PORT and ports["http"]["appProtocol"] == "http"
    assert ports["tcp"]["port"] == TCP_PORT and ports["tcp"]["appProtocol"] == "tcp"
    assert service["spec"]["selector"] == {"app": "server"}


def test_pod_runs_the_fortio_echo_and_a_curl_client_under_its_own_service_account() -> None:
    deployment = only(docs_for(WorkloadClass.SIDECAR), "Deployment", "server")
    spec = deployment["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == "server"
    assert deployment["spec"]["selector"]["matchLabels"] == {"app": "server"}
    containers = {c["name"]: c for c in spec["containers"]}
    assert set(containers) == {APP_CONTAINER, CURL_CONTAINER}
    app = containers[APP_CONTAINER]
    assert app["args"][0] == "server"
    args = dict(zip(app["args"][1::2], app["args"][2::2], strict=True))
    assert args["-http-port"] == str(HTTP_PORT) and args["-tcp-port"] == str(TCP_PORT)
    assert {p["containerPort"] for p in app["ports"]} == {HTTP_PORT, TCP_PORT}
    assert containers[CURL_CONTAINER]["command"][0] == "sleep"


def test_images_are_pinned_by_version_and_fortio_matches_the_cli_pin() -> None:
    spec = only(docs_for(WorkloadClass.AMBIENT), "Deployment", "client")["spec"]["template"]["spec"]
    images = {c["name"]: c["image"] for c in spec["containers"]}
    assert images[APP_CONTAINER] == f"docker.io/fortio/fortio:{tools.FORTIO_VERSION}"
    repo, _, tag = images[CURL_CONTAINER].rpartition(":")
    assert repo == "docker.io/curlimages/curl" and tag[0].isdigit() and tag.count(".") == 2
    assert all(not image.endswith(":latest") for image in images.values())


def test_mirrored_images_come_from_the_environment() -> None:
    mirrored = WorkloadImages.from_env(
        {"MESHPROOF_FORTIO_IMAGE": "mirror.local/fortio@sha256:" + "a" * 64, "MESHPROOF_CURL_IMAGE": ""}
    )
    spec = only(docs_for(WorkloadClass.AMBIENT, images=mirrored), "Deployment", "client")["spec"]["template"][
        "spec"
    ]
    images = {c["name"]: c["image"] for c in spec["containers"]}
    assert images[APP_CONTAINER].startswith("mirror.local/fortio@sha256:")
    assert images[CURL_CONTAINER] == WorkloadImages().curl  # empty means default


def test_pods_run_unprivileged_and_never_as_the_proxy_uid() -> None:
    spec = only(docs_for(WorkloadClass.SIDECAR), "Deployment", "client")["spec"]["template"]["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] not in (0, 1337)  # 1337 traffic bypasses sidecar capture
    for container in spec["containers"]:
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]


def test_on_openshift_the_uid_is_left_to_the_scc() -> None:
    spec = only(docs_for(WorkloadClass.SIDECAR, run_as_user=None), "Deployment", "client")["spec"][
        "template"
    ]["spec"]
    assert "runAsUser" not in spec["securityContext"] and spec["securityContext"]["runAsNonRoot"] is True


# --- enrollment checks on pod objects -------------------------------------------------------------


def pod(
    name: str,
    *,
    annotations: dict[str, str] | None = None,
    init: tuple[str, ...] = (),
    containers: tuple[str, ...] = (),
) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": {
            "containers": [{"name": n} for n in [APP_CONTAINER, CURL_CONTAINER, *containers]],
            "initContainers": [{"name": n} for n in init],
        },
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
    }


SIDECAR_STATUS = {"sidecar.istio.io/status": '{"initContainers":["istio-validation","istio-proxy"]}'}


def test_sidecar_pod_counts_as_enrolled_with_native_or_classic_sidecar() -> None:
    native = pod("server-1", annotations=SIDECAR_STATUS, init=("istio-validation", "istio-proxy"))
    classic = pod("server-2", annotations=SIDECAR_STATUS, init=("istio-init",), containers=("istio-proxy",))
    assert enrollment_problem(native, WorkloadClass.SIDECAR) is None
    assert enrollment_problem(classic, WorkloadClass.SIDECAR) is None


def test_uninjected_pod_in_the_sidecar_class_is_named() -> None:
    problem = enrollment_problem(pod("server-1"), WorkloadClass.SIDECAR)
    assert problem is not None and "server-1" in problem and "no injected sidecar" in problem


def test_ambient_pod_needs_the_redirection_annotation_and_no_sidecar() -> None:
    captured = pod("client-1", annotations={"ambient.istio.io/redirection": "enabled"})
    assert enrollment_problem(captured, WorkloadClass.AMBIENT) is None
    assert "ambient.istio.io/redirection" in str(enrollment_problem(pod("client-1"), WorkloadClass.WAYPOINT))
    injected = pod("client-1", annotations=SIDECAR_STATUS, containers=("istio-proxy",))
    assert "sidecar" in str(enrollment_problem(injected, WorkloadClass.AMBIENT))


def test_out_of_mesh_pod_must_be_untouched() -> None:
    assert enrollment_problem(pod("client-1"), WorkloadClass.OUT_OF_MESH) is None
    captured = pod("client-1", annotations={"ambient.istio.io/redirection": "enabled"})
    assert "out-of-mesh" in str(enrollment_problem(captured, WorkloadClass.OUT_OF_MESH))


def test_running_pod_name_skips_pods_that_cannot_serve() -> None:
    ready = pod("client-b")
    pending = pod("client-a") | {"status": {"phase": "Pending", "conditions": []}}
    terminating = pod("client-0")
    terminating["metadata"]["deletionTimestamp"] = "2026-11-26T06:00:00Z"
    workload = workload_set(RUN_ID, "ambient").client(WorkloadClass.AMBIENT)
    assert running_pod_name([pending, terminating, ready], workload) == "client-b"
    with pytest.raises(WorkloadNotReady):
        running_pod_name([pending, terminating], workload)


class ConfigMaps:
    def __init__(self, data: dict[str, str] | None) -> None:
        self.data = data

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None:
        assert (api_version, kind, name) == ("v1", "ConfigMap", "istio-ca-root-cert")
        return None if self.data is None else {"data": self.data}


def test_published_root_is_read_from_the_namespace_configmap() -> None:
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    assert published_root_pem(ConfigMaps({"root-cert.pem": pem}), "ns") == pem
    with pytest.raises(WorkloadNotReady, match="istio-ca-root-cert"):
        published_root_pem(ConfigMaps(None), "ns")
    with pytest.raises(WorkloadNotReady):
        published_root_pem(ConfigMaps({"other": pem}), "ns")
