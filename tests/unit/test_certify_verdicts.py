"""`meshproof certify` passes the run's verdict on: a bundle that proves nothing exits non-zero.

The child pytest runs the real conformance suites from the repository root with stand-in docker, kind,
kubectl and istioctl on PATH (they answer version probes and refuse everything else), as the issue
reporter did. Nothing reaches a cluster: these selections stop before provisioning.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from fixtures_data.stand_ins import install_stand_ins

from meshproof.cli import main

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def user_shell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(REPO)
    for name in [k for k in os.environ if k.startswith("MESHPROOF_") or k == "KUBECONFIG"]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("PATH", install_stand_ins(tmp_path / "bin"))
    monkeypatch.setenv("MESHPROOF_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


@pytest.mark.parametrize(
    ("selection", "exit_code", "reason"),
    [
        (["-m", "ambeint"], 4, "aborted during selection"),  # a marker typo
        (["-m", "sidecar"], 5, "is unsupported by this run's mode"),  # an ambient run (the default)
    ],
)
def test_certify_exits_with_the_verdict_of_its_run(user_shell, selection, exit_code, reason, capfd):
    results = user_shell / "results"
    rc = main(["certify", "--results-dir", str(results), "--", *selection, "-p", "no:cacheprovider"])
    err = capfd.readouterr().err
    assert rc == exit_code
    assert reason in err and "the bundle does not prove conformance" in err
    data = yaml.safe_load((results / "conformance-report.yaml").read_text())
    assert data["verdict"]["exitCode"] == exit_code
    assert (user_shell / "results.certification.tar.gz").is_file()  # the reviewer still sees what happened


def test_certify_a_profile_refuses_a_narrower_selection(user_shell, capsys):
    rc = main(
        [
            "certify",
            "--profile-name",
            "ambient-core",
            "--results-dir",
            str(user_shell / "r"),
            "--",
            "-m",
            "mtls",
        ]
    )
    assert rc == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == (
        "meshproof certify: profile ambient-core is a fixed selection; drop -m mtls "
        "(it could leave out required tests)"
    )
    assert not (user_shell / "r").exists()  # nothing ran


def test_only_arguments_that_could_drop_tests_count_as_narrowing(tmp_path, monkeypatch):
    from meshproof.commands.certify import narrowing_args

    monkeypatch.chdir(REPO)
    assert narrowing_args(["-p", "no:cacheprovider", "-n", "4", "-x", "--timeout-scale=2"]) == []
    assert narrowing_args(["--ignore", "suites/conformance/test_authz.py", "--ignore-glob=*mtls*"]) == [
        "--ignore",
        "suites/conformance/test_authz.py",
        "--ignore-glob=*mtls*",
    ]
    assert narrowing_args(
        ["-m", "mtls", "-kauthz", "--deselect", "a::b", "suites/conformance/test_mtls.py"]
    ) == [
        "-m",
        "mtls",
        "-kauthz",
        "--deselect",
        "a::b",
        "suites/conformance/test_mtls.py",
    ]
