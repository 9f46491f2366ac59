"""Pure, composable checks over `meshproof.traffic.Response`.

A `Check` is a named function Response -> Verdict. Build them with the factories below, combine them
with `all_of`, `any_of` and `not_`, and judge a batch with `each`. Nothing here talks to a cluster.

How a failed request is classified (`failure_kind`): the traffic layer's `transport_error` when it is
specific; otherwise the client's error text (curl, fortio and Go strings); otherwise curl's exit code
(6 DNS, 7 refused, 28 timeout, 35 TLS, 52 empty reply, 56 reset; output-formats §5.3).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from meshproof.checks.identity import XfccSyntaxError, parse_xfcc
from meshproof.checks.verdict import Verdict
from meshproof.traffic import Response, TransportError

XFCC_HEADER = "x-forwarded-client-cert"
RBAC_DENIED_BODY = "RBAC: access denied"  # Envoy RBAC filter local reply (output-formats §5.2)
# Envoy router local reply when the upstream resets before answering (envoy http_integration tests).
ENVOY_UPSTREAM_RESET_BODY = "upstream connect error or disconnect/reset before headers"
L7_REQUEST_MARKER = (
    "x-request-id"  # Istio's own IsL7 checker (istio@1.27 tests/integration/ambient/baseline_test.go)
)

CURL_EXIT_CODES: dict[int, TransportError] = {
    6: TransportError.DNS,  # CURLE_COULDNT_RESOLVE_HOST
    7: TransportError.REFUSED,  # CURLE_COULDNT_CONNECT
    28: TransportError.TIMEOUT,  # CURLE_OPERATION_TIMEDOUT
    35: TransportError.TLS,  # CURLE_SSL_CONNECT_ERROR
    52: TransportError.EOF,  # CURLE_GOT_NOTHING "Empty reply from server"
    56: TransportError.RESET,  # CURLE_RECV_ERROR "Recv failure: Connection reset by peer"
}

# Ordered: the first matching pattern wins ("OpenSSL SSL_read: Connection reset by peer" is a reset).
_ERROR_PATTERNS: tuple[tuple[re.Pattern[str], TransportError], ...] = (
    (re.compile(r"connection reset|ECONNRESET", re.IGNORECASE), TransportError.RESET),
    (re.compile(r"connection refused|ECONNREFUSED", re.IGNORECASE), TransportError.REFUSED),
    (
        re.compile(r"timed out|timeout|deadline exceeded|Client\.Timeout", re.IGNORECASE),
        TransportError.TIMEOUT,
    ),
    (re.compile(r"Empty reply from server|\bEOF\b|unexpected eof", re.IGNORECASE), TransportError.EOF),
    (
        re.compile(r"Could not resolve host|no such host|Name or service not known", re.IGNORECASE),
        TransportError.DNS,
    ),
    (re.compile(r"\bSSL\b|\bTLS\b|tls:|handshake|certificate", re.IGNORECASE), TransportError.TLS),
)

# What ztunnel's and a sidecar's L4 deny look like to the client: the accepted connection is closed,
# with a reset (unread request bytes) or a FIN before any reply (output-formats §5.3). Istio's own
# CheckDeny accepts "read: connection reset by peer" (ztunnel) and "EOF" (Envoy TCP) (istio-facts §3.1).
# Not included: REFUSED (nothing accepted the connection: the mesh's local proxy always accepts first,
# so a refusal means no listener, not a policy) and TIMEOUT (a drop, not a deny).
L4_DENY_ERRORS = frozenset({TransportError.RESET, TransportError.EOF})


@dataclass(frozen=True)
class Check:
    """A named verdict over one response."""

    name: str
    judge: Callable[[Response], Verdict]

    def __call__(self, response: Response) -> Verdict:
        return self.judge(response)

    def __str__(self) -> str:
        return self.name


# ---------------------------------------------------------------------------------------------------
# Reading a response


def http_status(response: Response) -> int | None:
    """The HTTP status, or None when no HTTP response arrived (curl reports 000 then)."""
    return response.status if response.status else None


def is_tcp(response: Response) -> bool:
    # Plain-TCP exchanges never carry a status; success is an echoed payload (meshproof.traffic).
    return response.scheme == "tcp"


def failure_kind(response: Response) -> TransportError:
    """Why no HTTP response (or, for plain TCP, no echoed exchange) arrived; NONE when one did."""
    if http_status(response) is not None:
        return TransportError.NONE
    if is_tcp(response) and response.transport_error == TransportError.NONE and not response.error_message:
        return TransportError.NONE
    if response.transport_error not in (TransportError.NONE, TransportError.OTHER):
        return response.transport_error
    for pattern, kind in _ERROR_PATTERNS:
        if response.error_message and pattern.search(response.error_message):
            return kind
    if response.exit_code in CURL_EXIT_CODES:
        return CURL_EXIT_CODES[response.exit_code]
    return TransportError.OTHER


def describe(response: Response) -> str:
    """One short line: what the client got."""
    status = http_status(response)
    if status is not None:
        body = " ".join(response.body.split())
        return f"HTTP {status}" + (f" body {body[:60]!r}" if body else "")
    kind = failure_kind(response)
    if is_tcp(response) and kind == TransportError.NONE:
        return "TCP exchange completed"
    message = " ".join(response.error_message.split())
    detail = f"exit {response.exit_code}" + (f", {message[:80]!r}" if message else "")
    return f"no {'TCP exchange' if is_tcp(response) else 'HTTP response'}: {kind.value} ({detail})"


def request_header(response: Response, name: str) -> list[str] | None:
    """The values of a request header as the echo server saw it, or None if it was absent."""
    return response.request_headers.get(name.lower())


def response_header(response: Response, name: str) -> str | None:
    wanted = name.lower()
    return next((value for key, value in response.headers.items() if key.lower() == wanted), None)


def _reached_server(response: Response) -> bool:
    # The echo server reflects at least Host; no reflected headers means we cannot see the request.
    return http_status(response) is not None and bool(response.request_headers)


# ---------------------------------------------------------------------------------------------------
# Checks


def ok() -> Check:
    """A 2xx HTTP response; for plain TCP, a completed echo exchange."""

    def judge(response: Response) -> Verdict:
        status = http_status(response)
        if status is not None and 200 <= status < 300:
            return Verdict.passed(f"HTTP {status}")
        if is_tcp(response) and failure_kind(response) == TransportError.NONE:
            return Verdict.passed("TCP exchange completed")
        return Verdict.failed(f"expected a 2xx response, got {describe(response)}")

    return Check("ok", judge)


def status(code: int) -> Check:
    """Exactly this HTTP status."""

    def judge(response: Response) -> Verdict:
        if http_status(response) == code:
            return Verdict.passed(f"HTTP {code}")
        return Verdict.failed(f"expected HTTP {code}, got {describe(response)}")

    return Check(f"status({code})", judge)


def denied_l4(*, via_l7_proxy: bool = False) -> Check:
    """The connection was closed by a policy below HTTP: reset (curl 56) or closed before a reply (52).

    With `via_l7_proxy=True` (the client's request passes an Envoy first: a sidecar client, or a
    waypoint), that Envoy turns the upstream reset into HTTP 503 with its "upstream connect error or
    disconnect/reset before headers" body, which then counts too (Istio CheckDeny: "503, HTTP client /
    TCP server", istio-facts §3.1).
    """

    def judge(response: Response) -> Verdict:
        status_code = http_status(response)
        if status_code is not None:
            if via_l7_proxy and status_code == 503 and ENVOY_UPSTREAM_RESET_BODY in response.body:
                return Verdict.passed(
                    "HTTP 503 from the client-side Envoy after the upstream reset the connection"
                )
            return Verdict.failed(f"expected the connection to be reset or closed, got {describe(response)}")
        kind = failure_kind(response)
        if kind in L4_DENY_ERRORS:
            return Verdict.passed(f"connection {kind.value} ({describe(response)})")
        why = {
            TransportError.REFUSED: "refused means nothing accepted the connection, not a policy deny",
            TransportError.TIMEOUT: "a timeout is a drop or an unreachable peer, not a policy deny",
        }.get(kind, "not the reset/EOF an L4 deny produces")
        return Verdict.failed(f"expected an L4 deny (reset or EOF), got {describe(response)}: {why}")

    return Check("denied_l4" + ("(via_l7_proxy)" if via_l7_proxy else ""), judge)


def denied_l7() -> Check:
    """Envoy's RBAC deny: HTTP 403 with body exactly `RBAC: access denied` (output-formats §5.2)."""

    def judge(response: Response) -> Verdict:
        status_code = http_status(response)
        body = response.body.strip()
        if status_code == 403 and body == RBAC_DENIED_BODY:
            return Verdict.passed("HTTP 403 'RBAC: access denied'")
        if status_code == 403:
            return Verdict.failed(f"HTTP 403 but not Envoy's RBAC reply (body {body[:60]!r})")
        return Verdict.failed(f"expected HTTP 403 'RBAC: access denied', got {describe(response)}")

    return Check("denied_l7", judge)


