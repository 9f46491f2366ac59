"""Traffic sent from a client workload, and the Response model that checks read.

The Response model is the contract between traffic (which produces it) and checks (which judge it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class TransportError(StrEnum):
    """How a request failed below HTTP, as the client saw it."""

    NONE = "none"
    RESET = "reset"  # connection reset by peer (curl exit 56, "read: connection reset by peer")
    REFUSED = "refused"  # connection refused (curl exit 7)
    TIMEOUT = "timeout"  # no answer within the per-request timeout (curl exit 28)
    EOF = "eof"  # connection closed before a response (curl exit 52 "Empty reply from server")
    TLS = "tls"  # TLS handshake failure (curl exit 35)
    DNS = "dns"  # name not resolved (curl exit 6)
    OTHER = "other"


@dataclass(frozen=True)
class Response:
    """One request's outcome as the client saw it.

    `status` is None when no HTTP response arrived (then `transport_error` says why). `headers` keys
    are lower-case. `request_headers` are the headers the server says it received (from an echo server
    that reflects the request), lower-case keys; `source_address` likewise as the server saw it.
    """

    status: int | None
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    exit_code: int = 0
    transport_error: TransportError = TransportError.NONE
    error_message: str = ""
    request_headers: dict[str, list[str]] = field(default_factory=dict)
    source_address: str | None = None
    server_hostname: str | None = None
    duration_s: float | None = None
    target: str = ""
