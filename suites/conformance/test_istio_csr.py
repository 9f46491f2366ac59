"""cert-manager istio-csr as the mesh CA, proven on the certificates workloads really hold (istio-facts §6.3).

Evidence: every workload leaf (sidecar: `istioctl proxy-config secret`; ambient: `istioctl ztunnel-config
certificates`) carries the workload's SPIFFE id and chains to the cert-manager issuer's CA, read from the
cluster (the CA Issuer's Secret), and not to istiod's own CA; the root the mesh publishes to namespaces is
that CA; istio-csr's CertificateRequests name the workload identities; a restarted workload gets a new leaf
from a new request; and mTLS between workloads still holds.

Negative controls in the same tests: the same real chain fails against a foreign root and for another
identity; istiod's own CA (`istio-ca-secret`), if present at all, verifies none of the leaves; no
CertificateRequest exists for an identity no workload has; before the restart there is no request newer
than it; plaintext from outside the mesh is refused under STRICT. That the checks reject istiod-signed and
foreign chains is shown on real handshakes in tests/local_real/test_istio_csr_tls.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import pytest

from fixtures.mtls import expect_mutual_tls, expect_plaintext_refused
from fixtures.mtls import workload_identity as identity
from fixtures.traffic import MeshEvidence
from fixtures.workloads import on_openshift
from meshproof.checks.ca_chain import (
    certificate_requests_for,
    different_leaf,
    issued_by_cert_manager,
    requests_for,
    same_ca,
)
from meshproof.checks.identity import spiffe_id, verify_workload_certificate
from meshproof.checks.verdict import require
from meshproof.config import RunConfig
from meshproof.evidence.cert_manager import (
    ISSUER_CA_SECRET,
    certificate_requests,
    issuer_ca_pem,
    istiod_ca_pem,
)
from meshproof.mesh.certs import unrelated_root_pem
from meshproof.mesh.suite_steps import ISTIO_CSR_PEER_AUTHENTICATION, ISTIO_CSR_PROBE
from meshproof.policies import AppliedPolicies, peer_authentication
from meshproof.traffic import Traffic
from meshproof.wait import Timeouts, eventually
from meshproof.workloads import (
    Workload,
    WorkloadClass,
    WorkloadSet,
    pod_name,
    published_root_pem,
)

if TYPE_CHECKING:
    from meshproof.kube import Cluster
    from meshproof.mesh.info import MeshInfo

pytestmark = [pytest.mark.istio_csr, pytest.mark.feature("istio-csr")]

MESH_CLASS = [
    pytest.param(WorkloadClass.SIDECAR, id="sidecar", marks=pytest.mark.sidecar),
    pytest.param(WorkloadClass.AMBIENT, id="ambient", marks=pytest.mark.ambient),
]
PROBE = ISTIO_CSR_PROBE
PEER_AUTHENTICATION = ISTIO_CSR_PEER_AUTHENTICATION
NO_SUCH_ACCOUNT = "meshproof-no-such-account"


def leaf_chain(evidence: MeshEvidence, mesh: MeshInfo, workload: Workload) -> str:
    if workload.workload_class is WorkloadClass.SIDECAR:
        return evidence.sidecar_certificate_chain(workload)
    return evidence.ztunnel_certificate_chain(workload, identity(mesh, workload))


@pytest.fixture
def cert_manager_ca(cluster: Cluster, mesh: MeshInfo) -> str:
    """The CA certificate of the cert-manager Issuer istio-csr signs with, read from its Secret."""
    return issuer_ca_pem(cluster, mesh.istio_namespace, ISSUER_CA_SECRET)


@pytest.mark.parametrize("workload_class", MESH_CLASS)
def test_workload_leaves_chain_to_the_cert_manager_issuer(
    workload_class: WorkloadClass,
    workloads: WorkloadSet,
    evidence: MeshEvidence,
    mesh: MeshInfo,
    cluster: Cluster,
    cert_manager_ca: str,
    record_property: Any,
) -> None:
    istiod_ca = istiod_ca_pem(cluster, mesh.istio_namespace)
    for workload in workloads.workloads(workload_class):
        chain = leaf_chain(evidence, mesh, workload)
        verdict = require(
            issued_by_cert_manager(chain, identity(mesh, workload), cert_manager_ca, istiod_ca_pem=istiod_ca)
        )
        record_property(f"certificate {workload.name}", verdict.reason)
        # Controls on the same real chain: a foreign root and another identity are rejected.
        assert not issued_by_cert_manager(chain, identity(mesh, workload), unrelated_root_pem()), (
            "foreign root"
        )
        other = next(w for w in workloads.workloads(workload_class) if w != workload)
        assert not issued_by_cert_manager(chain, identity(mesh, other), cert_manager_ca), "wrong identity"


@pytest.mark.parametrize("workload_class", MESH_CLASS)
def test_published_root_is_the_cert_manager_ca(
    workload_class: WorkloadClass, workloads: WorkloadSet, cluster: Cluster, cert_manager_ca: str
) -> None:
    namespace = workloads.namespace(workload_class)
    published = published_root_pem(cluster, namespace)  # written by istio-csr's bundle distributor
    require(same_ca(published, cert_manager_ca, what=f"istio-ca-root-cert in {namespace}"))
    assert not same_ca(unrelated_root_pem(), cert_manager_ca, what="an unrelated root"), "comparison blind"


@pytest.mark.parametrize("workload_class", MESH_CLASS)
def test_istiod_serves_no_ca(
    workload_class: WorkloadClass,
    workloads: WorkloadSet,
    evidence: MeshEvidence,
    mesh: MeshInfo,
    cluster: Cluster,
    cert_manager_ca: str,
) -> None:
    """istiod's own CA (`istio-ca-secret`) is absent, or present but no workload leaf chains to it."""
    istiod_ca = istiod_ca_pem(cluster, mesh.istio_namespace)
    client = workloads.client(workload_class)
    chain = leaf_chain(evidence, mesh, client)
    # Control: the chain is a good one (it verifies against the cert-manager CA), so a failure against
    # istiod's CA below means "not istiod's", not "unreadable".
    require(verify_workload_certificate(chain, identity(mesh, client), cert_manager_ca))
    if istiod_ca is not None:
        by_istiod = verify_workload_certificate(chain, identity(mesh, client), istiod_ca)
        assert not by_istiod.ok, f"the workload leaf chains to istiod's own CA: {by_istiod.reason}"


