"""A precise delay server for calibration: HTTP/1.1 keep-alive on loopback, one port per planted delay.

Each response leaves `delay_ms` after its request was read, to within a few microseconds: the server is
one thread with one event loop, and for the last 0.5 ms before a response is due it **busy-waits**
(polls its sockets without blocking) instead of sleeping. A sleep, and fortio's own `?delay=`
(issue 12: ~1.1 ms added to any sub-millisecond value), rounds to the scheduler's timer slack, far
above the 0.05-0.2 ms shifts a calibration plants. One thread also means no lock handoff between
request threads. With nothing due it blocks in select, so an idle server costs nothing.

    python -m meshproof.bench.delayserver --delays-ms 0,0,0.05,0.1,0.2

prints one JSON line {"ports": [...], "delays_ms": [...]} and serves until SIGTERM (or, with
--exit-on-stdin-eof, until its stdin closes: a calibration's child dies with its parent).
"""

from __future__ import annotations

import argparse
import heapq
import json
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

LOOPBACK = "127.0.0.1"
MAX_DELAY_MS = 1000.0
_BODY = b"ok\n"
_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
    + str(len(_BODY)).encode()
    + b"\r\n\r\n"
    + _BODY
)
_MAX_HEAD = 64 * 1024
# the last stretch before a response is due is spun, not slept: 0.5 ms covers every planted shift
# (0.05-0.2 ms) and a sleeper's wake-up latency
SPIN_NS = 500_000


@dataclass
class _Connection:
    sock: socket.socket
    delay_ns: int
    inbox: bytearray = field(default_factory=bytearray)
    outbox: bytearray = field(default_factory=bytearray)
    close_after: bool = False


def parse_requests(buffer: bytearray) -> tuple[int, bool, bool]:
    """(complete requests at the head of `buffer` consumed from it, the last asked to close, malformed)."""
    complete = 0
    close = False
    while True:
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            return complete, close, len(buffer) > _MAX_HEAD
        head = bytes(buffer[:end]).decode("latin-1").split("\r\n")
        length = 0
        close = False
        for line in head[1:]:
            name, _, value = line.partition(":")
            key = name.strip().lower()
            if key == "content-length":
                try:
                    length = int(value.strip())
                except ValueError:
                    return complete, True, True
            elif key == "connection" and value.strip().lower() == "close":
                close = True
        if len(buffer) < end + 4 + length:
            return complete, close, False
        del buffer[: end + 4 + length]
        complete += 1