def mtls_with_identity(expected_spiffe_id: str, *, server_identity: str | None = None) -> Check:
    """Sidecar mode: the server-side proxy received mTLS from `expected_spiffe_id` (facts §3.2).

    Reads the XFCC header the echo server reflects. With APPEND_FORWARD the server's sidecar appends its
    element last, so only the last element counts: an element forged by the client cannot pass. Its
    URI must equal the expected id; `server_identity`, if given, must equal its By. Not valid in ambient
    without a waypoint (facts §0 trap 5): there the app gets no XFCC at all.
    """

    def judge(response: Response) -> Verdict:
        if not _reached_server(response):
            return Verdict.failed(f"cannot see what the server received: {describe(response)}")
        values = request_header(response, XFCC_HEADER)
        if not values:
            return Verdict.failed("server received no X-Forwarded-Client-Cert: the hop to it was not mTLS")
        try:
            elements = parse_xfcc(",".join(values))
        except XfccSyntaxError as exc:
            return Verdict.failed(f"malformed X-Forwarded-Client-Cert: {exc}")
        if not elements:
            return Verdict.failed("X-Forwarded-Client-Cert is present but empty")
        nearest = elements[-1]
        peer = nearest.get("URI")
        if peer != expected_spiffe_id:
            return Verdict.failed(f"server's proxy saw client URI={peer!r}, expected {expected_spiffe_id}")
        if server_identity is not None and nearest.get("By") != server_identity:
            return Verdict.failed(
                f"XFCC By={nearest.get('By')!r}, expected the server identity {server_identity}"
            )
        return Verdict.passed(f"mTLS: server's proxy {nearest.get('By')} saw client {peer}")

    return Check(f"mtls_with_identity({expected_spiffe_id})", judge)


