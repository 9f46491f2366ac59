"""Port-forward plumbing: a loopback listener that pumps every accepted connection through its own stream.

The streams here are socket pairs served by an in-process echo server, standing in for the kubernetes
client's PortForward object (same `socket(port)`, `error(port)`, `close()` surface). What this cannot prove:
the websocket port-forward protocol against a real API server and kubelet, or the client library's
proxy thread; those need a cluster.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest

from meshproof.kube_stream import PortForwarder


class EchoStream:
    """One forwarded connection: the far end upper-cases what it receives, like a tiny pod server."""

    def __init__(self, error: str | None = None) -> None:
        self.app_side, self.pod_side = socket.socketpair()
        self._error = error
        self.closed = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        with self.pod_side:
            while data := self.pod_side.recv(4096):
                self.pod_side.sendall(data.upper())

    def socket(self, port_number: int) -> socket.socket:
        assert port_number == 8080
        return self.app_side

    def error(self, port_number: int) -> str | None:
        return self._error

    def close(self) -> None:
        self.closed = True
        self.app_side.close()


def roundtrip(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(payload)
        received = b""
        while len(received) < len(payload):
            chunk = conn.recv(4096)
            if not chunk:
                break
            received += chunk
        return received


def test_bytes_flow_both_ways_for_concurrent_connections_each_on_its_own_stream():
    streams: list[EchoStream] = []

    def open_stream() -> EchoStream:
        streams.append(EchoStream())
        return streams[-1]

    with PortForwarder(open_stream, 8080, "pod ns/p:8080") as forwarder:
        assert forwarder._listener.getsockname()[0] == "127.0.0.1"
        results: dict[int, bytes] = {}
        threads = [
            threading.Thread(
                target=lambda i=i: results.__setitem__(i, roundtrip(forwarder.local_port, b"hi %d" % i))
            )
            for i in range(3)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(5)
        assert results == {0: b"HI 0", 1: b"HI 1", 2: b"HI 2"}
        big = bytes(range(256)) * 1024  # 256 KiB crosses many pump chunks
        assert roundtrip(forwarder.local_port, big) == big.upper()
    assert len(streams) == 4


def test_closing_releases_the_port_and_the_streams():
    streams: list[EchoStream] = []

    def open_stream() -> EchoStream:
        streams.append(EchoStream())
        return streams[-1]

    with PortForwarder(open_stream, 8080, "pod ns/p:8080") as forwarder:
        port = forwarder.local_port
        idle = socket.create_connection(("127.0.0.1", port), timeout=5)  # left open by the client
        deadline = time.monotonic() + 5
        while not streams and time.monotonic() < deadline:
            time.sleep(0.01)
    assert streams and streams[0].closed
    assert idle.recv(1) == b""  # the forwarder hung up on the client
    idle.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2)


def test_stream_errors_are_recorded_and_a_failed_open_drops_the_connection():
    attempts = {"n": 0}

    def open_stream() -> EchoStream:
        attempts["n"] += 1
        if attempts["n"] == 1:
            raise RuntimeError("Handshake status 404 Not Found")
        return EchoStream(error="an error occurred forwarding 8080 -> 8080: connection refused")

    with PortForwarder(open_stream, 8080, "pod ns/p:8080") as forwarder:
        with socket.create_connection(("127.0.0.1", forwarder.local_port), timeout=5) as conn:
            assert conn.recv(1) == b""  # no stream: the client sees the connection close
        assert roundtrip(forwarder.local_port, b"x") == b"X"
    assert (
        forwarder.errors[0]
        == "pod ns/p:8080: cannot open port-forward stream: Handshake status 404 Not Found"
    )
    assert "connection refused" in forwarder.errors[1]
