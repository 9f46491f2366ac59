"""Response checks on realistic client outcomes: curl exit codes and messages, fortio/Go error strings,
Envoy's RBAC and upstream-reset replies, and request headers as an echo server reflects them.

Every check is shown passing on one input and failing on another. The last tests build Responses with
meshproof.traffic's own parsers (a contract test between the two layers). What this cannot prove: that
curl, fortio and Envoy in a real cluster produce exactly these outputs.
"""

from __future__ import annotations

import pytest

from meshproof.checks.responses import (
    Check,
    all_judges,
    all_of,
    any_of,
    denied_l4,
    denied_l7,
    describe,
    each,
    every,
    failure_kind,
    header_equals,
    l7_processed,
    mtls_with_identity,
    not_,
    ok,
    plaintext,
    status,
)
from meshproof.checks.verdict import Verdict
from meshproof.traffic import Response, TransportError, parse_fortio_tcp, response_from_curl

CLIENT = "spiffe://cluster.local/ns/mp-sidecar/sa/client"
SERVER = "spiffe://cluster.local/ns/mp-sidecar/sa/echo"
HASH = "3f1d4c2b9a8e7f6d5c4b3a29180706f5e4d3c2b1a09f8e7d6c5b4a3928170605"  # hex SHA-256 of the peer cert
XFCC = f'By={SERVER};Hash={HASH};Subject="";URI={CLIENT}'


def echoed(
    status_code: int = 200,
    *,
    xfcc: str | None = None,
    request_id: bool = False,
    headers: dict[str, str] | None = None,
) -> Response:
    """A response from an echo server behind a sidecar: the request headers it saw are reflected."""
    reflected: dict[str, list[str]] = {"host": ["echo.mp-sidecar:8080"], "user-agent": ["curl/8.7.1"]}
    if xfcc is not None:
        reflected["x-forwarded-client-cert"] = [xfcc]
    if request_id:
        reflected["x-request-id"] = ["2f7c0e3a-5b0d-9c61-b1a4-5e2e1f0c7d11"]
        reflected["x-forwarded-proto"] = ["http"]
    return Response(
        status=status_code,
        headers=headers if headers is not None else {"content-type": "application/json"},
        body='{"ok": true}',
        request_headers=reflected,
        source_address="10.244.1.17",
    )


def curl_failure(
    exit_code: int, message: str, transport_error: TransportError = TransportError.NONE
) -> Response:
    """curl -sS -o /dev/null -w '%{http_code}' failing: http_code 000, exit code, stderr message."""
    return Response(status=None, exit_code=exit_code, error_message=message, transport_error=transport_error)


RESET = curl_failure(56, "curl: (56) Recv failure: Connection reset by peer")
EMPTY_REPLY = curl_failure(52, "curl: (52) Empty reply from server")
REFUSED = curl_failure(
    7, "curl: (7) Failed to connect to echo.mp-ambient port 8080 after 3 ms: Couldn't connect to server"
)
TIMEOUT = curl_failure(28, "curl: (28) Operation timed out after 5001 milliseconds with 0 bytes received")
TLS_FAIL = curl_failure(35, "curl: (35) OpenSSL/3.0.13: error:0A00010B:SSL routines::wrong version number")
GO_RESET = curl_failure(
    1,
    'Get "http://echo.mp-ambient:8080/": '
    "read tcp 10.244.1.17:51234->10.96.12.4:8080: read: connection reset by peer",
)
GO_EOF = curl_failure(1, 'Get "http://echo.mp-ambient:8080/": EOF')
GO_REFUSED = curl_failure(1, "dial tcp 10.96.12.4:8080: connect: connection refused")
FORTIO_EOF = curl_failure(1, "Read error &{{0xc000180000}} {10.96.12.4 8080 } 0 : EOF")
RBAC_403 = Response(
    status=403, headers={"content-type": "text/plain", "server": "istio-envoy"}, body="RBAC: access denied"
)
UPSTREAM_503 = Response(
    status=503,
    headers={"content-type": "text/plain", "server": "envoy"},
    body="upstream connect error or disconnect/reset before headers. reset reason: connection termination",
)


