"""Client output -> Response: curl -w records, fortio /debug reflections, fortio TCP results.

The inputs have the exact shape of outputs captured on this machine (curl 7.88.1, fortio 1.68.2) against
loopback servers that reset, close, refuse, time out and answer like Envoy's RBAC filter: the same keys,
layout and error texts. Host names and addresses were changed to cluster-like values and fortio's
histogram was trimmed. The local-real tests (tests/local_real/test_traffic_local_real.py) produce such
outputs live and feed them to the same parsers.
"""

from __future__ import annotations

import json

import pytest

from meshproof.checks import responses
from meshproof.checks.identity import spiffe_id
from meshproof.traffic import (
    CallError,
    Response,
    TransportError,
    classify_error_text,
    curl_command,
    curl_transport_error,
    curl_write_out,
    describe,
    fortio_tcp_command,
    parse_curl_output,
    parse_fortio_debug,
    parse_fortio_tcp,
    split_host_port,
)

MARKER = "mpcafe01"

# The %{json} keys curl 7.88.1 printed (8.x adds a few; the parser reads exitcode, errormsg, http_code,
# time_total, url).
CURL_SUMMARY = {
    "certs": "",
    "content_type": None,
    "errormsg": None,
    "exitcode": 0,
    "filename_effective": None,
    "ftp_entry_path": None,
    "http_code": 0,
    "http_connect": 0,
    "http_version": "0",
    "local_ip": "127.0.0.1",
    "local_port": 57946,
    "method": "GET",
    "num_certs": 0,
    "num_connects": 1,
    "num_headers": 0,
    "num_redirects": 0,
    "proxy_ssl_verify_result": 0,
    "redirect_url": None,
    "referer": None,
    "remote_ip": "10.96.14.7",
    "remote_port": 8080,
    "response_code": 0,
    "scheme": "HTTP",
    "size_download": 0,
    "size_header": 0,
    "size_request": 84,
    "size_upload": 0,
    "speed_download": 0,
    "speed_upload": 0,
    "ssl_verify_result": 0,
    "time_appconnect": 0.0,
    "time_connect": 0.000272,
    "time_namelookup": 0.000024,
    "time_pretransfer": 0.000404,
    "time_redirect": 0.0,
    "time_starttransfer": 0.0,
    "time_total": 0.000433,
    "url": "http://server.mp-x-sidecar.svc.cluster.local:8080/debug",
    "url_effective": "http://server.mp-x-sidecar.svc.cluster.local:8080/debug",
    "urlnum": 0,
    "curl_version": "libcurl/7.88.1 OpenSSL/3.0.19 zlib/1.2.13 brotli/1.0.9 zstd/1.5.4 libidn2/2.3.3",
}
NO_HEADERS = "{\n}"  # what %{header_json} prints when no response arrived

FORTIO_DEBUG_BODY = (
    "Φορτίο version 1.68.2 h1:DGuywj8/EGLjhS7+dxfL2JUhuNX3I2f+5Jud31HEoJI= go1.26.8 amd64 linux echo debug "
    "server up for 1.2s on server-7f6d8b9c5-x2k9q - request from 10.244.1.17:41456\n"
    "\n"
    "GET /debug HTTP/1.1\n"
    "\n"
    "headers:\n"
    "\n"
    "Host: server.mp-x-sidecar.svc.cluster.local:8080\n"
    "Accept: */*\n"
    "User-Agent: curl/8.11.1\n"
    "X-Envoy-Attempt-Count: 1\n"
    'X-Forwarded-Client-Cert: By=spiffe://cluster.local/ns/mp-x-sidecar/sa/server;Hash=9b1e0c2d;Subject="";'
    "URI=spiffe://cluster.local/ns/mp-x-sidecar/sa/client\n"
    "X-Forwarded-Proto: http\n"
    "X-Multi: a,b\n"
    "X-Request-Id: 5f0c7a1e-0b7e-4e55-9d8b-3f1c0a6e2b11\n"
    "\n"
    "body:\n"
    "\n"
    "\n"
)
FORTIO_HEADERS = '{"content-type":["text/plain; charset=UTF-8"],\n"date":["Thu, 26 Nov 2026 06:44:44 GMT"],\n"content-length":["413"]\n}'  # noqa: E501
RBAC_HEADERS = (
    '{"content-length":["19"],\n"content-type":["text/plain"],\n"date":["Thu, 26 Nov 2026 06:40:00 GMT"],\n'
    '"server":["envoy"],\n"x-envoy-upstream-service-time":["1"]\n}'
)


