"""Every cluster request is bounded and quiet: one attempt, a connect and a read timeout, one line.

The servers are real loopback sockets: one accepts every connection and never answers (a hung or
black-holed API server), one speaks just enough websocket to open an exec stream, then stays silent
longer than the opening timeout before the command's output arrives (a long-running `kubectl exec`).
What this cannot prove: how a real API server behind a load balancer or VPN fails (RST, half-open
connections after minutes), or exec/port-forward through a real kubelet.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client as k8s

from meshproof import kube_connect
from meshproof.kube import Cluster, ClusterUnreachable, ExecError

TOKEN = "sekret-token-0123456789"


class LoopbackServer:
    """A listener on 127.0.0.1 that hands each accepted connection to `serve`, counting connections."""

    def __init__(self, serve: Callable[[socket.socket], None]) -> None:
        self._serve = serve
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = int(self._listener.getsockname()[1])
        self.accepted = 0
        self.first_accept: float | None = None  # time.monotonic() of the first connection
        self._stop = threading.Event()
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for conn in self._held:
            conn.close()
        self._listener.close()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            self.accepted += 1
            self.first_accept = self.first_accept or time.monotonic()
            self._held.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()


def never_answer(conn: socket.socket) -> None:
    """Accept, read nothing, say nothing; the connection stays open until the server stops."""


def kubeconfig_for(path: Path, server: str) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "silent",
                "clusters": [{"name": "silent", "cluster": {"server": server}}],
                "users": [{"name": "u", "user": {"token": TOKEN}}],
                "contexts": [{"name": "silent", "context": {"cluster": "silent", "user": "u"}}],
            }
        )
    )
    return path


@pytest.fixture
def silent() -> Iterator[LoopbackServer]:
    with LoopbackServer(never_answer) as server:
        yield server


def test_cleanup_against_a_server_that_never_answers_is_one_line_within_15s(
    silent: LoopbackServer, tmp_path: Path
):
    """The command as a user runs it (real defaults, https as every real kubeconfig has)."""
    kubeconfig = kubeconfig_for(tmp_path / "kubeconfig", f"https://127.0.0.1:{silent.port}")
    meshproof = Path(sys.executable).parent / "meshproof"
    done = subprocess.run(
        [str(meshproof), "cleanup", "--all", "--provider", "existing", "--kubeconfig", str(kubeconfig)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"},
    )
    # From the moment meshproof reached the server (the CLI's own start-up, several seconds on a loaded
    # machine, is not waiting on the cluster).
    assert silent.first_accept is not None
    waited = time.monotonic() - silent.first_accept
    assert done.returncode != 0
    assert waited < 15, f"waited {waited:.1f}s on the silent server"
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(
        f"meshproof cleanup: current context: cluster silent (https://127.0.0.1:{silent.port})"
    )
    assert "did not answer in time" in lines[0] and len(lines[0]) < 300
    assert TOKEN not in done.stderr
    assert silent.accepted == 1  # one attempt, no retry storm


def test_the_version_probe_is_one_attempt_bounded_by_its_timeout(silent: LoopbackServer, tmp_path: Path):
    cluster = Cluster(None, kubeconfig_for(tmp_path / "kc", f"http://127.0.0.1:{silent.port}"), "r1")
    started = time.monotonic()
    with pytest.raises(ClusterUnreachable) as err:
        cluster.server_version(timeout=0.5)
    assert time.monotonic() - started < 3
    assert silent.accepted == 1
    assert "accepted the connection but did not answer in time" in str(err.value)
    assert "\n" not in str(err.value) and "Max retries" not in str(err.value)


def test_a_request_that_names_no_timeout_gets_the_default_read_timeout(
    silent: LoopbackServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Discovery in the dynamic client passes no timeout; without a default it would wait forever."""
    monkeypatch.setattr(kube_connect, "REQUEST_READ_TIMEOUT_S", 0.5)
    cluster = Cluster(None, kubeconfig_for(tmp_path / "kc", f"http://127.0.0.1:{silent.port}"), "r1")
    started = time.monotonic()
    with pytest.raises(Exception, match="Read timed out"):
        k8s.VersionApi(cluster.api_client).get_code()
    assert time.monotonic() - started < 3
    assert silent.accepted == 1


def test_an_exec_stream_that_never_opens_fails_in_one_line_within_its_opening_timeout(
    silent: LoopbackServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(kube_connect, "STREAM_OPEN_TIMEOUT_S", 0.5)
    cluster = Cluster(None, kubeconfig_for(tmp_path / "kc", f"http://127.0.0.1:{silent.port}"), "r1")
    started = time.monotonic()
    with pytest.raises(ExecError) as err:
        cluster.exec("curl-0", "x", ["true"], timeout=30)
    # well under the command's own 30 s: the 0.5 s opening bound ended it (slack for a loaded 2-core CI host)
    assert time.monotonic() - started < 10
    assert "\n" not in str(err.value) and "timed out" in str(err.value)


# --- a stream that opens, then stays silent longer than the opening timeout ----------------------------

_WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def _frame(opcode: int, payload: bytes) -> bytes:
    assert len(payload) < 126
    return bytes([0x80 | opcode, len(payload)]) + payload


def slow_exec(delay: float) -> Callable[[socket.socket], None]:
    """Answer the websocket upgrade (v4.channel.k8s.io), wait `delay`, then stdout, exit 0, close."""

    def serve(conn: socket.socket) -> None:
        request = b""
        while b"\r\n\r\n" not in request:
            request += conn.recv(4096)
        headers = dict(line.split(": ", 1) for line in request.decode().split("\r\n")[1:] if ": " in line)
        key = headers.get("Sec-WebSocket-Key") or headers["sec-websocket-key"]
        accept = base64.b64encode(hashlib.sha1((key + _WS_GUID).encode()).digest()).decode()
        conn.sendall(
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Protocol: v4.channel.k8s.io\r\n\r\n"
            ).encode()
        )
        time.sleep(delay)
        conn.sendall(_frame(0x2, b"\x01done after a while\n"))
        conn.sendall(_frame(0x2, b"\x03" + json.dumps({"metadata": {}, "status": "Success"}).encode()))
        conn.sendall(_frame(0x8, b"\x03\xe8"))

    return serve


def test_an_open_stream_outlives_the_opening_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Long-lived reads are the command's own deadline, not the short timeout that bounds opening."""
    monkeypatch.setattr(kube_connect, "STREAM_OPEN_TIMEOUT_S", 0.3)
    with LoopbackServer(slow_exec(delay=1.5)) as server:
        cluster = Cluster(None, kubeconfig_for(tmp_path / "kc", f"http://127.0.0.1:{server.port}"), "r1")
        result = cluster.exec("curl-0", "x", ["sleep", "1"], timeout=20)
    assert (result.exit_code, result.stdout) == (0, "done after a while\n")
