"""The kind provider: generated cluster config, and refusing to clobber an existing cluster."""

from __future__ import annotations

import pytest

from meshproof.clusters import ProvisionError
from meshproof.clusters import kind as kind_provider
from meshproof.config import load_config
from meshproof.mesh.spec import MeshSpec


def spec(**cli: object) -> MeshSpec:
    return MeshSpec.from_config(
        load_config({"provider": "kind", "installer": "helm", "mode": "ambient", **cli}, env={})
    )


def test_single_cluster_config_uses_kind_defaults_and_the_pinned_image():
    (cluster,) = spec().clusters
    config = kind_provider.kind_config(cluster)
    assert config["apiVersion"] == "kind.x-k8s.io/v1alpha4" and config["name"] == "meshproof"
    assert config["networking"] == {"podSubnet": "10.244.0.0/16", "serviceSubnet": "10.96.0.0/16"}
    assert len(config["nodes"]) == 3


def test_multicluster_clusters_get_distinct_names_subnets_and_networks():
    clusters = spec(features="multicluster", cluster_name="mp").clusters
    assert [c.name for c in clusters] == ["mp-1", "mp-2"]
    assert [c.context for c in clusters] == ["kind-mp-1", "kind-mp-2"]
    assert [c.network for c in clusters] == ["network1", "network2"]
    configs = [kind_provider.kind_config(c)["networking"] for c in clusters]
    assert configs[0] != configs[1]
    assert {c["podSubnet"] for c in configs} == {"10.244.0.0/16", "10.245.0.0/16"}


def test_kind_get_clusters_output_is_parsed():
    assert kind_provider.parse_kind_clusters("meshproof\nother\n") == {"meshproof", "other"}
    assert kind_provider.parse_kind_clusters("") == set()


def test_an_existing_cluster_is_refused_without_reuse(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(kind_provider, "existing_kind_clusters", lambda: {"meshproof"})
    cfg = load_config({"provider": "kind"}, env={})
    with pytest.raises(ProvisionError) as info:
        kind_provider.KindProvider().before_provision(cfg, MeshSpec.from_config(cfg))
    assert str(info.value) == (
        "kind cluster meshproof already exists; pass --reuse-cluster to use it, or delete it with: "
        "kind delete cluster --name meshproof"
    )
    reuse = load_config({"provider": "kind", "reuse_cluster": True}, env={})
    kind_provider.KindProvider().before_provision(reuse, MeshSpec.from_config(reuse))
