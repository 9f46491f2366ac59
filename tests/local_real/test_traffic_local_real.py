"""The exact client argv `call` runs in a pod, run here against real loopback servers, through the parsers.

Real curl (this machine's; the pods run the pinned curlimages/curl, also >= 7.83) and, when installed,
the pinned fortio binary (`meshproof tools install fortio`) serve and call on 127.0.0.1 only. The servers
reset, close, refuse, stall and answer like Envoy's RBAC filter, so the transport errors the suites rely on
(curl 56 reset, 52 empty reply, 7 refused, 28 timeout; output-formats §5.3) are produced, not assumed.

What this cannot prove: that a sidecar or ztunnel produces these signals (only a cluster run shows that),
nor behaviour specific to the curl version in the image.
"""

from __future__ import annotations

import http.server
import socket
import socketserver
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fixtures_data.real_tools import real_tool
from fixtures_data.servers import serving_in_background

from meshproof.checks import responses
from meshproof.checks.identity import spiffe_id
from meshproof.traffic import (
    Response,
    TransportError,
    curl_command,
    fortio_tcp_command,
    new_marker,
    parse_curl_output,
    parse_fortio_tcp,
    tcp_payload,
)

pytestmark = pytest.mark.local_real

RBAC_REPLY = (
    b"HTTP/1.1 403 Forbidden\r\ncontent-length: 19\r\ncontent-type: text/plain\r\nserver: envoy\r\n\r\n"
    b"RBAC: access denied"
)