class DelayServer:
    """Listens on one loopback port per delay; `serve()` runs the loop until `stop()`."""

    def __init__(self, delays_ms: Sequence[float]) -> None:
        if not delays_ms:
            raise ValueError("at least one delay")
        for delay in delays_ms:
            if not 0 <= delay <= MAX_DELAY_MS:
                raise ValueError(f"delay {delay:g} ms is outside 0..{MAX_DELAY_MS:g}")
        self.delays_ms = list(delays_ms)
        self._selector = selectors.DefaultSelector()
        self._listeners: list[socket.socket] = []
        # (due time ns, sequence, connection): responses waiting for their delay to pass
        self._due: list[tuple[int, int, _Connection]] = []
        self._sequence = 0
        self._stopping = threading.Event()
        for delay in delays_ms:
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((LOOPBACK, 0))
            listener.listen(256)
            listener.setblocking(False)
            self._selector.register(listener, selectors.EVENT_READ, int(delay * 1_000_000))
            self._listeners.append(listener)

    @property
    def ports(self) -> list[int]:
        return [int(s.getsockname()[1]) for s in self._listeners]

    def stop(self) -> None:
        self._stopping.set()

    def serve(self) -> None:
        try:
            while not self._stopping.is_set():
                self._send_due()
                timeout = self._wait_s()
                for key, _ in self._selector.select(timeout):
                    if isinstance(key.data, int):
                        self._accept(key.fileobj, key.data)  # type: ignore[arg-type]
                    else:
                        self._read(key.data)
        finally:
            self._close_all()

    def _wait_s(self) -> float:
        """How long select may block: nothing due, until a request wakes us; a response due within
        SPIN_NS, not at all (busy-wait); further off, until SPIN_NS before it (a long spin on a shared
        machine gets its process preempted, which makes it later, not earlier)."""
        if not self._due:
            return 0.1
        ahead = self._due[0][0] - time.perf_counter_ns() - SPIN_NS
        return max(0.0, ahead / 1e9)

    def _accept(self, listener: socket.socket, delay_ns: int) -> None:
        try:
            sock, _ = listener.accept()
        except BlockingIOError:
            return
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._selector.register(sock, selectors.EVENT_READ, _Connection(sock, delay_ns))

    def _read(self, conn: _Connection) -> None:
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(conn)
            return
        arrived = time.perf_counter_ns()
        conn.inbox += data
        complete, close, malformed = parse_requests(conn.inbox)
        if malformed:
            self._drop(conn)
            return
        for _ in range(complete):
            self._sequence += 1
            heapq.heappush(self._due, (arrived + conn.delay_ns, self._sequence, conn))
        conn.close_after = conn.close_after or close

    def _send_due(self) -> None:
        now = time.perf_counter_ns()
        while self._due and self._due[0][0] <= now:
            _, _, conn = heapq.heappop(self._due)
            if conn.sock.fileno() < 0:
                continue
            conn.outbox += _RESPONSE
            try:
                sent = conn.sock.send(conn.outbox)
                del conn.outbox[:sent]
                if conn.outbox:  # loopback with a few bytes: not expected; finish blocking, briefly
                    conn.sock.settimeout(1.0)
                    conn.sock.sendall(conn.outbox)
                    conn.sock.setblocking(False)
                    conn.outbox.clear()
            except OSError:
                self._drop(conn)
                continue
            if conn.close_after and not any(c is conn for _, _, c in self._due):
                self._drop(conn)

    def _drop(self, conn: _Connection) -> None:
        if conn.sock.fileno() >= 0:
            with suppress(KeyError, ValueError):
                self._selector.unregister(conn.sock)
            conn.sock.close()

    def _close_all(self) -> None:
        for key in list(self._selector.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        self._selector.close()


@contextmanager
def serving_in_process(delays_ms: Sequence[float], *, start_timeout_s: float = 10.0) -> Iterator[list[str]]:
    """In a child process of its own (calibration: the load generator's CPU accounting and the server's
    busy-wait stay apart from this process); yields one base URL per delay, stops the child after."""
    argv = [
        sys.executable,
        "-m",
        "meshproof.bench.delayserver",
        "--delays-ms",
        ",".join(f"{d:g}" for d in delays_ms),
        "--exit-on-stdin-eof",
    ]
    child = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        ready = _read_line(child.stdout, start_timeout_s)
        if not ready:
            raise RuntimeError(f"the delay server did not start within {start_timeout_s:g}s")
        ports = json.loads(ready)["ports"]
        yield [f"http://{LOOPBACK}:{port}" for port in ports]
    finally:
        child.terminate()
        try:
            child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(timeout=5)


def _read_line(stream: object, timeout_s: float) -> str:
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(stream.readline()), daemon=True)  # type: ignore[attr-defined]
    reader.start()
    reader.join(timeout_s)
    return line[0] if line else ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--delays-ms", default="0", help="comma-separated delays, one port each")
    parser.add_argument("--exit-on-stdin-eof", action="store_true", help="stop when stdin closes")
    args = parser.parse_args(argv)
    try:
        server = DelayServer([float(d) for d in args.delays_ms.split(",") if d.strip()])
    except ValueError as exc:
        print(f"delayserver: {exc}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: server.stop())
    if args.exit_on_stdin_eof:
        # the parent holds our stdin: when it goes away (even killed), so do we
        def stop_on_eof() -> None:
            sys.stdin.read()
            server.stop()

        threading.Thread(target=stop_on_eof, daemon=True).start()
    print(json.dumps({"ports": server.ports, "delays_ms": server.delays_ms}), flush=True)
    with suppress(KeyboardInterrupt):
        server.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
