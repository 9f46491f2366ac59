"""One mutual-TLS handshake on 127.0.0.1 between Python ssl (OpenSSL) peers; the server reports what it saw.

`trust_pem` is what the server trusts for client certificates; `client_trust_pem`, if given, what the
client trusts for the server's (else the client does not judge the server). With `partial_chain` an
intermediate CA may be the trust anchor (how a cert-manager issuer CA is trusted on its own); `record_only`
also skips the validity-time check, so a recording server accepts whatever chains to `trust_pem` and hands
the chain over.
"""

from __future__ import annotations

import _ssl
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

X509_V_FLAG_NO_CHECK_TIME = 0x200000  # OpenSSL x509_vfy.h; Python's ssl exposes no name for it


@dataclass(frozen=True)
class Party:
    chain_pem: str  # leaf first
    key_pem: str


@dataclass(frozen=True)
class ServerView:
    accepted: bool
    error: str
    peer_chain_pem: str


def handshake(
    server: Party,
    client: Party,
    trust_pem: str,
    workdir: Path,
    *,
    partial_chain: bool = False,
    record_only: bool = False,
    client_trust_pem: str | None = None,
    timeout: float = 5.0,
) -> ServerView:
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(
        _write(workdir / "s.pem", server.chain_pem), _write(workdir / "s.key", server.key_pem)
    )
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    server_ctx.load_verify_locations(cadata=trust_pem)
    flags = server_ctx.verify_flags
    if partial_chain:
        flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    if record_only:
        flags |= X509_V_FLAG_NO_CHECK_TIME
    server_ctx.verify_flags = ssl.VerifyFlags(flags)

    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.check_hostname = False  # SPIFFE certificates carry no DNS name; the chain is still verified
    if client_trust_pem is None:
        client_ctx.verify_mode = ssl.CERT_NONE  # only the server's verdict on the client is under test
    else:
        client_ctx.load_verify_locations(cadata=client_trust_pem)
    client_ctx.load_cert_chain(
        _write(workdir / "c.pem", client.chain_pem), _write(workdir / "c.key", client.key_pem)
    )

    seen: dict[str, str] = {}
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(timeout)

        def serve() -> None:
            try:
                conn, _ = listener.accept()
                with server_ctx.wrap_socket(conn, server_side=True) as tls:
                    seen["chain"] = "".join(_peer_chain(tls))
                    tls.sendall(b"ok")
            except (OSError, ssl.SSLError) as exc:
                seen["error"] = str(exc)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        try:
            with (
                socket.create_connection(listener.getsockname(), timeout=timeout) as raw,
                client_ctx.wrap_socket(raw) as tls_client,
            ):
                tls_client.recv(2)
        except (OSError, ssl.SSLError) as exc:
            seen.setdefault("client_error", str(exc))
        thread.join(timeout)
    if thread.is_alive():
        raise AssertionError("TLS server thread did not finish")
    return ServerView(
        accepted="chain" in seen, error=seen.get("error", ""), peer_chain_pem=seen.get("chain", "")
    )


def _peer_chain(tls: ssl.SSLSocket) -> Iterator[str]:
    getter = getattr(tls, "get_unverified_chain", None) or tls._sslobj.get_unverified_chain  # type: ignore[union-attr]
    for cert in getter() or []:
        encoded = cert.public_bytes(_ssl.ENCODING_PEM)
        yield encoded if isinstance(encoded, str) else encoded.decode()


def _write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)
