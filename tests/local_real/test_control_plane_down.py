"""scripts/control-plane/down.sh on real processes: it stops what up.sh recorded and leaves nothing behind.

Stand-ins for the tier's components are real processes started here (one ignores SIGTERM, as a hung
apiserver would; one listens on a recorded port); down.sh must kill each by its recorded pid, escalate to
SIGKILL, check no recorded port still listens and remove the state. It never touches a process it did not
record, nor a recorded pid that no longer runs the program recorded for it (a stale pids file). The real
tier's own teardown runs at the end of every scripts/test-engine.sh.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.local_real
DOWN = Path(__file__).resolve().parents[2] / "scripts" / "control-plane" / "down.sh"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/stat")
    return status.exists() and status.read_text().split()[2] != "Z"


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:  # whatever down.sh did, nothing of this test outlives it
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def spawn(
    processes: list[subprocess.Popen[bytes]], code: str, *, session: bool = False
) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=session)
    processes.append(proc)
    return proc


def record(state: Path, entries: dict[str, tuple[int, str]]) -> None:
    """pids ("name pid", as up.sh writes it) and pids.cmd ("name pid program")."""
    (state / "pids").write_text("".join(f"{n} {pid}\n" for n, (pid, _) in entries.items()))
    (state / "pids.cmd").write_text("".join(f"{n} {pid} {cmd}\n" for n, (pid, cmd) in entries.items()))


def run_down(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MESHPROOF_CONTROL_PLANE_DIR": str(state)}
    return subprocess.run(["bash", str(DOWN), *args], capture_output=True, text=True, timeout=60, env=env)


def test_down_stops_every_recorded_process_and_removes_the_state(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    listener = spawn(
        processes,
        f"import socket,time; s=socket.create_server(('127.0.0.1', {port})); time.sleep(300)",
        session=True,  # its own process group, as up.sh's setsid gives: signalled as a group
    )
    stubborn = spawn(
        processes, "import signal,time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)"
    )
    bystander = spawn(processes, "import time; time.sleep(300)")  # not recorded: must survive
    time.sleep(1)
    state = tmp_path / "state"
    state.mkdir()
    record(state, {"listener": (listener.pid, sys.executable), "stubborn": (stubborn.pid, sys.executable)})
    (state / "env").write_text(f"export MESHPROOF_CP_APISERVER_PORT={port}\n")

    done = run_down(state)

    assert done.returncode == 0, done.stderr
    assert "ignored SIGTERM" in done.stderr and "stubborn" in done.stderr
    for proc in (listener, stubborn):
        proc.wait(timeout=10)
        assert not alive(proc.pid)
    assert alive(bystander.pid)
    assert not state.exists()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_down_keeps_the_logs_when_asked_and_is_a_no_op_without_a_tier(tmp_path: Path) -> None:
    state = tmp_path / "state"
    (state / "logs").mkdir(parents=True)
    (state / "logs" / "kube-apiserver.log").write_text("kept\n")
    done = run_down(state, "--keep-state")
    assert done.returncode == 0, done.stderr
    assert (state / "logs" / "kube-apiserver.log").read_text() == "kept\n"
    assert "stopped 0 process(es)" in done.stderr


def test_down_never_signals_a_recorded_pid_that_now_runs_something_else(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    # a pids file left by a crash: the pid was reused by an unrelated process (not the recorded etcd)
    reused = spawn(processes, "import time; time.sleep(300)")
    time.sleep(0.5)
    state = tmp_path / "state"
    state.mkdir()
    record(state, {"etcd": (reused.pid, "/opt/cp/bin/etcd")})
    done = run_down(state)
    assert done.returncode == 0, done.stderr
    assert "stale pid" in done.stderr and "stopped 0 process(es)" in done.stderr
    assert alive(reused.pid)
    assert not state.exists()


def test_a_stale_pids_file_is_no_running_tier(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    """What scripts/test-engine.sh and up.sh ask before reusing a recorded tier."""
    other = spawn(processes, "import time; time.sleep(300)")
    ours = spawn(processes, "import time; time.sleep(300)")
    time.sleep(0.5)
    state = tmp_path / "state"
    state.mkdir()
    common = DOWN.parent / "common.sh"

    def running() -> bool:
        env = {**os.environ, "MESHPROOF_CONTROL_PLANE_DIR": str(state)}
        check = f". {common} && cp_tier_running"
        return subprocess.run(["bash", "-c", check], env=env, timeout=30).returncode == 0

    record(state, {"etcd": (other.pid, "/opt/cp/bin/etcd"), "gone": (2**22 + 1, sys.executable)})
    assert not running()
    record(state, {"etcd": (other.pid, "/opt/cp/bin/etcd"), "kwok": (ours.pid, sys.executable)})
    assert running()


def test_up_traps_errors_inside_its_functions() -> None:
    """up.sh's ERR trap (stop what was started) must fire in a failing function too: bash needs -E."""
    up = (DOWN.parent / "up.sh").read_text(encoding="utf-8")
    assert "\nset -Eeuo pipefail\n" in up and "trap on_error ERR" in up
    probe = 'set -Eeuo pipefail; trap "echo trapped; exit 3" ERR; f() { false; }; f'
    done = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, timeout=30)
    assert done.returncode == 3 and done.stdout == "trapped\n"