class RawServer(socketserver.ThreadingTCPServer):
    """Accepts on 127.0.0.1 and treats each connection the way `mode` says; counts connections."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.connections = 0
        super().__init__(("127.0.0.1", 0), _RawHandler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class _RawHandler(socketserver.BaseRequestHandler):
    server: RawServer

    def handle(self) -> None:
        self.server.connections += 1
        sock: socket.socket = self.request
        sock.settimeout(5)
        try:
            sock.recv(65536)
        except OSError:
            return
        if self.server.mode == "reset":  # like ztunnel dropping an accepted connection: RST, no FIN first
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()  # before socketserver's own shutdown(SHUT_WR), which would send a FIN
        elif self.server.mode == "rbac":
            sock.sendall(RBAC_REPLY)
        elif self.server.mode == "stall":
            time.sleep(3)
        # "close": FIN after reading the request, before any reply


class KeepAliveHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keeps connections open, so reuse is visible

    def do_GET(self) -> None:
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class CountingHTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    connections = 0

    def get_request(self) -> tuple[socket.socket, object]:
        self.connections += 1
        return super().get_request()


@pytest.fixture
def raw_server(request: pytest.FixtureRequest) -> Iterator[RawServer]:
    with serving_in_background(RawServer(request.param)) as server:
        yield server


@pytest.fixture
def keepalive_server() -> Iterator[CountingHTTPServer]:
    with serving_in_background(CountingHTTPServer(("127.0.0.1", 0), KeepAliveHandler)) as server:
        yield server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_curl(url: str, **kwargs: object) -> list[Response]:
    real_tool("curl")
    marker = new_marker()
    argv = curl_command(url, marker=marker, **{"request_timeout": 2.0, **kwargs})  # type: ignore[arg-type]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    return parse_curl_output(result.stdout, marker, target=url)


# --- curl -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw_server", "exit_code", "error"),
    [("reset", 56, TransportError.RESET), ("close", 52, TransportError.EOF)],
    indirect=["raw_server"],
)
def test_curl_reports_an_l4_close_the_way_the_mesh_documents(
    raw_server: RawServer, exit_code: int, error: TransportError
) -> None:
    (response,) = run_curl(f"http://127.0.0.1:{raw_server.port}/debug")
    assert (response.status, response.exit_code, response.transport_error) == (None, exit_code, error)
    assert responses.denied_l4()(response)


def test_curl_refused_is_not_an_l4_deny() -> None:
    (response,) = run_curl(f"http://127.0.0.1:{free_port()}/debug")
    assert (response.exit_code, response.transport_error) == (7, TransportError.REFUSED)
    assert not responses.denied_l4()(response)


@pytest.mark.parametrize("raw_server", ["rbac"], indirect=True)
def test_curl_reads_an_rbac_403(raw_server: RawServer) -> None:
    (response,) = run_curl(f"http://127.0.0.1:{raw_server.port}/debug")
    assert response.status == 403 and response.headers["server"] == "envoy"
    assert responses.denied_l7()(response)


@pytest.mark.parametrize("raw_server", ["stall"], indirect=True)
def test_each_request_is_cut_by_its_own_timeout(raw_server: RawServer) -> None:
    started = time.monotonic()
    got = run_curl(f"http://127.0.0.1:{raw_server.port}/debug", request_timeout=0.5, count=2)
    elapsed = time.monotonic() - started
    assert [r.transport_error for r in got] == [TransportError.TIMEOUT] * 2
    assert all(r.exit_code == 28 and r.duration_s is not None and r.duration_s < 1.5 for r in got)
    assert elapsed < 2.5  # two requests of 0.5 s each, not the 3 s the server stalls


def test_new_connection_per_request_versus_reuse(keepalive_server: CountingHTTPServer) -> None:
    url = f"http://127.0.0.1:{keepalive_server.server_address[1]}/"
    fresh = run_curl(url, count=3, new_connection=True)
    assert [r.status for r in fresh] == [200, 200, 200] and keepalive_server.connections == 3
    reused = run_curl(url, count=3, new_connection=False)
    assert [r.status for r in reused] == [200, 200, 200] and keepalive_server.connections == 4


# --- fortio -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fortio() -> Path:
    return real_tool("fortio")


@pytest.fixture(scope="module")
def fortio_server(fortio: Path) -> Iterator[tuple[int, int]]:
    http_port, tcp_port = free_port(), free_port()
    process = subprocess.Popen(
        [
            str(fortio),
            "server",
            "-http-port",
            f"127.0.0.1:{http_port}",
            "-tcp-port",
            f"127.0.0.1:{tcp_port}",
            "-udp-port",
            "disabled",
            "-grpc-port",
            "disabled",
            "-redirect-port",
            "disabled",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", tcp_port), timeout=0.2).close()
                socket.create_connection(("127.0.0.1", http_port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            pytest.fail("fortio server did not start listening within 10 s")
        yield http_port, tcp_port
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_fortio_debug_reflects_what_the_server_received(fortio_server: tuple[int, int]) -> None:
    client = spiffe_id("cluster.local", "demo", "client")
    server = spiffe_id("cluster.local", "demo", "server")
    xfcc = f'By={server};Hash=9b1e0c2d;Subject="";URI={client}'  # set by curl here, by a sidecar in the mesh
    (response,) = run_curl(
        f"http://127.0.0.1:{fortio_server[0]}/debug",
        headers={"X-Forwarded-Client-Cert": xfcc, "X-Multi": "a"},
    )
    assert response.status == 200
    assert response.request_headers["x-forwarded-client-cert"] == [xfcc]
    assert response.source_address == "127.0.0.1"
    assert response.server_hostname
    assert responses.mtls_with_identity(client, server_identity=server)(response)
    (plain,) = run_curl(f"http://127.0.0.1:{fortio_server[0]}/debug")
    assert responses.plaintext()(plain) and not responses.mtls_with_identity(client)(plain)


def run_fortio_tcp(fortio: Path, port: int, count: int = 2) -> list[Response]:
    marker = new_marker()
    argv = fortio_tcp_command("127.0.0.1", port, payload=tcp_payload(marker), request_timeout=2, count=count)
    argv[0] = str(fortio)
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    return parse_fortio_tcp(
        result.stdout, result.stderr, result.returncode, payload=tcp_payload(marker), count=count
    )


def test_fortio_tcp_echo_round_trip(fortio: Path, fortio_server: tuple[int, int]) -> None:
    got = run_fortio_tcp(fortio, fortio_server[1])
    assert len(got) == 2 and all(r.transport_error is TransportError.NONE and r.body for r in got)


@pytest.mark.parametrize("raw_server", ["reset", "close"], indirect=True)
def test_fortio_tcp_sees_a_closed_connection_as_an_l4_deny(fortio: Path, raw_server: RawServer) -> None:
    got = run_fortio_tcp(fortio, raw_server.port)
    assert len(got) == 2
    assert all(r.transport_error in (TransportError.RESET, TransportError.EOF) for r in got)
    assert all(responses.denied_l4()(r) for r in got)


def test_fortio_tcp_refused(fortio: Path) -> None:
    got = run_fortio_tcp(fortio, free_port(), count=1)
    assert [r.transport_error for r in got] == [TransportError.REFUSED]