def record(body: str = "", headers: str = NO_HEADERS, **summary: object) -> str:
    """One transfer exactly as curl prints it with `curl_write_out(MARKER)`."""
    values = {**CURL_SUMMARY, **summary}
    return f"{body}::{MARKER}::{json.dumps(values)}::{MARKER}-headers::{headers}::{MARKER}-end::\n"


# --- curl: the command ------------------------------------------------------------------------------


def test_curl_command_for_one_request_bounds_it_by_the_request_timeout() -> None:
    argv = curl_command("http://s:8080/debug", marker=MARKER, request_timeout=2.5)
    assert argv[0] == "curl" and argv[-1] == "http://s:8080/debug"
    assert argv[argv.index("--max-time") + 1] == "2.5"
    assert argv[argv.index("--connect-timeout") + 1] == "2.5"
    assert argv[argv.index("--write-out") + 1] == curl_write_out(MARKER)
    assert argv[argv.index("--request") + 1] == "GET"


def test_write_out_format_never_starts_with_at_sign() -> None:
    # curl reads `-w @name` as a file name: a format starting with '@' prints nothing at all.
    assert not curl_write_out(MARKER).startswith("@")
    assert "%{json}" in curl_write_out(MARKER) and "%{header_json}" in curl_write_out(MARKER)


def test_new_connections_run_one_curl_process_per_request_without_shell_parsing() -> None:
    argv = curl_command(
        "http://s:8080/debug",
        marker=MARKER,
        request_timeout=1,
        count=3,
        headers={"X-Test": "a b; $(touch /tmp/x)"},
        method="post",
        data="x=1",
    )
    assert argv[:2] == ["sh", "-c"]
    script, argv0, count, *curl = argv[2:]
    assert argv0 == "sh" and count == "3"
    assert '"$@"' in script  # the curl argv is passed as positional arguments, never re-parsed
    assert curl[0] == "curl" and curl[-1] == "http://s:8080/debug"
    assert "X-Test: a b; $(touch /tmp/x)" in curl
    assert curl[curl.index("--request") + 1] == "POST"
    assert curl[curl.index("--data-binary") + 1] == "x=1"


def test_reused_connection_is_one_curl_process_with_the_url_repeated() -> None:
    argv = curl_command("http://s:8080/", marker=MARKER, request_timeout=1, count=3, new_connection=False)
    assert argv[0] == "curl"
    assert argv[-3:] == ["http://s:8080/"] * 3


