"""Native nftables capture (sidecar mode, Istio 1.27 `global.nativeNftables`), proven where it acts.

A pod's traffic capture is in its network namespace (istio-facts §5). Evidence, per pod: the injected init
container carries `--native-nftables`; the netns ruleset, read from the node (meshproof.evidence.pod_netns
says how and why), has Istio's `inet istio-proxy-nat` table redirecting outbound TCP to 15001 and inbound to
15006 from its nat hooks, and no iptables `ISTIO_*` chain; and a sidecar-to-sidecar call under STRICT carries
the client's SPIFFE identity in X-Forwarded-Client-Cert, which only the server's sidecar adds, so only a
working inbound redirect produces it.

Negative controls, in the same tests: the out-of-mesh pod (no sidecar) has neither the argument nor the
table; a server excluded from inbound capture on its HTTP port
(`traffic.sidecar.istio.io/excludeInboundPorts`) has no redirect for that port in its netns, and a call to
it bypasses the proxy: accepted in plaintext under STRICT, without XFCC.

Whether the check itself can fail is shown on real rulesets in the engine's local-real tier
(tests/local_real/test_nftables_netns.py: Istio 1.27.9's goldens and mutations, loaded with the real nft).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import pytest

from fixtures.mtls import workload_identity
from fixtures.workloads import on_openshift
from meshproof.checks import responses
from meshproof.checks.nftables import (
    inbound_port_captured,
    init_container_requests_native_nftables,
    native_istio_redirect,
    no_istio_iptables_chains,
)
from meshproof.checks.verdict import require
from meshproof.config import RunConfig
from meshproof.evidence.pod_netns import PodNetnsRules, read_pod_netns, reader_namespace
from meshproof.mesh.suite_steps import (
    EXCLUDE_INBOUND_PORTS,
    NFTABLES_EXCLUDED_SERVER,
    NFTABLES_PEER_AUTHENTICATION,
)
from meshproof.policies import AppliedPolicies, peer_authentication
from meshproof.traffic import Traffic
from meshproof.wait import Timeouts, eventually
from meshproof.workloads import (
    HTTP_PORT,
    Workload,
    WorkloadClass,
    WorkloadSet,
    pod_of,
)

if TYPE_CHECKING:
    from meshproof.kube import Cluster
    from meshproof.mesh.info import MeshInfo

pytestmark = [pytest.mark.nftables, pytest.mark.sidecar, pytest.mark.feature("nftables")]

EXCLUDED_SERVER = NFTABLES_EXCLUDED_SERVER
PEER_AUTHENTICATION = NFTABLES_PEER_AUTHENTICATION


# --- fixtures: the test's own reader namespace and excluded server -------------------------------------


@pytest.fixture
def netns_of(cluster: Cluster, run_config: RunConfig, test_id: str, timeouts: Timeouts) -> Iterator[Any]:
    """Read a pod's netns rules from its node; the reader namespace lives as long as the test."""
    namespace = f"{test_id}-netns"[:63].rstrip("-")
    cluster.apply(reader_namespace(namespace, openshift=on_openshift(cluster, run_config)), test_id=test_id)

    def read(pod: dict[str, Any]) -> PodNetnsRules:
        return read_pod_netns(
            cluster,
            pod,
            reader_namespace=namespace,
            wait=lambda fn, timeout, what: eventually(fn, timeout=timeout, description=what),
            timeout=timeouts.pod_ready,
            test_id=test_id,
        )

    try:
        yield read
    finally:
        cluster.delete("v1", "Namespace", namespace)


@pytest.fixture
def excluded_server(own_server: Callable[..., AbstractContextManager[Workload]]) -> Iterator[Workload]:
    """A sidecar server like the shared one, but excluded from inbound capture on its HTTP port."""
    with own_server(EXCLUDED_SERVER, pod_annotations={EXCLUDE_INBOUND_PORTS: str(HTTP_PORT)}) as server:
        yield server


# --- the behaviours ------------------------------------------------------------------------------------


