"""The streaming half of the Kubernetes API: exec (stdout, stderr, exit code) and port-forward.

Exec speaks the channel protocol (v4/v5.channel.k8s.io): 0 stdin, 1 stdout, 2 stderr, 3 error. Channel 3
carries a metav1.Status at the end: Success means exit 0; NonZeroExitCode carries the code in
details.causes[reason=ExitCode]; any other failure means the command never ran (no such container,
executable not found).

Port-forward opens one API stream per accepted local connection (as kubectl does), so several clients
can use the forwarded port at the same time.
"""

from __future__ import annotations

import contextlib
import json
import logging
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger("meshproof.kube")

STDOUT, STDERR, ERROR = 1, 2, 3
_UPDATE_SLICE = 0.5  # seconds per websocket poll, so a deadline is checked often
_PUMP_CHUNK = 64 * 1024


class ExecError(Exception):
    """The command could not be run (or its outcome not learned); the message is one line."""


class ExecTimeout(ExecError):
    """The command did not finish within its timeout."""


@dataclass(frozen=True)
class ExecResult:
    stdout: str
    stderr: str
    exit_code: int

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


class ChannelStream(Protocol):
    """The part of kubernetes.stream.ws_client.WSClient that exec needs."""

    def is_open(self) -> bool: ...
    def update(self, timeout: float = 0) -> None: ...
    def read_channel(self, channel: int, timeout: float = 0) -> Any: ...
    def write_stdin(self, data: Any) -> None: ...
    def close_channel(self, channel: int) -> None: ...
    def close(self, **kwargs: Any) -> None: ...


def parse_exec_status(payload: str | bytes) -> int:
    """The exit code from the error channel's Status; raises ExecError when the command did not run."""
    text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
    if not text.strip():
        raise ExecError("the exec stream closed without an exit status (connection lost?)")
    try:
        status = json.loads(text)
    except json.JSONDecodeError:
        raise ExecError(f"unreadable exec status: {text.strip()[:200]}") from None
    if status.get("status") == "Success":
        return 0
    if status.get("reason") == "NonZeroExitCode":
        for cause in (status.get("details") or {}).get("causes") or []:
            if cause.get("reason") == "ExitCode":
                try:
                    return int(cause.get("message", ""))
                except ValueError:
                    break
        raise ExecError(f"non-zero exit without a readable code: {status.get('message', '')}")
    raise ExecError(str(status.get("message") or status.get("reason") or text.strip()[:200]))


def run_exec_stream(
    ws: ChannelStream,
    *,
    stdin: str | None,
    timeout: float,
    describe: str,
    clock: Callable[[], float] = time.monotonic,
) -> ExecResult:
    """Drive an open exec stream to its end: send stdin, collect stdout/stderr/status until it closes."""
    out, err, status = bytearray(), bytearray(), bytearray()

    def drain() -> None:
        out.extend(_as_bytes(ws.read_channel(STDOUT)))
        err.extend(_as_bytes(ws.read_channel(STDERR)))
        status.extend(_as_bytes(ws.read_channel(ERROR)))

    deadline = clock() + timeout
    try:
        if stdin is not None:
            ws.write_stdin(stdin.encode())
            # v5 only: signals EOF so `cat`-like commands end; v4 servers cannot close stdin at all.
            ws.close_channel(0)
        while ws.is_open():
            remaining = deadline - clock()
            if remaining <= 0:
                raise ExecTimeout(f"{describe}: no exit after {timeout:g}s")
            ws.update(timeout=min(remaining, _UPDATE_SLICE))
            drain()
        drain()
    finally:
        ws.close()
    exit_code = parse_exec_status(bytes(status))
    return ExecResult(out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), exit_code)


def _as_bytes(data: Any) -> bytes:
    if not data:
        return b""
    return data if isinstance(data, bytes) else str(data).encode()


class ForwardedStream(Protocol):
    """The part of kubernetes.stream.ws_client.PortForward that port_forward needs."""

    def socket(self, port_number: int) -> Any: ...
    def error(self, port_number: int) -> str | None: ...
    def close(self) -> None: ...


class PortForwarder:
    """A loopback listener that pumps each accepted connection through its own port-forward stream."""

    def __init__(self, open_stream: Callable[[], ForwardedStream], remote_port: int, describe: str) -> None:
        self._open_stream = open_stream
        self._remote_port = remote_port
        self._describe = describe
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.local_port: int = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self.errors: list[str] = []
        self._acceptor = threading.Thread(
            target=self._accept_loop, name=f"port-forward {describe}", daemon=True
        )

    def __enter__(self) -> PortForwarder:
        self._acceptor.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        with self._lock:
            for sock in self._open:
                _close_quietly(sock)
        self._acceptor.join(timeout=5)
        for thread in list(self._threads):
            thread.join(timeout=5)

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # listener closed
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            stream = self._open_stream()
        except Exception as exc:
            self._note_error(f"{self._describe}: cannot open port-forward stream: {exc}")
            _close_quietly(conn)
            return
        remote = stream.socket(self._remote_port)
        with self._lock:
            self._open.update((conn, remote))
        try:
            _pump(conn, remote, self._stop)
        finally:
            with self._lock:
                self._open.difference_update((conn, remote))
            _close_quietly(conn)
            _close_quietly(remote)
            stream.close()
            error = stream.error(self._remote_port)
            if error:
                self._note_error(f"{self._describe}: {error.strip()}")

    def _note_error(self, message: str) -> None:
        log.warning("%s", message)
        self.errors.append(message)


def _pump(a: Any, b: Any, stop: threading.Event) -> None:
    """Copy bytes both ways until either side closes (or stop is set)."""
    peers = {a: b, b: a}
    while not stop.is_set():
        try:
            readable, _, _ = select.select(list(peers), [], [], 0.2)
        except (OSError, ValueError):
            return  # a socket was closed under us
        for src in readable:
            try:
                data = src.recv(_PUMP_CHUNK)
            except OSError:
                return
            if not data:
                return
            try:
                peers[src].sendall(data)
            except OSError:
                return


def _close_quietly(sock: Any) -> None:
    with contextlib.suppress(OSError):
        sock.close()