@pytest.mark.parametrize(
    ("kwargs", "message"), [({"count": 0}, "count"), ({"request_timeout": 0}, "timeout")]
)
def test_curl_command_rejects_nonsense(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        curl_command("http://s/", **{"marker": MARKER, "request_timeout": 1, **kwargs})  # type: ignore[arg-type]


# --- curl: the output -------------------------------------------------------------------------------


def test_echoed_request_fills_status_headers_and_what_the_server_saw() -> None:
    stdout = record(FORTIO_DEBUG_BODY, FORTIO_HEADERS, http_code=200, response_code=200, time_total=0.002658)
    (response,) = parse_curl_output(stdout, MARKER)
    assert response.status == 200
    assert response.transport_error is TransportError.NONE and response.exit_code == 0
    assert response.headers["content-type"] == "text/plain; charset=UTF-8"
    assert response.request_headers["x-forwarded-client-cert"] == [
        'By=spiffe://cluster.local/ns/mp-x-sidecar/sa/server;Hash=9b1e0c2d;Subject="";'
        "URI=spiffe://cluster.local/ns/mp-x-sidecar/sa/client"
    ]
    assert response.source_address == "10.244.1.17"
    assert response.server_hostname == "server-7f6d8b9c5-x2k9q"
    assert response.duration_s == pytest.approx(0.002658)
    assert response.body == FORTIO_DEBUG_BODY
    assert response.target == CURL_SUMMARY["url"]


def test_parsed_response_feeds_the_identity_and_l7_checks() -> None:
    """The Response the parser builds is what the checks read: XFCC identity, l7 marker, plaintext."""
    (response,) = parse_curl_output(record(FORTIO_DEBUG_BODY, FORTIO_HEADERS, http_code=200), MARKER)
    client = spiffe_id("cluster.local", "mp-x-sidecar", "client")
    server = spiffe_id("cluster.local", "mp-x-sidecar", "server")
    assert responses.mtls_with_identity(client, server_identity=server)(response)
    assert not responses.mtls_with_identity(server)(response)  # the wrong peer is refused
    assert responses.l7_processed()(response)
    assert not responses.plaintext()(response)


def test_rbac_denial_is_a_403_with_envoys_body() -> None:
    stdout = record("RBAC: access denied", RBAC_HEADERS, http_code=403, response_code=403)
    (response,) = parse_curl_output(stdout, MARKER)
    assert response.status == 403 and response.body == "RBAC: access denied"
    assert response.headers["server"] == "envoy"
    assert response.request_headers == {} and response.source_address is None  # not an echo body
    assert responses.denied_l7()(response)
    assert not responses.denied_l4()(response)


@pytest.mark.parametrize(
    ("exit_code", "message", "expected"),
    [
        (56, "Recv failure: Connection reset by peer", TransportError.RESET),
        (52, "Empty reply from server", TransportError.EOF),
        (
            7,
            "Failed to connect to 10.96.14.7 port 8080 after 0 ms: Couldn't connect to server",
            TransportError.REFUSED,
        ),
        (28, "Operation timed out after 1001 milliseconds with 0 bytes received", TransportError.TIMEOUT),
        (6, "Could not resolve host: server.nowhere.svc.cluster.local", TransportError.DNS),
        (35, "OpenSSL SSL_connect: SSL_ERROR_SYSCALL in connection to server:443", TransportError.TLS),
    ],
)
def test_transport_failures_have_no_status_and_say_why(
    exit_code: int, message: str, expected: TransportError
) -> None:
    (response,) = parse_curl_output(record(exitcode=exit_code, errormsg=message), MARKER)
    assert response.status is None
    assert response.exit_code == exit_code
    assert response.transport_error is expected
    assert response.error_message == message
    assert response.headers == {}


def test_reset_and_empty_reply_count_as_l4_denials_but_refused_does_not() -> None:
    reset, eof, refused = (
        parse_curl_output(record(exitcode=code, errormsg=msg), MARKER)[0]
        for code, msg in (
            (56, "Recv failure: Connection reset by peer"),
            (52, "Empty reply from server"),
            (7, "Failed to connect to 10.96.14.7 port 8080 after 0 ms: Couldn't connect to server"),
        )
    )
    assert responses.denied_l4()(reset) and responses.denied_l4()(eof)
    assert not responses.denied_l4()(refused)


def test_one_response_per_transfer_in_order() -> None:
    stdout = (
        record(FORTIO_DEBUG_BODY, FORTIO_HEADERS, http_code=200)
        + record(exitcode=56, errormsg="Recv failure: Connection reset by peer")
        + record("RBAC: access denied", RBAC_HEADERS, http_code=403)
    )
    assert [r.status for r in parse_curl_output(stdout, MARKER)] == [200, None, 403]


def test_a_body_that_mimics_the_markers_of_another_call_is_not_split() -> None:
    tricky = "::mp00000000::{}::mp00000000-end::\n::garbage"
    (response,) = parse_curl_output(record(tricky, FORTIO_HEADERS, http_code=200), MARKER)
    assert response.body == tricky


def test_curl_output_without_records_gives_no_responses() -> None:
    assert parse_curl_output("curl: option --write-out: is unknown\n", MARKER) == []


def test_malformed_record_is_a_call_error_not_a_verdict() -> None:
    stdout = f"::{MARKER}::{{not json::{MARKER}-headers::{{}}::{MARKER}-end::\n"
    with pytest.raises(CallError, match="not JSON"):
        parse_curl_output(stdout, MARKER)


@pytest.mark.parametrize(
    ("exit_code", "message", "expected"),
    [
        (56, "", TransportError.RESET),
        (18, "transfer closed with 10 bytes remaining to read", TransportError.OTHER),
        (55, "Send failure: Connection reset by peer", TransportError.RESET),
        (1, "", TransportError.OTHER),
    ],
)
def test_curl_exit_codes_first_then_error_text(
    exit_code: int, message: str, expected: TransportError
) -> None:
    assert curl_transport_error(exit_code, message) is expected


# --- fortio /debug ------------------------------------------------------------------------------------


def test_fortio_debug_reflection_is_parsed() -> None:
    echoed = parse_fortio_debug(FORTIO_DEBUG_BODY)
    assert echoed is not None
    assert (echoed.method, echoed.target, echoed.protocol) == ("GET", "/debug", "HTTP/1.1")
    assert echoed.source_address == "10.244.1.17" and echoed.source_port == 41456
    assert echoed.server_hostname == "server-7f6d8b9c5-x2k9q"
    assert echoed.headers["host"] == ["server.mp-x-sidecar.svc.cluster.local:8080"]
    assert echoed.headers["x-multi"] == ["a,b"]  # fortio joins repeated headers with ','
    assert echoed.body == ""


def test_fortio_debug_with_a_request_body_and_tls_suffix() -> None:
    body = (
        "Φορτίο version 1.75.2 h1:abc= go1.25.0 amd64 linux echo debug server up for 2h3m4.5s on fortio-6d9"
        ' - request from [fd00:10:244::7]:43210 https TLS_AES_128_GCM_SHA256 "CN=client"\n'
        "\n"
        "POST /debug HTTP/1.1\n"
        "\n"
        "headers:\n"
        "\n"
        "Host: fortio:8080\n"
        "Content-Length: 11\n"
        "\n"
        "body:\n"
        "\n"
        "hello\nworld\n"
    )
    echoed = parse_fortio_debug(body)
    assert echoed is not None
    assert echoed.method == "POST"
    assert echoed.source_address == "fd00:10:244::7" and echoed.source_port == 43210
    assert echoed.server_hostname == "fortio-6d9"
    assert echoed.body == "hello\nworld"


@pytest.mark.parametrize(
    "body", ["", "RBAC: access denied", "upstream connect error or disconnect/reset before headers"]
)
def test_bodies_that_are_not_a_fortio_reflection_give_none(body: str) -> None:
    assert parse_fortio_debug(body) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [("10.1.2.3:5678", ("10.1.2.3", 5678)), ("[::1]:80", ("::1", 80)), ("10.1.2.3", ("10.1.2.3", None))],
)
def test_split_host_port(text: str, expected: tuple[str, int | None]) -> None:
    assert split_host_port(text) == expected