@pytest.mark.parametrize(
    ("response", "kind"),
    [
        (RESET, TransportError.RESET),
        (EMPTY_REPLY, TransportError.EOF),
        (REFUSED, TransportError.REFUSED),
        (TIMEOUT, TransportError.TIMEOUT),
        (TLS_FAIL, TransportError.TLS),
        (curl_failure(6, "curl: (6) Could not resolve host: echo.nowhere"), TransportError.DNS),
        (
            curl_failure(
                56, "curl: (56) OpenSSL SSL_read: error:0A000126:SSL routines::unexpected eof while reading"
            ),
            TransportError.EOF,
        ),
        (GO_RESET, TransportError.RESET),
        (GO_EOF, TransportError.EOF),
        (GO_REFUSED, TransportError.REFUSED),
        (FORTIO_EOF, TransportError.EOF),
        (
            curl_failure(
                1,
                'Get "http://x/": context deadline exceeded (Client.Timeout exceeded while awaiting headers)',
            ),
            TransportError.TIMEOUT,
        ),
        (curl_failure(56, ""), TransportError.RESET),  # exit code alone
        (curl_failure(0, "", TransportError.RESET), TransportError.RESET),  # traffic's classification wins
        (curl_failure(3, "curl: (3) URL rejected: Bad hostname"), TransportError.OTHER),
        (Response(status=0, exit_code=56), TransportError.RESET),  # "000" parsed as 0 is no response
        (echoed(), TransportError.NONE),
    ],
)
def test_failure_kind_from_real_client_errors(response: Response, kind: TransportError) -> None:
    assert failure_kind(response) == kind


def passes(check: Check, response: Response) -> bool:
    verdict = check(response)
    assert verdict.reason, "every verdict must say why"
    return verdict.ok


def test_ok() -> None:
    assert passes(ok(), echoed(200))
    assert passes(ok(), echoed(204))
    assert not passes(ok(), RBAC_403)
    assert not passes(ok(), RESET)
    assert "no HTTP response: reset (exit 56" in ok()(RESET).reason


def test_status() -> None:
    assert passes(status(403), RBAC_403)
    assert not passes(status(403), echoed(200))
    assert not passes(status(503), TIMEOUT)


@pytest.mark.parametrize("response", [RESET, EMPTY_REPLY, GO_RESET, GO_EOF, FORTIO_EOF])
def test_denied_l4_passes_on_reset_and_eof(response: Response) -> None:
    assert passes(denied_l4(), response)


@pytest.mark.parametrize(
    ("response", "why"),
    [
        (REFUSED, "refused means nothing accepted the connection"),
        (GO_REFUSED, "refused means nothing accepted the connection"),
        (TIMEOUT, "a timeout is a drop"),
        (TLS_FAIL, "not the reset/EOF"),
        (echoed(200), "got HTTP 200"),
        (RBAC_403, "got HTTP 403"),
        (UPSTREAM_503, "got HTTP 503"),
    ],
)
def test_denied_l4_fails_on_anything_else(response: Response, why: str) -> None:
    verdict = denied_l4()(response)

    assert not verdict.ok
    assert why in verdict.reason


def test_denied_l4_through_a_client_side_envoy_accepts_its_503() -> None:
    assert passes(denied_l4(via_l7_proxy=True), UPSTREAM_503)
    assert passes(denied_l4(via_l7_proxy=True), RESET)
    other_503 = Response(status=503, body="no healthy upstream")
    assert not passes(denied_l4(via_l7_proxy=True), other_503)


def test_denied_l7() -> None:
    assert passes(denied_l7(), RBAC_403)
    assert passes(denied_l7(), Response(status=403, body="RBAC: access denied\n"))
    assert "not Envoy's RBAC reply" in denied_l7()(Response(status=403, body="Forbidden by app")).reason
    assert not passes(denied_l7(), echoed(200))
    assert not passes(denied_l7(), RESET)