def test_injected_init_container_requests_native_nftables(workloads: WorkloadSet, cluster: Cluster) -> None:
    server = pod_of(cluster, workloads.server(WorkloadClass.SIDECAR))
    require(init_container_requests_native_nftables(server))
    # Control: a pod without a sidecar has no Istio init container, and the check says so.
    outsider = pod_of(cluster, workloads.client(WorkloadClass.OUT_OF_MESH))
    assert not init_container_requests_native_nftables(outsider), (
        "accepted a pod without Istio's init container"
    )


def test_pod_netns_redirects_with_native_nftables(
    workloads: WorkloadSet, cluster: Cluster, netns_of: Any, record_property: Any
) -> None:
    seen: PodNetnsRules = netns_of(pod_of(cluster, workloads.server(WorkloadClass.SIDECAR)))
    verdict = require(native_istio_redirect(seen.ruleset))
    record_property("nftables", verdict.reason)
    require(inbound_port_captured(seen.ruleset, HTTP_PORT))
    # Control: the out-of-mesh pod's netns, read the same way, has no Istio capture.
    outsider = netns_of(pod_of(cluster, workloads.client(WorkloadClass.OUT_OF_MESH)))
    assert not native_istio_redirect(outsider.ruleset), "an uncaptured pod passed the redirect check"


def test_pod_netns_has_no_iptables_capture(workloads: WorkloadSet, cluster: Cluster, netns_of: Any) -> None:
    seen: PodNetnsRules = netns_of(pod_of(cluster, workloads.client(WorkloadClass.SIDECAR)))
    require(
        no_istio_iptables_chains(
            seen.ruleset,
            seen.iptables_chains,
            iptables_read=seen.iptables_read,
            iptables_status=seen.iptables_status,
        )
    )
    # The read is not blind: the same dump shows the nftables capture (iptables-nft chains would show there).
    require(native_istio_redirect(seen.ruleset))


def test_excluded_port_has_no_redirect_in_the_pod_netns(
    excluded_server: Workload, cluster: Cluster, netns_of: Any
) -> None:
    seen: PodNetnsRules = netns_of(pod_of(cluster, excluded_server))
    verdict = inbound_port_captured(seen.ruleset, HTTP_PORT)
    assert not verdict.ok, f"port {HTTP_PORT} is excluded from capture, yet: {verdict.reason}"
    # Control: the rest of the same pod's capture is in place (only the one port is excluded).
    require(native_istio_redirect(seen.ruleset))


def test_strict_call_through_the_capture_carries_the_client_identity(
    workloads: WorkloadSet,
    excluded_server: Workload,
    policies: AppliedPolicies,
    traffic: Traffic,
    mesh: MeshInfo,
    cluster: Cluster,
    netns_of: Any,
) -> None:
    client, server = workloads.client(WorkloadClass.SIDECAR), workloads.server(WorkloadClass.SIDECAR)
    # The feature itself, in the server's netns: without the native nftables redirect (an iptables capture,
    # say) the mTLS call below would succeed all the same.
    seen: PodNetnsRules = netns_of(pod_of(cluster, server))
    require(native_istio_redirect(seen.ruleset))
    require(inbound_port_captured(seen.ruleset, HTTP_PORT))
    policies.apply(peer_authentication(PEER_AUTHENTICATION, server.namespace, "STRICT"))
    client_id, server_id = workload_identity(mesh, client), workload_identity(mesh, server)
    traffic.expect(
        client,
        server,
        HTTP_PORT,
        responses.mtls_with_identity(client_id, server_identity=server_id),
        description="the server's sidecar received the call through the nftables redirect, over mTLS",
    )
    # Control: the port excluded from capture bypasses the proxy even under STRICT: plaintext from outside
    # the mesh is accepted and the app sees no XFCC, because no sidecar is in the path.
    outsider = workloads.client(WorkloadClass.OUT_OF_MESH)
    traffic.expect(
        outsider,
        excluded_server,
        HTTP_PORT,
        responses.all_of(responses.ok(), responses.plaintext()),
        description="a port excluded from capture is reached directly, without the proxy",
    )
