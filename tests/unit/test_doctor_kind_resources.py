"""`meshproof doctor` checks that Docker can hold the kind clusters a multicluster run creates.

A fake `docker` on PATH answers `docker info --format '{{.NCPU}} {{.MemTotal}}'` the way the Go template
prints it (two integers: CPUs, bytes). What this cannot prove: that the estimate (meshproof.clusters.kind
PER_CLUSTER) is enough on a given machine; it is an estimate, stated as one.
"""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from meshproof import tools
from meshproof.clusters import kind
from meshproof.commands import doctor
from meshproof.config import load_config

GIB = 1024**3


@pytest.fixture
def fake_docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "path"
    path.mkdir()
    monkeypatch.setenv("PATH", str(path))
    monkeypatch.setenv(tools.CACHE_ENV, str(tmp_path / "cache"))
    return path


def docker_prints(directory: Path, script: str) -> None:
    exe = directory / "docker"
    exe.write_text("#!/bin/sh\n" + script + "\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)


def test_two_clusters_need_twice_one() -> None:
    one, two = kind.resources_needed(1), kind.resources_needed(2)
    assert (two.cpus, two.memory_gib) == (2 * one.cpus, 2 * one.memory_gib) == (4, 8)


def test_enough_docker_passes_and_too_little_fails_naming_both_numbers(fake_docker: Path) -> None:
    docker_prints(fake_docker, f'echo "8 {16 * GIB}"')
    assert doctor.check_kind_resources(2).ok
    docker_prints(fake_docker, f'echo "2 {6 * GIB}"')
    small = doctor.check_kind_resources(2)
    assert not small.ok and small.required
    assert "2 CPUs < 4" in small.detail and "6.0 GiB < 8 GiB" in small.detail
    assert "Resources" in small.fix


def test_unreadable_docker_info_fails_instead_of_passing(fake_docker: Path) -> None:
    docker_prints(fake_docker, 'echo "permission denied" >&2; exit 1')
    result = doctor.check_kind_resources(2)
    assert not result.ok and "cannot read" in result.detail


def test_preflight_checks_resources_only_for_multicluster_on_kind(fake_docker: Path) -> None:
    # One script for every docker call: the daemon check reads a version, the resource check two numbers.
    docker_prints(
        fake_docker,
        f'case "$*" in *NCPU*) echo "1 {2 * GIB}";; --version) echo "Docker version 27.3.1, build ce12230";; '
        '*) echo "27.3.1";; esac',
    )
    names = [r.name for r in doctor.preflight(load_config({"features": ["multicluster"]}))]
    assert "docker resources for 2 kind clusters" in names
    results = {r.name: r for r in doctor.preflight(load_config({"features": ["multicluster"]}))}
    assert not results["docker resources for 2 kind clusters"].ok
    single = [r.name for r in doctor.preflight(load_config({}))]
    assert not any(n.startswith("docker resources") for n in single)


@pytest.mark.parametrize("text", ["", "8", "eight 1024", "8 16 extra"])
def test_parse_refuses_other_output(text: str) -> None:
    with pytest.raises(ValueError):
        kind.parse_docker_resources(text)