def plaintext() -> Check:
    """The request reached the server without mTLS at its proxy: no XFCC header (facts §3.2).

    Requires a reflected request: a failed call has no XFCC either and must not count as plaintext.
    """

    def judge(response: Response) -> Verdict:
        if not _reached_server(response):
            return Verdict.failed(f"request did not reach the server: {describe(response)}")
        values = request_header(response, XFCC_HEADER)
        if values:
            return Verdict.failed(
                f"server received X-Forwarded-Client-Cert {values[-1][:80]!r}: the hop was mTLS"
            )
        return Verdict.passed(f"HTTP {http_status(response)} without X-Forwarded-Client-Cert")

    return Check("plaintext", judge)


def l7_processed() -> Check:
    """An L7 proxy (sidecar or waypoint) handled the request: the server saw an `x-request-id`.

    Envoy's HTTP connection manager generates x-request-id on every request it proxies, in sidecars and
    waypoints alike; ztunnel (L4) never touches HTTP. This is the signal Istio's own IsL7 checker uses
    (istio@1.27 tests/integration/ambient/baseline_test.go). Valid only when the client itself does not
    send x-request-id.
    """

    def judge(response: Response) -> Verdict:
        if not _reached_server(response):
            return Verdict.failed(f"cannot see what the server received: {describe(response)}")
        if request_header(response, L7_REQUEST_MARKER):
            extra = response_header(response, "server")
            return Verdict.passed(
                "server saw x-request-id" + (f" (response server: {extra})" if extra else "")
            )
        return Verdict.failed("server saw no x-request-id: no L7 proxy processed the request")

    return Check("l7_processed", judge)


