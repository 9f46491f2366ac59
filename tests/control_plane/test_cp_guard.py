"""The KWOK guard on the real case it must reject: this tier's fake node.

`meshproof doctor` and the suites' preflight list the cluster's nodes; KWOK's node (annotation
`kwok.x-k8s.io/node=fake`, kubelet version `kwok-v0.8.0`) makes both refuse with one line, so no
data-plane verdict can be earned on pods that run no containers. The accept side (a kind node) is in
tests/unit/test_doctor_kwok.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from fixtures_data.control_plane import ControlPlane

from meshproof.commands.doctor import check_real_nodes, fake_nodes

pytestmark = pytest.mark.control_plane
REPO = Path(__file__).resolve().parents[2]


def test_the_tier_node_carries_kwoks_marks(control_plane: ControlPlane) -> None:
    node = yaml.safe_load(control_plane.kubectl("get", "node", "kwok-node-0", "-o", "yaml").stdout)
    assert node["status"]["nodeInfo"]["kubeletVersion"].startswith("kwok-")
    assert fake_nodes([node]) == ["kwok-node-0 (kwok.x-k8s.io/node=fake)"]


def test_doctor_refuses_a_cluster_of_kwok_nodes(control_plane: ControlPlane) -> None:
    result = check_real_nodes(str(control_plane.kubeconfig), "meshproof-control-plane")
    assert not result.ok and result.required
    assert "kwok-node-0" in result.detail and "refusing to certify data-plane claims" in result.detail

    doctor = subprocess.run(
        [
            sys.executable,
            "-m",
            "meshproof.cli",
            "doctor",
            "--provider",
            "existing",
            "--kubeconfig",
            str(control_plane.kubeconfig),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert doctor.returncode == 1
    line = next(ln for ln in doctor.stdout.splitlines() if "nodes of meshproof-control-plane" in ln)
    assert "KWOK fake nodes" in line and "FAIL" in line


def test_the_suites_preflight_aborts_on_kwok_nodes(control_plane: ControlPlane, tmp_path: Path) -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "suites",
            "-m",
            "ambient",
            "-p",
            "no:cacheprovider",
            "--provider",
            "existing",
            "--kubeconfig",
            str(control_plane.kubeconfig),
            "--mode",
            "ambient",
            "--results-dir",
            str(tmp_path / "results"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert run.returncode == 4, run.stdout[-2000:] + run.stderr[-2000:]
    assert "nodes of meshproof-control-plane: KWOK fake nodes" in run.stdout + run.stderr
    report = yaml.safe_load((tmp_path / "results" / "conformance-report.yaml").read_text())
    assert report["status"] == "aborted" and report["abortReason"]["phase"] == "preflight"
    assert "KWOK fake nodes" in report["abortReason"]["message"]