def test_mtls_with_identity_reads_the_xfcc_the_server_saw() -> None:
    assert passes(mtls_with_identity(CLIENT), echoed(xfcc=XFCC))
    assert passes(mtls_with_identity(CLIENT, server_identity=SERVER), echoed(xfcc=XFCC))


@pytest.mark.parametrize(
    ("response", "reason"),
    [
        (echoed(), "no X-Forwarded-Client-Cert"),
        (
            echoed(xfcc=XFCC.replace("sa/client", "sa/other")),
            "saw client URI='spiffe://cluster.local/ns/mp-sidecar/sa/other'",
        ),
        # A client that forges XFCC: the server's sidecar appends the real element last (APPEND_FORWARD).
        (
            echoed(
                xfcc=f'URI={CLIENT},By={SERVER};Hash=00;Subject="";URI=spiffe://cluster.local/ns/x/sa/mallory'
            ),
            "mallory",
        ),
        (echoed(xfcc='By=a;Subject="broken'), "malformed X-Forwarded-Client-Cert"),
        (RESET, "cannot see what the server received"),
        (
            Response(status=200, body="plain text server that reflects nothing"),
            "cannot see what the server received",
        ),
    ],
)
def test_mtls_with_identity_fails(response: Response, reason: str) -> None:
    verdict = mtls_with_identity(CLIENT)(response)

    assert not verdict.ok
    assert reason in verdict.reason


def test_mtls_with_identity_checks_the_server_identity_when_asked() -> None:
    verdict = mtls_with_identity(CLIENT, server_identity="spiffe://cluster.local/ns/x/sa/y")(
        echoed(xfcc=XFCC)
    )

    assert not verdict.ok and "expected the server identity" in verdict.reason


def test_plaintext() -> None:
    assert passes(plaintext(), echoed())
    assert "the hop was mTLS" in plaintext()(echoed(xfcc=XFCC)).reason
    assert not passes(plaintext(), RESET)  # a failed call has no XFCC either; it is not plaintext
    assert not passes(plaintext(), Response(status=200))  # nothing reflected: cannot tell


def test_l7_processed() -> None:
    assert passes(l7_processed(), echoed(request_id=True, headers={"server": "istio-envoy"}))
    assert "no L7 proxy" in l7_processed()(echoed()).reason
    assert not passes(l7_processed(), EMPTY_REPLY)


def test_header_equals_is_case_insensitive_on_the_name() -> None:
    response = echoed(headers={"x-inference-pod": "vllm-0", "server": "istio-envoy"})

    assert passes(header_equals("X-Inference-Pod", "vllm-0"), response)
    assert "is 'vllm-0', expected 'vllm-1'" in header_equals("x-inference-pod", "vllm-1")(response).reason
    assert "has no x-missing header" in header_equals("x-missing", "1")(response).reason


def test_combinators() -> None:
    mtls_ok = all_of(ok(), mtls_with_identity(CLIENT), l7_processed())
    assert passes(mtls_ok, echoed(xfcc=XFCC, request_id=True))
    failed = mtls_ok(echoed(request_id=True))
    assert not failed.ok and failed.reason.startswith("mtls_with_identity(")

    deny = any_of(denied_l4(), denied_l7())
    assert passes(deny, RBAC_403) and passes(deny, RESET)
    none = deny(echoed())
    assert not none.ok and "none passed" in none.reason and "denied_l7" in none.reason

    assert passes(not_(ok()), RESET)
    assert "expected ok to fail" in not_(ok())(echoed()).reason
    assert str(not_(ok())) == "not_(ok)"

    with pytest.raises(ValueError):
        all_of()
    with pytest.raises(ValueError):
        any_of()