# --- fortio TCP ---------------------------------------------------------------------------------------

PAYLOAD = "meshproof-mpcafe01"


def fortio_json(ret_codes: dict[str, int]) -> str:
    """The fields of `fortio load -json -` for a tcp:// run (fortio 1.68.2, trimmed histogram data)."""
    count = sum(ret_codes.values())
    return json.dumps(
        {
            "RunType": "TCP",
            "Labels": "tcp://server.mp-x-ambient.svc.cluster.local:8078 , client-5d8f7c9b4-x2k9q",
            "StartTime": "2026-11-26T06:34:29.705916534Z",
            "RequestedQPS": "max",
            "RequestedDuration": f"exactly {count} calls",
            "ActualQPS": 2672.785563750613,
            "ActualDuration": 748283,
            "NumThreads": count,
            "Version": "1.68.2",
            "DurationHistogram": {"Count": count, "Min": 0.00024017, "Max": 0.000651572, "Avg": 0.000445871},
            "ErrorsDurationHistogram": {
                "Count": 0,
                "Min": 0,
                "Max": 0,
                "Sum": 0,
                "Avg": 0,
                "StdDev": 0,
                "Data": None,
            },
            "Exactly": count,
            "Destination": "tcp://server.mp-x-ambient.svc.cluster.local:8078",
            "Payload": None,
            "ReqTimeout": 0,
            "RetCodes": ret_codes,
            "SocketCount": count,
            "BytesSent": 26,
            "BytesReceived": 26,
        },
        indent=2,
    )


def fortio_log(msg: str, level: str = "err") -> str:
    return json.dumps(
        {"ts": 1795674874.925463, "level": level, "r": 23, "file": "tcprunner.go", "line": 204, "msg": msg}
    )


