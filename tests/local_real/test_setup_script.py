"""scripts/setup.sh on a machine that cannot download: one summary line naming what failed and how to
provide it, and a non-zero exit only for what the next command cannot run without.

The script runs for real in a copy of the repository's scripts/, .ci/ and pyproject.toml. The downloads
fail for real too: pip against an index host that does not resolve, `meshproof tools install` against a
mirror that does not resolve, `go install`/`go mod download` against a module proxy that does not resolve
(with an empty module cache). One stand-in: when a test needs pip to succeed, `.venv/bin/python -m pip
install` returns 0 without installing (the package is already importable from this checkout).
What this cannot prove: every way a real network fails (proxies, TLS interception, partial outages).
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.local_real

REPO = Path(__file__).resolve().parents[2]
UNRESOLVABLE = "pypi.invalid"  # .invalid never resolves (RFC 2606)


def _exe(path: Path, body: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/usr/bin/env bash\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    """A copy of what setup.sh touches, with a .venv whose python and meshproof are this venv's."""
    root = tmp_path / "clone"
    shutil.copytree(REPO / "scripts", root / "scripts")
    shutil.copytree(REPO / ".ci", root / ".ci")
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    venv_python = sys.executable
    _exe(
        root / ".venv" / "bin" / "python",
        f"""if [ "$1 $2 $3" = "-m pip install" ]; then
  shift 3
  [ -n "${{STAND_IN_PIP_OK:-}}" ] && case " $* " in *" -e "*) exit 0 ;; esac
  exec {venv_python} -m pip install --index-url https://{UNRESOLVABLE}/simple --retries 0 --no-cache-dir "$@"
fi
exec {venv_python} "$@"
""",
    )
    meshproof = Path(venv_python).parent / "meshproof"
    _exe(
        root / ".venv" / "bin" / "meshproof",
        f'exec {meshproof} "$@" --mirror http://mirror.invalid\n',
    )
    return root


def run_setup(clone: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    go = shutil.which("go")
    path = os.pathsep.join(p for p in (str(Path(go).parent) if go else "", "/usr/bin", "/bin") if p)
    base = {
        "HOME": str(clone.parent / "home"),
        "PATH": path,
        "MESHPROOF_CACHE_DIR": str(clone.parent / "tool-cache"),
        "GOPROXY": "https://proxy.invalid",
        "GOMODCACHE": str(clone.parent / "gomodcache"),
        "GOFLAGS": "-modcacherw",
        "GOTOOLCHAIN": "local",
        "GOCACHE": str(clone.parent / "gocache"),
        "GONOSUMDB": "*",
        "PIP_RETRIES": "0",  # pip's build-isolation child retries 5 times otherwise
    }
    return subprocess.run(
        ["bash", str(clone / "scripts" / "setup.sh"), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**base, **env},
        cwd=clone,
    )


def test_pip_unable_to_download_is_one_line_and_fatal(clone: Path):
    done = run_setup(clone)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [done.stderr.strip()]
    line = done.stderr.strip()
    assert line.startswith(
        "setup: pip could not install meshproof's Python dependencies "
        "(No matching distribution found for setuptools>=77; is the package index reachable?)"
    )
    assert "PIP_INDEX_URL" in line and ".cache/setup/pip.log" in line


def test_cluster_tools_unable_to_download_are_summarised_and_leave_the_suite_to_explain(clone: Path):
    done = run_setup(clone, STAND_IN_PIP_OK="1")
    assert done.returncode == 0, done.stderr  # the suite's own preflight names what the provider needs
    (summary,) = done.stderr.splitlines()
    assert summary.startswith("setup: could not download kind, ")
    assert "istioctl" in summary and "helm" in summary
    assert "[Errno -2] Name or service not known" in summary or "[Errno -3]" in summary
    assert "meshproof tools install --mirror URL" in summary and "meshproof doctor" in summary
    assert "[Errno" not in done.stdout  # the raw per-tool errors stay in the log
    assert done.stdout.splitlines()[-1] == "setup: meshproof is set up in .venv"


def test_dev_setup_says_what_it_builds_and_fails_in_one_summary_line(clone: Path):
    done = run_setup(clone, "--dev", STAND_IN_PIP_OK="1")
    assert done.returncode == 1
    assert "setup: building fortio with go install into .cache/bin" in done.stdout
    assert "setup: fetching the upstream API definitions and building the contract checker" in done.stdout
    summary = done.stderr.strip().splitlines()[-1]
    assert summary.startswith("setup: could not build fortio, contract checker (see the line above)")
    assert "GOPROXY" in summary


def test_an_unknown_argument_is_one_line(clone: Path):
    done = run_setup(clone, "--devv")
    assert done.returncode == 2
    assert done.stderr == "setup: unknown argument '--devv' (use: bash scripts/setup.sh [--dev])\n"


def test_dev_setup_reports_nftables_failing_on_its_own_and_goes_on(clone: Path):
    """nft/ip serve only the native-nftables tests (they skip, or fail naming it): a warning, no Go advice."""
    _exe(clone / ".ci" / "install-fortio", "exit 0\n")
    _exe(clone / ".ci" / "contract" / "fetch-upstream", "exit 0\n")
    _exe(
        clone / ".ci" / "install-system-packages",
        "echo 'E: Unable to locate package nftables' >&2; exit 100\n",
    )
    done = run_setup(clone, "--dev", STAND_IN_PIP_OK="1")
    assert done.returncode == 0, done.stderr
    (warning,) = [line for line in done.stderr.splitlines() if line.startswith("setup: ")]
    assert warning.startswith("setup: could not install nftables/iproute2")
    assert "apt-get install nftables iproute2" in warning and "as root" in warning
    assert "Go" not in warning and "GOPROXY" not in done.stderr
    assert done.stdout.splitlines()[-1] == "setup: meshproof is set up in .venv"
