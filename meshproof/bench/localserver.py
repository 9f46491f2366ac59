"""A small HTTP/1.1 keep-alive echo server on loopback, with an optional fixed delay per request.

It exists for the harness's own tests and for planting a slowdown (`delay_ms`) in a regression check;
it is not a performance reference (use `fortio server` for the harness-ceiling measurement).

    python -m meshproof.bench.localserver --port 8080 --delay-ms 20
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOOPBACK = "127.0.0.1"


class _EchoHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the servers a mesh fronts
    # headers and body go out in separate writes; with Nagle on, the body waits for the client's
    # delayed ACK (~40 ms per request on Linux)
    disable_nagle_algorithm = True
    delay_s = 0.0

    def _reply(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b"ok\n"
        if self.delay_s:
            time.sleep(self.delay_s)
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = _reply
    do_POST = _reply

    def log_message(self, format: str, *args: object) -> None:
        return


class EchoServer(ThreadingHTTPServer):
    daemon_threads = True
    # a burst of connections at start must not be refused
    request_queue_size = 128


def make_server(port: int = 0, delay_ms: float = 0.0) -> EchoServer:
    handler = type("DelayedEchoHandler", (_EchoHandler,), {"delay_s": delay_ms / 1000.0})
    return EchoServer((LOOPBACK, port), handler)


@contextmanager
def serving(delay_ms: float = 0.0) -> Iterator[str]:
    """Serve on a free loopback port in a background thread; yields the base URL."""
    server = make_server(0, delay_ms)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield f"http://{LOOPBACK}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    args = parser.parse_args(argv)
    server = make_server(args.port, args.delay_ms)
    print(f"serving on http://{LOOPBACK}:{server.server_address[1]} (delay {args.delay_ms:g} ms)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
