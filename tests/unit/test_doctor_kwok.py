"""The KWOK guard: fake nodes are recognised by KWOK's own marks; real nodes pass.

The real case it must reject (the control-plane tier's KWOK node) is in
tests/control_plane/test_cp_guard.py; here the marks one by one and a kind node that must pass.
"""

from __future__ import annotations

from typing import Any

from meshproof.commands.doctor import fake_nodes


def node(name: str, annotations: dict[str, str] | None = None, kubelet: str = "v1.33.1") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "annotations": annotations or {}},
        "status": {"nodeInfo": {"kubeletVersion": kubelet}},
    }


def test_kind_nodes_are_real() -> None:
    kind_node = node("meshproof-control-plane", {"kubeadm.alpha.kubernetes.io/cri-socket": "unix:///run/x"})
    assert fake_nodes([kind_node]) == []


def test_the_kwok_annotation_marks_a_fake_node() -> None:
    assert fake_nodes([node("kwok-node-0", {"kwok.x-k8s.io/node": "fake"})]) == [
        "kwok-node-0 (kwok.x-k8s.io/node=fake)"
    ]


def test_a_kwok_kubelet_version_marks_a_fake_node_without_the_annotation() -> None:
    # KWOK's node-initialize stage reports kubeletVersion "kwok-<version>" when the node set none
    found = fake_nodes([node("real", kubelet="v1.34.4"), node("sim", kubelet="kwok-v0.8.0")])
    assert found == ["sim (kubelet kwok-v0.8.0)"]
