"""Mutual TLS between workloads, proven with evidence, and the plaintext negative control.

In the mesh, a call from the client to the server is mTLS and carries the client's SPIFFE identity under
both STRICT and PERMISSIVE (istio-facts §3.1). Sidecar mode proves it with the X-Forwarded-Client-Cert
header the server's sidecar adds (§3.2); ambient mode cannot (XFCC never reaches the app through ztunnel,
§0 trap 5) and reads what ztunnel reports instead: HBONE per workload, mutual_tls metrics with the
principals, access-log identities (§3.3). Workload certificates chain to the root the mesh published.

The negative control pair: a client outside the mesh is refused under STRICT and accepted, without an
identity, under PERMISSIVE. Each plaintext test then applies the other mode and sees the same call flip.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import pytest

from fixtures.mtls import expect_mutual_tls, expect_plaintext_refused
from fixtures.mtls import workload_identity as identity
from fixtures.traffic import MeshEvidence
from meshproof.checks import responses
from meshproof.checks.ambient import (
    ztunnel_access_log_plaintext,
    ztunnel_saw_plaintext,
)
from meshproof.checks.identity import verify_workload_certificate
from meshproof.checks.verdict import require
from meshproof.mesh.certs import unrelated_root_pem
from meshproof.policies import AppliedPolicies, peer_authentication
from meshproof.traffic import Traffic
from meshproof.workloads import HTTP_PORT, Workload, WorkloadClass, WorkloadSet, pod_of, published_root_pem

if TYPE_CHECKING:
    from meshproof.kube import Cluster
    from meshproof.mesh.info import MeshInfo

pytestmark = pytest.mark.mtls

PEER_AUTHENTICATION = "meshproof-mtls"
OPPOSITE = {"STRICT": "PERMISSIVE", "PERMISSIVE": "STRICT"}

MESH_CLASS_AND_MODE = [
    pytest.param(WorkloadClass.SIDECAR, "STRICT", id="sidecar/STRICT", marks=pytest.mark.sidecar),
    pytest.param(WorkloadClass.SIDECAR, "PERMISSIVE", id="sidecar/PERMISSIVE", marks=pytest.mark.sidecar),
    pytest.param(WorkloadClass.AMBIENT, "STRICT", id="ambient/STRICT", marks=pytest.mark.ambient),
    pytest.param(WorkloadClass.AMBIENT, "PERMISSIVE", id="ambient/PERMISSIVE", marks=pytest.mark.ambient),
]
MESH_CLASS = [
    pytest.param(WorkloadClass.SIDECAR, id="sidecar", marks=pytest.mark.sidecar),
    pytest.param(WorkloadClass.AMBIENT, id="ambient", marks=pytest.mark.ambient),
]


@pytest.mark.parametrize(("workload_class", "mtls_mode"), MESH_CLASS_AND_MODE)
def test_mesh_traffic_is_mutual_tls_with_the_client_identity(
    workload_class: WorkloadClass,
    mtls_mode: str,
    workloads: WorkloadSet,
    policies: AppliedPolicies,
    traffic: Traffic,
    evidence: MeshEvidence,
    mesh: MeshInfo,
    cluster: Cluster,
) -> None:
    server, client = workloads.server(workload_class), workloads.client(workload_class)
    policies.apply(peer_authentication(PEER_AUTHENTICATION, server.namespace, mtls_mode))
    expect_mutual_tls(client, server, traffic, evidence, mesh, cluster, context=f"under {mtls_mode}")


@pytest.mark.parametrize(("workload_class", "mtls_mode"), MESH_CLASS_AND_MODE)
def test_plaintext_from_outside_the_mesh(
    workload_class: WorkloadClass,
    mtls_mode: str,
    workloads: WorkloadSet,
    policies: AppliedPolicies,
    traffic: Traffic,
    evidence: MeshEvidence,
    mesh: MeshInfo,
    cluster: Cluster,
) -> None:
    server, outsider = workloads.server(workload_class), workloads.client(WorkloadClass.OUT_OF_MESH)
    for mode in (mtls_mode, OPPOSITE[mtls_mode]):  # the second pass is the control: the same call flips
        policies.apply(peer_authentication(PEER_AUTHENTICATION, server.namespace, mode))
        if mode == "STRICT":
            expect_plaintext_refused(outsider, server, traffic, evidence, mesh, cluster)
        else:
            expect_plaintext_accepted_without_identity(outsider, server, traffic, evidence, mesh, cluster)


@pytest.mark.parametrize("workload_class", MESH_CLASS)
def test_workload_certificate_chains_to_the_mesh_root(
    workload_class: WorkloadClass,
    workloads: WorkloadSet,
    evidence: MeshEvidence,
    mesh: MeshInfo,
    cluster: Cluster,
    record_property: Any,
) -> None:
    client, server = workloads.client(workload_class), workloads.server(workload_class)
    expected = identity(mesh, client)
    root = published_root_pem(cluster, client.namespace)  # not the proxy's own view of its root
    if workload_class is WorkloadClass.SIDECAR:
        chain = evidence.sidecar_certificate_chain(client)
    else:
        chain = evidence.ztunnel_certificate_chain(client, expected)

    verdict = require(verify_workload_certificate(chain, expected, root))
    record_property("certificate", verdict.reason)
    # Negative controls on the same real chain: another identity and an unrelated root are rejected,
    # so the pass above does not come from a verifier that accepts anything.
    assert not verify_workload_certificate(chain, identity(mesh, server), root), "accepted the wrong identity"
    assert not verify_workload_certificate(chain, expected, unrelated_root_pem()), "accepted a foreign root"


def expect_plaintext_accepted_without_identity(
    outsider: Workload,
    server: Workload,
    traffic: Traffic,
    evidence: MeshEvidence,
    mesh: MeshInfo,
    cluster: Any,
) -> None:
    if server.workload_class is WorkloadClass.SIDECAR:
        # No XFCC at the server: its sidecar accepted the request without a client certificate.
        traffic.expect(
            outsider,
            server,
            HTTP_PORT,
            responses.all_of(responses.ok(), responses.plaintext()),
            description="PERMISSIVE accepts plaintext, and the server sees no client identity",
        )
        return
    started = time.time()
    server_pod = pod_of(cluster, server)
    destination = evidence.ztunnel_on_node_of(server_pod)
    baseline = evidence.ztunnel_metrics(destination)
    outsider_ip = pod_of(cluster, outsider)["status"]["podIP"]
    traffic.expect(outsider, server, HTTP_PORT, responses.ok(), description="PERMISSIVE accepts plaintext")
    # The opened counter also grows for plaintext that STRICT then rejects (captures/ztunnel-1.27.9
    # case 07): it proves an attempt reached ztunnel, not that ztunnel accepted it. The acceptance is
    # the access record without error and without identity, from the outsider's address.
    evidence.require_metrics(
        destination,
        lambda samples: ztunnel_saw_plaintext(samples, identity(mesh, server), baseline=baseline),
        "the server's ztunnel counted connections with no mTLS and no source principal",
    )
    evidence.require_access_log(
        destination,
        started,
        lambda records: ztunnel_access_log_plaintext(
            records, server_pod["metadata"]["name"], src_ip=outsider_ip
        ),
        "the server's ztunnel logged the outsider's inbound connection, completed, without an identity",
    )
