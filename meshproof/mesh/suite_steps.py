"""What the feature suites do on a cluster at test time, beyond the install (shown by `meshproof plan`).

The nftables and istio-csr suites create a few objects of their own while they run, and the multicluster and
gie suites change (and put back) some of the install's own objects; a user reviewing what a run will do to a
cluster (OpenShift change control, a shared cluster) sees them in the plan, next to the install steps. The
names live here or in the modules the suites use (meshproof.multicluster, meshproof.gie), used by the suites
and the plan alike, so the two cannot drift.
"""

from __future__ import annotations

from meshproof import gie
from meshproof import multicluster as mc
from meshproof.config import Feature
from meshproof.evidence.pod_netns import NFT_IMAGE_ENV
from meshproof.mesh.spec import MeshSpec

NFTABLES_EXCLUDED_SERVER = "server-excluded"
NFTABLES_PEER_AUTHENTICATION = "meshproof-nftables"
ISTIO_CSR_PROBE = "csr-probe"
ISTIO_CSR_PEER_AUTHENTICATION = "meshproof-istio-csr"
EXCLUDE_INBOUND_PORTS = "traffic.sidecar.istio.io/excludeInboundPorts"
REMOTE_SECRET_PREFIX = "istio-remote-secret-"  # what `istioctl create-remote-secret --name=X` creates
MULTICLUSTER_DENY_POLICY = "meshproof-mc-deny"


def suite_steps(spec: MeshSpec) -> list[str]:
    """One line per thing the requested features' suites do at test time (each removed, or put back as it
    was, when its test ends)."""
    steps: list[str] = []
    if spec.has(Feature.NFTABLES):
        scc = (
            " and a RoleBinding to ClusterRole system:openshift:scc:privileged"
            if spec.platform == "openshift"
            else ""
        )
        steps += [
            "nftables: a namespace <test-id>-netns labelled pod-security.kubernetes.io/enforce=privileged"
            f"{scc}; in it, per pod read, a privileged hostPID reader pod on that pod's node, image = the "
            f"pod's istio-proxy image (or ${NFT_IMAGE_ENV}), running `nsenter -t <pid> -n nft -j list "
            "ruleset` and `iptables-legacy-save` in that pod's network namespace",
            f"nftables: Deployment+Service {NFTABLES_EXCLUDED_SERVER} in the sidecar workload namespace with "
            f"{EXCLUDE_INBOUND_PORTS}=8080; PeerAuthentication {NFTABLES_PEER_AUTHENTICATION} (STRICT)",
        ]
    if spec.has(Feature.ISTIO_CSR):
        steps += [
            "istio-csr: reads Issuer istio-ca and its Secret's tls.crt, Secret istio-ca-secret's "
            f"certificate, CertificateRequests in {spec.istio_namespace} (no private key is read)",
            f"istio-csr: Deployment+Service {ISTIO_CSR_PROBE} in the sidecar workload namespace, whose pod "
            f"is deleted once to be re-issued; PeerAuthentication {ISTIO_CSR_PEER_AUTHENTICATION} (STRICT)",
        ]
    if spec.has(Feature.MULTICLUSTER):
        apps = "namespace mp-<run-id>-mc"  # meshproof.multicluster.namespace_for
        names = [c.name for c in spec.clusters[:2]]
        one, two = names if len(names) == 2 else ["cluster 1", "cluster 2"]
        steps += [
            f"multicluster: Deployments {mc.SERVER}, {mc.REMOTE_SERVER}, {mc.CLIENT} and their Services in "
            f"{apps} of both clusters",
            f"multicluster: deletes Secret {spec.istio_namespace}/{REMOTE_SECRET_PREFIX}{two} in {one} (the "
            "install's remote secret, so istiod drops the peer), then re-creates it as it was (same content "
            "and labels, no meshproof run label)",
            f"multicluster: scales Deployment {mc.SERVER} ({apps}) to zero replicas in one cluster at a "
            "time, then back to the replica count it had",
        ]
        if spec.mode == "ambient":
            steps.append(
                f"multicluster: removes the {mc.GLOBAL_LABEL} label from Service {mc.REMOTE_SERVER} in both "
                "clusters, then puts it back"
            )
        steps.append(
            f"multicluster: AuthorizationPolicy {MULTICLUSTER_DENY_POLICY} (DENY for {mc.CLIENT} of "
            f"{one}) in {apps} of {two}"
        )
    if spec.has(Feature.GIE):
        steps.append(
            f"gie: scales the install's EPP Deployment {gie.NAMESPACE}/{gie.EPP} to zero replicas, then back "
            "to the replica count it had (labels kept as the install set them)"
        )
    return steps