def test_each_requires_every_response_and_lists_the_first_failures() -> None:
    assert each(ok(), [echoed(), echoed()]).ok

    mixed = [echoed(), RESET, echoed(), EMPTY_REPLY, REFUSED, TIMEOUT]
    verdict = each(ok(), mixed, show=2)

    assert not verdict.ok
    assert verdict.reason.startswith("ok: 4/6 failed: #1: ")
    assert "#3: " in verdict.reason and "#4" not in verdict.reason and "(and 2 more)" in verdict.reason
    assert not each(ok(), []).ok


def test_every_is_each_as_a_batch_judge() -> None:
    mixed = [echoed(), RESET, echoed()]
    assert every(ok())([echoed(), echoed()]).ok
    assert every(ok())(mixed) == each(ok(), mixed)
    assert not every(ok())([]).ok, "an empty batch proves nothing"


def test_all_judges_needs_every_batch_judge_and_returns_the_first_failure() -> None:
    replies = [echoed(), RBAC_403]
    two_only = lambda rs: Verdict(len(rs) == 2, f"{len(rs)} replies")  # noqa: E731
    both = all_judges(two_only, every(ok()))
    verdict = both(replies)
    assert not verdict.ok and verdict == every(ok())(replies)
    passed = all_judges(two_only, every(ok()))([echoed(), echoed()])
    assert passed.ok and passed.reason == "2 replies; ok: all 2 responses passed"
    assert not all_judges(every(ok()), two_only)([echoed()]).ok
    with pytest.raises(ValueError):
        all_judges()


def test_describe_is_one_short_line() -> None:
    assert describe(RBAC_403) == "HTTP 403 body 'RBAC: access denied'"
    assert "\n" not in describe(curl_failure(56, "line one\nline two"))


# --- contract with meshproof.traffic: Responses as the traffic layer builds them ----------------------

FORTIO_DEBUG_BODY = (
    "Φορτίο version 1.75.2 h1:abc= go1.25.0 amd64 linux echo debug server up for 2h3m4.5s on "
    "echo-5c7d-abcde - request from 127.0.0.6:43210\n\nGET /debug HTTP/1.1\n\nheaders:\n\n"
    "Host: echo.mp-sidecar:8080\nAccept: */*\nUser-Agent: curl/8.7.1\n"
    f"X-Forwarded-Client-Cert: {XFCC}\nX-Forwarded-Proto: http\n"
    "X-Request-Id: 5f0c2a9e-1b7d-9f3e-a6b4-0c2d8e1f7a35\n\nbody:\n\n\n"
)


def test_checks_read_a_curl_response_built_by_traffic() -> None:
    summary = {"exitcode": 0, "errormsg": None, "http_code": 200, "url": "http://echo.mp-sidecar:8080/debug"}
    response = response_from_curl(summary, {"server": ["istio-envoy"]}, FORTIO_DEBUG_BODY)

    assert all_of(ok(), mtls_with_identity(CLIENT, server_identity=SERVER), l7_processed())(response).ok
    assert not plaintext()(response).ok

    reset = response_from_curl(
        {"exitcode": 56, "errormsg": "Recv failure: Connection reset by peer", "http_code": 0}, {}, ""
    )
    assert denied_l4()(reset).ok and not ok()(reset).ok


def test_checks_read_fortio_tcp_responses_built_by_traffic() -> None:
    payload = "meshproof-mp1a2b3c4d"
    echoed_ok = parse_fortio_tcp('{"RetCodes": {"OK": 2}}', "", 0, payload=payload, count=2)
    reset_log = (
        '{"ts":1717236000.1,"level":"err","msg":"Unable to read: '
        'read tcp 10.244.1.17:51234->10.96.12.4:8078: read: connection reset by peer"}'
    )
    denied = parse_fortio_tcp('{"RetCodes": {"short read": 1}}', reset_log, 1, payload=payload, count=1)

    assert each(ok(), echoed_ok).ok and not each(denied_l4(), echoed_ok).ok
    assert describe(echoed_ok[0]) == "TCP exchange completed"
    assert each(denied_l4(), denied).ok and not each(ok(), denied).ok
    assert describe(denied[0]).startswith("no TCP exchange: reset")