@pytest.mark.parametrize("workload_class", MESH_CLASS)
def test_certificate_requests_name_the_workload_identities(
    workload_class: WorkloadClass,
    workloads: WorkloadSet,
    mesh: MeshInfo,
    cluster: Cluster,
    run_config: RunConfig,
) -> None:
    if on_openshift(cluster, run_config):
        pytest.skip(
            "unsupported: the IstioCSR API has no preserveCertificateRequests, and istio-csr deletes each "
            "request once signed"
        )
    requests = certificate_requests(cluster, mesh.istio_namespace)
    for workload in workloads.workloads(workload_class):
        require(certificate_requests_for(requests, identity(mesh, workload), issuer_name=ISSUER_CA_SECRET))
    bogus = spiffe_id(mesh.trust_domain, workloads.namespace(workload_class), NO_SUCH_ACCOUNT)
    assert not certificate_requests_for(requests, bogus, issuer_name=ISSUER_CA_SECRET), "requests for anyone"


@pytest.fixture
def probe(own_server: Callable[..., AbstractContextManager[Workload]]) -> Iterator[Workload]:
    """The test's own sidecar workload, so restarting it disturbs no shared workload."""
    with own_server(PROBE) as workload:
        yield workload


@pytest.mark.sidecar  # ztunnel keeps an identity's certificate while that identity runs on the node
def test_restarted_workload_gets_a_new_leaf_from_a_new_request(
    probe: Workload,
    evidence: MeshEvidence,
    mesh: MeshInfo,
    cluster: Cluster,
    run_config: RunConfig,
    cert_manager_ca: str,
    timeouts: Timeouts,
) -> None:
    probe_id = identity(mesh, probe)
    before = leaf_chain(evidence, mesh, probe)
    # Only the upstream install keeps requests (see test_certificate_requests_name_the_workload_identities).
    preserved = not on_openshift(cluster, run_config)
    seen = requests_for(certificate_requests(cluster, mesh.istio_namespace), probe_id) if preserved else []
    if preserved:
        assert seen, f"no CertificateRequest for {probe_id} although the probe has a certificate"
    old_pod = pod_name(cluster, probe)
    cluster.delete("v1", "Pod", old_pod, probe.namespace)

    def replaced() -> None:
        assert pod_name(cluster, probe) != old_pod, f"{old_pod} not replaced yet"

    eventually(replaced, timeout=timeouts.rollout, description=f"{probe} replaced after the restart")
    after = leaf_chain(evidence, mesh, probe)
    require(different_leaf(before, after))  # the control: the old leaf is not accepted as the new one
    istiod_ca = istiod_ca_pem(cluster, mesh.istio_namespace)
    require(issued_by_cert_manager(after, probe_id, cert_manager_ca, istiod_ca_pem=istiod_ca))
    if preserved:

        def new_request() -> None:
            current = certificate_requests(cluster, mesh.istio_namespace)
            require(certificate_requests_for(current, probe_id, issuer_name=ISSUER_CA_SECRET, excluding=seen))

        eventually(
            new_request,
            timeout=timeouts.traffic,
            description="istio-csr created and cert-manager signed a new request for the restarted probe",
        )


@pytest.mark.parametrize("workload_class", MESH_CLASS)
def test_mtls_still_holds_with_istio_csr(
    workload_class: WorkloadClass,
    workloads: WorkloadSet,
    policies: AppliedPolicies,
    traffic: Traffic,
    evidence: MeshEvidence,
    mesh: MeshInfo,
    cluster: Cluster,
    cert_manager_ca: str,
) -> None:
    server, client = workloads.server(workload_class), workloads.client(workload_class)
    # The feature itself: the server's leaf is cert-manager's (without istio-csr, istiod's own CA would
    # carry the same mTLS call below).
    istiod_ca = istiod_ca_pem(cluster, mesh.istio_namespace)
    require(
        issued_by_cert_manager(
            leaf_chain(evidence, mesh, server),
            identity(mesh, server),
            cert_manager_ca,
            istiod_ca_pem=istiod_ca,
        )
    )
    policies.apply(peer_authentication(PEER_AUTHENTICATION, server.namespace, "STRICT"))
    expect_mutual_tls(client, server, traffic, evidence, mesh, cluster, context="with istio-csr certificates")
    # Control: STRICT still refuses plaintext from outside the mesh.
    expect_plaintext_refused(
        workloads.client(WorkloadClass.OUT_OF_MESH), server, traffic, evidence, mesh, cluster
    )