def test_fortio_tcp_command_uses_one_connection_per_request_for_new_connections() -> None:
    argv = fortio_tcp_command(
        "server.ns.svc.cluster.local", 8078, payload=PAYLOAD, request_timeout=2, count=3
    )
    assert argv[:2] == ["fortio", "load"]
    assert argv[argv.index("-n") + 1] == "3" and argv[argv.index("-c") + 1] == "3"
    assert argv[argv.index("-timeout") + 1] == "2000ms"
    assert argv[argv.index("-payload") + 1] == PAYLOAD
    assert argv[-1] == "tcp://server.ns.svc.cluster.local:8078"
    reuse = fortio_tcp_command("s", 8078, payload=PAYLOAD, request_timeout=2, count=3, new_connection=False)
    assert reuse[reuse.index("-c") + 1] == "1"


def test_fortio_tcp_echo_success() -> None:
    found = parse_fortio_tcp(fortio_json({"OK": 2}), "", 0, payload=PAYLOAD, count=2)
    assert len(found) == 2
    assert all(
        r.status is None and r.transport_error is TransportError.NONE and r.body == PAYLOAD for r in found
    )
    assert all(r.scheme == "tcp" for r in found)


def test_fortio_short_reads_are_split_into_reset_and_eof_by_the_error_log() -> None:
    stderr = "\n".join(
        [
            fortio_log("Starting tcp test for tcp://s:8078 with 2 threads at -1.0 qps", "info"),
            fortio_log("[1] Unable to read: EOF"),
            fortio_log(
                "[0] Unable to read: read tcp 10.244.1.17:36868->10.96.14.7:8078: "
                "read: connection reset by peer"
            ),
            "Sockets used: 2 (for perfect no error run, would be 2)",
            "tcp short read : 2 (100.0 %)",
        ]
    )
    found = parse_fortio_tcp(fortio_json({"short read": 2}), stderr, 0, payload=PAYLOAD, count=2)
    assert sorted(r.transport_error.value for r in found) == ["eof", "reset"]
    assert all(responses.denied_l4()(r) for r in found)


def test_fortio_refused_connection() -> None:
    key = "dial tcp 10.96.14.7:8078: connect: connection refused"
    stderr = fortio_log(f"Unable to connect to 10.96.14.7:8078 : {key}")
    (found,) = parse_fortio_tcp(fortio_json({key: 1}), stderr, 0, payload=PAYLOAD, count=1)
    assert found.transport_error is TransportError.REFUSED and key in found.error_message


def test_fortio_abort_without_json_gives_every_request_the_reason() -> None:
    stderr = (
        fortio_log(
            "Unable to resolve nowhere.ns.svc.cluster.local: "
            "lookup nowhere.ns.svc.cluster.local: no such host"
        )
        + "\nAborting because of unable to create client 0 for tcp://nowhere.ns.svc.cluster.local:8078: "
        "lookup nowhere.ns.svc.cluster.local on 10.96.0.10:53: no such host\n"
    )
    found = parse_fortio_tcp("", stderr, 1, payload=PAYLOAD, count=3)
    assert len(found) == 3 and all(
        r.transport_error is TransportError.DNS and r.exit_code == 1 for r in found
    )


def test_fortio_exit_zero_without_json_is_a_call_error() -> None:
    with pytest.raises(CallError):
        parse_fortio_tcp("", "Successfully wrote 0 bytes\n", 0, payload=PAYLOAD, count=1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("read tcp 1.2.3.4:5->6.7.8.9:10: read: connection reset by peer", TransportError.RESET),
        ("short read: EOF", TransportError.EOF),
        ("read tcp 1.2.3.4:5->6.7.8.9:10: i/o timeout", TransportError.TIMEOUT),
        ("read not echoing writes", TransportError.OTHER),
    ],
)
def test_error_text_classification(text: str, expected: TransportError) -> None:
    assert classify_error_text(text) is expected


def test_describe_summarises_outcomes() -> None:
    batch = [
        Response(200),
        Response(200),
        Response(None, transport_error=TransportError.RESET),
        Response(None, scheme="tcp", body=PAYLOAD),
    ]
    assert describe(batch) == "200 x2, reset x1, ok x1"
