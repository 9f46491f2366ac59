"""Every option works in both forms (`--opt value` and `--opt=value`) with files outside the repository,
because the options load through the `pytest11` entry point before pytest picks its rootdir; and the report's
reproduce command reruns exactly the same tests.

Runs pytest in a subprocess from the repository root, as a user does. What this cannot show: a cluster run.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
FILE_OPTIONS = ("--kubeconfig", "--profile", "--results-dir", "--known-issues")


def run_pytest(tmp_path: Path, *args: str, **env_extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHPROOF_") and k != "KUBECONFIG"}
    env.update(env_extra)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.fixture
def outside(tmp_path: Path) -> dict[str, str]:
    """A kubeconfig, a profile YAML and a known-issues list in a directory outside the repository."""
    files = tmp_path / "elsewhere"
    files.mkdir()
    (files / "kubeconfig").write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n")
    (files / "profile.yaml").write_text("mode: ambient\ntimeout-scale: 2\n")
    (files / "known-issues.yaml").write_text("[]\n")
    return {
        "--kubeconfig": str(files / "kubeconfig"),
        "--profile": str(files / "profile.yaml"),
        "--results-dir": str(tmp_path / "results"),
        "--known-issues": str(files / "known-issues.yaml"),
    }


@pytest.mark.parametrize("form", ["space", "equals"])
def test_file_options_work_in_both_forms_from_outside_the_repository(form, outside, tmp_path):
    def spelled(flag: str) -> list[str]:
        return [flag, outside[flag]] if form == "space" else [f"{flag}={outside[flag]}"]

    options = [arg for flag in FILE_OPTIONS for arg in spelled(flag)]
    listed = run_pytest(tmp_path, "--collect-only", "-m", "ambient", "--provider", "existing", *options)
    assert listed.returncode == 0, listed.stdout[-1500:] + listed.stderr[-1500:]
    assert "unrecognized arguments" not in listed.stderr
    # the rootdir and ini stay the repository's, whatever directory an option's file lives in
    assert f"rootdir: {REPO}\nconfigfile: pyproject.toml\ntestpaths: suites\n" in listed.stdout
    assert "<Module test_mtls.py>" in listed.stdout
    # A real run gets as far as preflight, which reads the kubeconfig given: one line, exit 4.
    run = run_pytest(tmp_path, "-m", "ambient", "--provider", "existing", *options)
    assert run.returncode == 4
    assert f"{outside['--kubeconfig']} has no contexts" in run.stdout + run.stderr
    data = yaml.safe_load((Path(outside["--results-dir"]) / "conformance-report.yaml").read_text())
    assert data["config"]["kubeconfig"] == outside["--kubeconfig"]
    assert data["config"]["timeout_scale"] == 2.0  # read from the profile file


def test_the_options_plugin_is_an_entry_point_and_only_adds_options_and_fixes_the_rootdir():
    import meshproof.pytest_plugin as plugin

    (entry,) = [e for e in entry_points(group="pytest11") if e.value == "meshproof.pytest_plugin"]
    # named after its module, so fixtures.run's `pytest_plugins` entry for it is a no-op, never a second copy
    assert entry.name == "meshproof.pytest_plugin"
    hooks = {name for name in vars(plugin) if name.startswith("pytest_")}
    # inert in any other pytest run of this environment: no fixtures, no reports, no selection
    assert hooks == {"pytest_addoption", "pytest_load_initial_conftests"}
    conftest = (REPO / "conftest.py").read_text()
    assert "meshproof.pytest_plugin" not in conftest


def test_options_still_load_when_entry_points_are_disabled(tmp_path):
    result = run_pytest(tmp_path, "--help", PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    assert result.returncode == 0 and "--kubeconfig" in result.stdout and "--profile-name" in result.stdout


# --- reproduce: the same options and the same selection ---------------------------------------------------

INNER = """
import pytest

@pytest.mark.ambient
@pytest.mark.mtls
def test_a():
    pass

@pytest.mark.ambient
@pytest.mark.mtls
def test_b():
    pass

@pytest.mark.ambient
@pytest.mark.authz
def test_c():
    pass
"""


def test_reproduce_command_reruns_exactly_the_same_tests(pytester: pytest.Pytester, tmp_path: Path):
    import tomllib

    ini = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    pytester.makeconftest(
        "import meshproof.commands.doctor as doctor\n"
        "doctor.preflight = lambda cfg: []  # selection is under test, not prerequisites\n"
        'pytest_plugins = ["fixtures.run"]\n'
    )
    pytester.makeini("[pytest]\nmarkers =\n" + "".join(f"    {m}\n" for m in ini["markers"]))
    pytester.makepyfile(test_one=INNER, test_two=INNER)
    known = tmp_path / "known.yaml"
    known.write_text("[]\n")
    first = tmp_path / "first"
    pytester.runpytest(
        "test_one.py", "-m", "mtls", "-k", "not test_b", "--mode", "ambient", "--timeout-scale", "3",
        "--known-issues", str(known), "--results-dir", str(first), "-p", "no:cacheprovider",
    )  # fmt: skip
    data = yaml.safe_load((first / "conformance-report.yaml").read_text())
    argv = shlex.split(data["reproduce"]["command"])
    assert argv[0] == "pytest" and "test_one.py" in argv
    assert argv[argv.index("-m") + 1] == "mtls" and argv[argv.index("-k") + 1] == "not test_b"
    assert argv[argv.index("--known-issues") + 1] == str(known)
    assert argv[argv.index("--timeout-scale") + 1] == "3.0"
    second = tmp_path / "second"
    pytester.runpytest(*argv[1:], "--results-dir", str(second), "-p", "no:cacheprovider")
    rerun = yaml.safe_load((second / "conformance-report.yaml").read_text())
    names = [t["name"] for t in data["tests"]]
    assert names == ["test_one.py::test_a"]
    assert [t["name"] for t in rerun["tests"]] == names
    assert rerun["config"] | {"run_id": None, "results_dir": None} == data["config"] | {
        "run_id": None,
        "results_dir": None,
    }
