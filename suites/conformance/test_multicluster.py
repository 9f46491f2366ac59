"""One mesh over two clusters on two networks: endpoints, identity and policy cross the east-west gateway.

The install (`meshproof plan --features multicluster`) builds two clusters with a network each, one root CA
plugged in as `cacerts`, an east-west gateway per cluster and remote secrets both ways; sidecar mode is
multi-primary multi-network, ambient (alpha in 1.27) the same with AMBIENT_ENABLE_MULTI_NETWORK and the
istio-east-west gateway (istio-facts §8). The apps (meshproof.multicluster): `mc-server` in both clusters,
`mc-remote` with pods only in cluster 2, the client in cluster 1.

Evidence: the pod that answered (fortio's hostname) and which cluster runs it; the identity the server side
saw (sidecar: XFCC from the server's sidecar; ambient: the cluster-2 ztunnel's access log); what each istiod
says about its peer (`istioctl remote-clusters`); what cluster 1's ztunnel knows (`ztunnel-config
workloads`, network field). Controls: the same call with the remote pods gone, the remote secret removed,
the global label removed, the policy removed.
Needs two real clusters: east-west traffic, remote API access and cross-network mTLS exist only there.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest

from fixtures.mtls import workload_identity as identity
from fixtures.multicluster import TwoClusters
from meshproof import multicluster as mc
from meshproof.checks import multicluster as checks
from meshproof.checks import responses
from meshproof.checks.ambient import PolicyRejection, ztunnel_access_log_identity
from meshproof.checks.identity import principal
from meshproof.checks.verdict import Verdict, require
from meshproof.evidence.collect import ztunnel_workloads
from meshproof.mesh.suite_steps import MULTICLUSTER_DENY_POLICY
from meshproof.policies import AppliedPolicies, Rule, authorization_policy
from meshproof.wait import eventually
from meshproof.workloads import WorkloadClass, pod_of

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from meshproof.evidence.remote_clusters import RemoteCluster
    from meshproof.evidence.ztunnel_logs import AccessLogRecord
    from meshproof.mesh.info import MeshInfo

pytestmark = [pytest.mark.multicluster, pytest.mark.feature("multicluster")]

MODES = [
    pytest.param("sidecar", id="sidecar", marks=pytest.mark.sidecar),
    pytest.param("ambient", id="ambient", marks=pytest.mark.ambient),
]
AMBIENT_ONLY = [pytest.param("ambient", id="ambient", marks=pytest.mark.ambient)]


def cluster_two_only(env: TwoClusters) -> dict[str, list[str]]:
    pods = env.pods_by_cluster(mc.REMOTE_SERVER)
    c1, c2 = env.names
    assert not pods[c1] and pods[c2], f"{mc.REMOTE_SERVER} must run only in {c2}: {pods}"
    return pods


@pytest.mark.parametrize("mode", MODES)
def test_server_only_in_cluster_two_answers_with_the_cluster_one_clients_identity(
    mode: str, two_clusters: TwoClusters, mesh: MeshInfo
) -> None:
    env, apps = two_clusters, two_clusters.apps
    pods = cluster_two_only(env)
    c2 = env.names[1]
    client_id, server_id = identity(mesh, apps.client), identity(mesh, apps.remote_server)
    served_by_c2 = lambda replies: checks.served_only_by(replies, pods, {c2})  # noqa: E731
    if apps.workload_class is WorkloadClass.SIDECAR:
        # The cluster-2 server's sidecar names the peer it got mTLS from (XFCC URI), across the gateway.
        replies = env.expect(
            apps.remote_server,
            responses.all_judges(
                served_by_c2,
                responses.every(responses.mtls_with_identity(client_id, server_identity=server_id)),
            ),
            f"the {c2}-only server answers, and its sidecar received mTLS from {client_id}",
        )
        # Control on the same replies: the identity check rejects an identity that did not call.
        other = identity(mesh, apps.server)
        assert not responses.every(responses.mtls_with_identity(other))(replies), (
            f"accepted {other} as the caller"
        )
        return
    started = time.time()
    env.expect(apps.remote_server, served_by_c2, f"the {c2}-only server answers the {env.names[0]} client")
    c2_evidence = env.evidence(1)
    server_pod = pod_of(env.pair[1], apps.remote_server)
    destination = c2_evidence.ztunnel_on_node_of(server_pod)
    # Control on the same records that show the client: the check rejects an identity that did not call.
    # (A separate wait for "no record from <other>" passed on its first read whatever the log held, since
    # <other> never calls this server; judged on the log that holds the client's record, it shows the
    # check tells identities apart.)
    other = identity(mesh, apps.server)

    def from_client_only(records: list[AccessLogRecord]) -> Verdict:
        found = require(ztunnel_access_log_identity(records, client_id, server_id))
        if ztunnel_access_log_identity(records, other, server_id):
            return Verdict.failed(f"the same log also names {other}, which never called, as the caller")
        return Verdict.passed(f"{found.reason}; control: not from {other}")

    c2_evidence.require_access_log(
        destination,
        started,
        from_client_only,
        f"{c2}'s ztunnel logged the inbound connection from {client_id} (and not from {other})",
    )


@pytest.mark.parametrize("mode", MODES)
def test_istiod_in_each_cluster_has_synced_its_peer(mode: str, two_clusters: TwoClusters) -> None:
    c1, c2 = two_clusters.names

    def synced(peer: str, own: str) -> Callable[[list[RemoteCluster]], Verdict]:
        """`peer` synced, with a control on the same table: istiod lists its own cluster (without a remote
        secret) and peer_synced rejects that row, so the pass for `peer` came from its remote secret."""

        def judge(rows: list[RemoteCluster]) -> Verdict:
            found = require(checks.peer_synced(rows, peer))
            listed = require(checks.own_cluster_listed(rows, own))
            if checks.peer_synced(rows, own):
                return Verdict.failed(f"peer_synced accepted istiod's own cluster {own} as a synced peer")
            return Verdict.passed(f"{found.reason}; control: {listed.reason}, not taken for a peer")

        return judge

    two_clusters.require_remote_clusters(0, synced(c2, c1), f"{c1}'s istiod synced {c2}")
    two_clusters.require_remote_clusters(1, synced(c1, c2), f"{c2}'s istiod synced {c1}")


@pytest.mark.parametrize("mode", MODES)
def test_without_the_remote_secret_cluster_one_loses_cluster_twos_endpoints(
    mode: str, two_clusters: TwoClusters
) -> None:
    env, apps = two_clusters, two_clusters.apps
    cluster_two_only(env)
    c1, c2 = env.names
    env.expect_served_by(apps.remote_server, {c2}, f"{c1} reaches {c2}'s server")
    with env.without_remote_secret(0, c2):
        env.require_remote_clusters(
            0, lambda rows: checks.peer_absent(rows, c2), f"{c1}'s istiod dropped {c2}"
        )
        env.expect(
            apps.remote_server,
            checks.none_served,
            f"without the remote secret {c1} has no endpoint of the {c2}-only server: the call fails",
        )
    env.require_remote_clusters(0, lambda rows: checks.peer_synced(rows, c2), f"control: {c1} re-synced {c2}")
    env.expect_served_by(apps.remote_server, {c2}, "control: the call works again")


@pytest.mark.parametrize("mode", MODES)
def test_replies_come_from_both_clusters(mode: str, two_clusters: TwoClusters) -> None:
    env, apps = two_clusters, two_clusters.apps
    c1, c2 = env.names
    env.expect_served_by(
        apps.server, {c1, c2}, f"the server in both clusters answers from {c1} and {c2}", count=20
    )
    with env.scaled(1, mc.SERVER, 0):  # control: the cluster-2 replies were cluster 2's pods
        env.expect_served_by(
            apps.server, {c1}, f"control: with {c2}'s replicas at zero only {c1} answers", count=20
        )


@pytest.mark.parametrize("mode", MODES)
def test_traffic_fails_over_to_cluster_two(mode: str, two_clusters: TwoClusters) -> None:
    env, apps = two_clusters, two_clusters.apps
    c1, c2 = env.names
    with env.scaled(0, mc.SERVER, 0):
        env.expect_served_by(
            apps.server, {c2}, f"with {c1}'s replicas at zero every call is served by {c2}", count=10
        )
    env.expect_served_by(
        apps.server, {c1, c2}, f"control: with {c1}'s replicas back both clusters answer again", count=20
    )


@pytest.mark.parametrize("mode", MODES)
def test_policy_in_cluster_two_denies_the_cluster_one_client(
    mode: str, two_clusters: TwoClusters, mesh: MeshInfo, test_id: str, workload_state_dir: Path
) -> None:
    env, apps = two_clusters, two_clusters.apps
    cluster_two_only(env)
    c1, c2 = env.names
    client_principal = principal(identity(mesh, apps.client))
    deny = authorization_policy(
        MULTICLUSTER_DENY_POLICY, apps.remote_server, "DENY", [Rule(principals=(client_principal,))]
    )
    policies = AppliedPolicies(env.pair[1], test_id, workload_state_dir)
    try:
        policies.apply(deny)
        if apps.workload_class is WorkloadClass.SIDECAR:
            # The enforcing proxy is the cluster-2 server's sidecar: Envoy's RBAC reply, 403.
            env.expect(
                apps.remote_server,
                responses.every(responses.denied_l7()),
                f"a DENY in {c2} naming {c1}'s client is enforced by the server's sidecar (403 RBAC)",
            )
        else:
            # Attributed by the enforcing proxy: the cluster-2 ztunnel in front of the server must log
            # exactly this policy's rejection for cluster 1's client and count the DENY close; a closed
            # port, plaintext refused under STRICT or another policy look the same from the client.
            server_pod = pod_of(env.pair[1], apps.remote_server)
            with env.evidence(1).ztunnel_rejects(
                server_pod,
                PolicyRejection.denied_by(apps.remote_server.namespace, deny["metadata"]["name"]),
                src_identity=identity(mesh, apps.client),
                dst_identity=identity(mesh, apps.remote_server),
            ):
                env.expect(
                    apps.remote_server,
                    responses.every(responses.denied_l4()),
                    f"a DENY in {c2} naming {c1}'s client closes its connection",
                )
        policies.remove_all()
        env.expect_served_by(
            apps.remote_server, {c2}, "control: with the policy removed the same call is served"
        )
    finally:
        policies.close()


@pytest.mark.parametrize("mode", AMBIENT_ONLY)
def test_ambient_service_without_the_global_label_is_not_reachable_across(
    mode: str, two_clusters: TwoClusters
) -> None:
    env, apps = two_clusters, two_clusters.apps
    cluster_two_only(env)
    c1, c2 = env.names
    env.expect_served_by(apps.remote_server, {c2}, f"with istio.io/global {c1} reaches {c2}")
    with env.services_without_global_label(mc.REMOTE_SERVER):
        env.expect(
            apps.remote_server,
            checks.none_served,
            f"without istio.io/global the {c2}-only service stays local to {c2}: the call from {c1} fails",
        )
    env.expect_served_by(apps.remote_server, {c2}, "control: label back, served again")


@pytest.mark.parametrize("mode", AMBIENT_ONLY)
def test_ambient_ztunnel_in_cluster_one_knows_cluster_two_workloads(
    mode: str, two_clusters: TwoClusters, mesh: MeshInfo
) -> None:
    env, apps = two_clusters, two_clusters.apps
    c1, c2 = env.names
    net1, net2 = (c.network or "" for c in mesh.spec.clusters[:2])
    remote = env.pods_by_cluster(mc.REMOTE_SERVER)[c2]
    local = env.pods_by_cluster(mc.SERVER)[c1]

    def check() -> Verdict:
        table = ztunnel_workloads(
            env.istioctl(0), mesh.ztunnel_namespace or "", workload_namespace=apps.namespace
        )
        require(checks.workloads_on_network(table, apps.namespace, remote, net2))
        require(checks.workloads_on_network(table, apps.namespace, local, net1))
        # Control on the same table: the check tells networks apart.
        if checks.workloads_on_network(table, apps.namespace, remote, net1):
            raise AssertionError(f"{remote} reported on {net1} too")
        return Verdict.passed(f"{c1}'s ztunnel: {remote} on {net2}, {local} on {net1}")

    verdict = eventually(
        check, timeout=env.timeouts.policy, description=f"{c1}'s ztunnel knows {c2}'s workloads"
    )
    env.record("multicluster.ztunnel-workloads", verdict.reason)