def header_equals(name: str, value: str) -> Check:
    """A response header (name case-insensitive) has exactly this value."""

    def judge(response: Response) -> Verdict:
        actual = response_header(response, name)
        if actual == value:
            return Verdict.passed(f"{name}: {value}")
        if actual is None:
            return Verdict.failed(f"response has no {name} header ({describe(response)})")
        return Verdict.failed(f"response {name} is {actual!r}, expected {value!r}")

    return Check(f"header_equals({name}={value})", judge)


# ---------------------------------------------------------------------------------------------------
# Combinators


def all_of(*checks: Check) -> Check:
    """Every check passes; the verdict names the first that fails."""
    if not checks:
        raise ValueError("all_of needs at least one check")

    def judge(response: Response) -> Verdict:
        reasons: list[str] = []
        for check in checks:
            verdict = check(response)
            if not verdict.ok:
                return Verdict.failed(f"{check.name}: {verdict.reason}")
            reasons.append(verdict.reason)
        return Verdict.passed("; ".join(reasons))

    return Check("all_of(" + ", ".join(c.name for c in checks) + ")", judge)


def any_of(*checks: Check) -> Check:
    """At least one check passes; when none does the verdict lists every reason."""
    if not checks:
        raise ValueError("any_of needs at least one check")

    def judge(response: Response) -> Verdict:
        reasons: list[str] = []
        for check in checks:
            verdict = check(response)
            if verdict.ok:
                return Verdict.passed(f"{check.name}: {verdict.reason}")
            reasons.append(f"{check.name}: {verdict.reason}")
        return Verdict.failed("none passed: " + " | ".join(reasons))

    return Check("any_of(" + ", ".join(c.name for c in checks) + ")", judge)


def not_(check: Check) -> Check:
    """The check fails."""

    def judge(response: Response) -> Verdict:
        verdict = check(response)
        if verdict.ok:
            return Verdict.failed(f"expected {check.name} to fail, but it passed: {verdict.reason}")
        return Verdict.passed(f"not {check.name}: {verdict.reason}")

    return Check(f"not_({check.name})", judge)


def each(check: Check, responses: Sequence[Response], *, show: int = 3) -> Verdict:
    """The check passes for every response (and there is at least one); lists the first failures."""
    if not responses:
        return Verdict.failed(f"{check.name}: no responses to judge")
    failures = [(index, verdict) for index, r in enumerate(responses) if not (verdict := check(r)).ok]
    if not failures:
        return Verdict.passed(f"{check.name}: all {len(responses)} responses passed")
    listed = "; ".join(f"#{index}: {verdict.reason}" for index, verdict in failures[:show])
    more = f" (and {len(failures) - show} more)" if len(failures) > show else ""
    return Verdict.failed(f"{check.name}: {len(failures)}/{len(responses)} failed: {listed}{more}")


# --- batch judges: one verdict over a batch of responses ---------------------------------------------

BatchJudge = Callable[[Sequence[Response]], Verdict]


def every(check: Check, *, show: int = 3) -> BatchJudge:
    """A batch judge from a per-response check: `each(check, responses)`, for code that takes judges
    over a whole batch (convergence loops, `all_judges`)."""

    def judge(responses: Sequence[Response]) -> Verdict:
        return each(check, responses, show=show)

    return judge


def all_judges(*judges: BatchJudge) -> BatchJudge:
    """Every batch judge passes on the same responses; the verdict is the first failure, else every reason.

    The batch counterpart of `all_of` (which combines per-response checks)."""
    if not judges:
        raise ValueError("all_judges needs at least one judge")

    def judge(responses: Sequence[Response]) -> Verdict:
        reasons: list[str] = []
        for one in judges:
            verdict = one(responses)
            if not verdict.ok:
                return verdict
            reasons.append(verdict.reason)
        return Verdict.passed("; ".join(reasons))

    return judge
