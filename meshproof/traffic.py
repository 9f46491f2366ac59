"""Traffic sent from a client workload, and the Response model that checks read.

The Response model is the contract between traffic (which produces it) and checks (which judge it).

`call` runs a client inside the source pod through `Cluster.exec`:
- HTTP with curl (workloads.CURL_CONTAINER): the exit code is the client-visible failure signal the
  mesh documents (56 reset, 52 empty reply, 7 refused, 28 timeout; output-formats §5.3), and
  `-w '%{json}'` reports exit code, error text, status and timing per transfer.
- plain TCP with `fortio load tcp://` (workloads.APP_CONTAINER) against the server's TCP echo: the JSON
  result counts outcomes, and the error log lines tell a reset from an EOF.

Each request has its own timeout (`request_timeout`), separate from the budget of the whole exec and
from the caller's convergence budget (meshproof.wait): a hanging connection costs one request timeout,
not the test's whole wait (suite-anchors §3, istio #31407).

Command building and output parsing are pure functions, tested on real curl/fortio output.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, Protocol

from meshproof.checks.verdict import CheckFailed, Verdict
from meshproof.kube_api import PodExecutor, PodLister
from meshproof.wait import eventually
from meshproof.workloads import APP_CONTAINER, CURL_CONTAINER, Workload, pod_name


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

    For `scheme == "tcp"` there is never a status: a successful exchange has `transport_error NONE` and
    the echoed payload as `body`.
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
    scheme: str = "http"


Scheme = Literal["http", "tcp"]

DEFAULT_REQUEST_TIMEOUT = 5.0
EXEC_OVERHEAD_S = 15.0  # exec round trip, process start, DNS: on top of the per-request budgets
MAX_COUNT = 64

# --- errors ----------------------------------------------------------------------------------------


class CallError(RuntimeError):
    """The client could not be run or its output not understood: a harness problem, not a mesh verdict."""


# --- transport error classification ----------------------------------------------------------------

# curl exit codes -> transport error (curl's libcurl-errors; output-formats §5.3).
CURL_EXIT_CODES: dict[int, TransportError] = {
    0: TransportError.NONE,
    6: TransportError.DNS,
    7: TransportError.REFUSED,
    28: TransportError.TIMEOUT,
    35: TransportError.TLS,
    52: TransportError.EOF,
    56: TransportError.RESET,
}

_TEXT_SIGNALS: tuple[tuple[str, TransportError], ...] = (
    ("connection reset", TransportError.RESET),
    ("connection refused", TransportError.REFUSED),
    ("i/o timeout", TransportError.TIMEOUT),
    ("timed out", TransportError.TIMEOUT),
    ("timeout", TransportError.TIMEOUT),
    ("no such host", TransportError.DNS),
    ("could not resolve", TransportError.DNS),
    ("empty reply", TransportError.EOF),
    ("eof", TransportError.EOF),
    ("short read", TransportError.EOF),
    ("tls", TransportError.TLS),
    ("ssl", TransportError.TLS),
)


def classify_error_text(text: str) -> TransportError:
    """The transport error an error message names (OTHER when it names none we know)."""
    lowered = text.lower()
    for needle, error in _TEXT_SIGNALS:
        if needle in lowered:
            return error
    return TransportError.OTHER


def curl_transport_error(exit_code: int, message: str = "") -> TransportError:
    if exit_code in CURL_EXIT_CODES:
        return CURL_EXIT_CODES[exit_code]
    return classify_error_text(message) if message else TransportError.OTHER


# --- the echo server's reflection (fortio /debug) ---------------------------------------------------

ECHO_PATH = "/debug"  # fortio reflects headers only on this exact path (output-formats §1.4)
_DEBUG_FIRST_LINE = re.compile(r"echo debug server up for \S+ on (?P<host>\S+) - request from (?P<addr>\S+)")
_REQUEST_LINE = re.compile(r"^(?P<method>[A-Z]+) (?P<target>\S+) (?P<proto>HTTP/[0-9.]+)$")


@dataclass(frozen=True)
class EchoedRequest:
    """What fortio's /debug handler says it received.

    Header names are lower-cased. fortio prints one line per header and joins repeated values with ','
    (no space), so each list holds that one joined line; X-Forwarded-Client-Cert elements are
    ','-separated too and are split by meshproof.checks.identity.parse_xfcc, which respects quotes.
    """

    method: str
    target: str
    protocol: str
    headers: dict[str, list[str]]
    source_address: str  # IP only (the port is ephemeral); IPv6 without brackets
    source_port: int | None
    server_hostname: str
    body: str


def parse_fortio_debug(body: str) -> EchoedRequest | None:
    """Parse a fortio /debug response body; None when the body is not one (another path, a proxy's reply)."""
    lines = body.split("\n")
    first = _DEBUG_FIRST_LINE.search(lines[0]) if lines else None
    if first is None:
        return None
    address, port = split_host_port(first.group("addr"))
    method = target = protocol = ""
    headers: dict[str, list[str]] = {}
    section = "preamble"
    body_lines: list[str] = []
    for line in lines[1:]:
        if section == "body":
            body_lines.append(line)
            continue
        if line == "headers:":
            section = "headers"
            continue
        if line == "body:":
            section = "body"
            continue
        if not line:
            continue
        if section == "preamble":
            request_line = _REQUEST_LINE.match(line)
            if request_line:
                method, target, protocol = request_line.group("method", "target", "proto")
        elif section == "headers":
            name, sep, value = line.partition(": ")
            if sep:
                headers.setdefault(name.lower(), []).append(value)
    # fortio writes "body:\n\n<body>\n": drop the blank line after the marker and the final newline.
    echoed_body = "\n".join(body_lines[1:] if body_lines[:1] == [""] else body_lines)
    return EchoedRequest(
        method=method,
        target=target,
        protocol=protocol,
        headers=headers,
        source_address=address,
        source_port=port,
        server_hostname=first.group("host"),
        body=echoed_body.removesuffix("\n"),
    )


def split_host_port(address: str) -> tuple[str, int | None]:
    """'10.1.2.3:5678' -> ('10.1.2.3', 5678); '[fd00::1]:80' -> ('fd00::1', 80)."""
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        port_text = rest.removeprefix(":")
    else:
        host, sep, port_text = address.rpartition(":")
        if not sep:
            return address, None
    return host, int(port_text) if port_text.isdigit() else None


# --- curl (HTTP) -----------------------------------------------------------------------------------

# Runs "$@" (the curl command) N times, each a new process and so a new connection. Positional
# arguments carry the curl command, so no value is ever parsed by the shell.
_LOOP_SCRIPT = 'n="$1"; shift; i=0; while [ "$i" -lt "$n" ]; do "$@"; i=$((i+1)); done; exit 0'


def new_marker() -> str:
    return f"mp{secrets.token_hex(4)}"


def curl_write_out(marker: str) -> str:
    """The -w format closing every transfer: its JSON summary and response headers between markers.

    It must not start with '@': curl reads `-w @name` as "take the format from file name".
    """
    return f"::{marker}::%{{json}}::{marker}-headers::%{{header_json}}::{marker}-end::\\n"


def curl_command(
    url: str,
    *,
    marker: str,
    request_timeout: float,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    data: str | None = None,
    count: int = 1,
    new_connection: bool = True,
) -> list[str]:
    """The argv that sends `count` requests with curl; one -w record per request on stdout."""
    _check_count(count)
    args = [
        "curl",
        "--silent",
        "--show-error",
        "--http1.1",
        "--max-time",
        _seconds(request_timeout),
        "--connect-timeout",
        _seconds(request_timeout),
        "--request",
        method.upper(),
        "--write-out",
        curl_write_out(marker),
    ]
    for name, value in (headers or {}).items():
        args += ["--header", f"{name}: {value}"]
    if data is not None:
        args += ["--data-binary", data]
    if count == 1:
        return [*args, url]
    if new_connection:
        return ["sh", "-c", _LOOP_SCRIPT, "sh", str(count), *args, url]
    # One curl process for all: it reuses the connection between the URLs.
    return [*args, *([url] * count)]


def _record_pattern(marker: str) -> re.Pattern[str]:
    m = re.escape(marker)
    return re.compile(
        rf"(?P<body>.*?)::{m}::(?P<json>.*?)::{m}-headers::(?P<headers>.*?)::{m}-end::\n?", re.DOTALL
    )


def parse_curl_output(stdout: str, marker: str, *, target: str = "") -> list[Response]:
    """One Response per -w record in curl's stdout (body, then the record closing it)."""
    responses = []
    for match in _record_pattern(marker).finditer(stdout):
        try:
            summary = json.loads(match.group("json"))
            header_lists = json.loads(match.group("headers") or "{}")
        except json.JSONDecodeError as exc:
            raise CallError(f"curl -w output is not JSON ({exc}); is curl older than 7.83?") from exc
        responses.append(response_from_curl(summary, header_lists, match.group("body"), target=target))
    return responses


def response_from_curl(
    summary: Mapping[str, Any], header_lists: Mapping[str, Any], body: str, *, target: str = ""
) -> Response:
    exit_code = int(summary.get("exitcode") or 0)
    message = str(summary.get("errormsg") or "")
    http_code = int(summary.get("http_code") or summary.get("response_code") or 0)
    headers = {str(k).lower(): ", ".join(str(v) for v in _as_list(vals)) for k, vals in header_lists.items()}
    echoed = parse_fortio_debug(body) if http_code else None
    return Response(
        status=http_code or None,
        headers=headers,
        body=body,
        exit_code=exit_code,
        transport_error=curl_transport_error(exit_code, message),
        error_message=message,
        request_headers=echoed.headers if echoed else {},
        source_address=echoed.source_address if echoed else None,
        server_hostname=echoed.server_hostname if echoed else None,
        duration_s=_float_or_none(summary.get("time_total")),
        target=target or str(summary.get("url") or ""),
        scheme="http",
    )


# --- fortio (plain TCP) ----------------------------------------------------------------------------

TCP_OK = "OK"  # fortio's RetCodes key for an echoed exchange


def tcp_payload(marker: str) -> str:
    return f"meshproof-{marker}"


def fortio_tcp_command(
    host: str, port: int, *, payload: str, request_timeout: float, count: int = 1, new_connection: bool = True
) -> list[str]:
    """`fortio load` against a TCP echo: -n requests, on -c connections (one each for new connections).

    No warm-up with -n (tcprunner), so the first request is a counted one. `-timeout` bounds each read.
    """
    _check_count(count)
    return [
        "fortio",
        "load",
        "-qps",
        "0",
        "-n",
        str(count),
        "-c",
        str(count if new_connection else 1),
        "-timeout",
        f"{max(1, round(request_timeout * 1000))}ms",
        "-payload",
        payload,
        "-json",
        "-",
        f"tcp://{host}:{port}",
    ]


def parse_fortio_tcp(
    stdout: str, stderr: str, exit_code: int, *, payload: str, count: int, target: str = ""
) -> list[Response]:
    """Responses from `fortio load tcp://` output.

    The JSON's RetCodes count outcomes: "OK", "short read" (the peer closed or reset mid-exchange), or an
    error text (e.g. "dial tcp ...: connect: connection refused"). A short read is split into RESET and
    EOF by the per-connection error log lines ("Unable to read: ... connection reset by peer" / "EOF").
    Without JSON fortio aborted before the run (e.g. DNS): every request gets the abort reason.
    """
    result = _json_object(stdout)
    logs = _fortio_log_messages(stderr)
    if result is None:
        reason = _abort_reason(stderr) or "fortio wrote no result"
        if exit_code == 0:
            raise CallError(f"fortio exited 0 without a JSON result: {reason}")
        return [_tcp_failure(reason, exit_code, target) for _ in range(count)]
    read_errors = [m.split("Unable to read: ", 1)[1] for m in logs if "Unable to read: " in m]
    duration = _float_or_none((result.get("DurationHistogram") or {}).get("Avg"))
    responses: list[Response] = []
    for key, n in sorted((result.get("RetCodes") or {}).items()):
        for _ in range(int(n)):
            if key == TCP_OK:
                responses.append(
                    Response(
                        None,
                        body=payload,
                        exit_code=exit_code,
                        duration_s=duration,
                        target=target,
                        scheme="tcp",
                    )
                )
                continue
            detail = read_errors.pop(0) if key == "short read" and read_errors else ""
            message = f"{key}: {detail}" if detail else key
            responses.append(_tcp_failure(message, exit_code, target))
    return responses


def _tcp_failure(message: str, exit_code: int, target: str) -> Response:
    return Response(
        None,
        exit_code=exit_code,
        transport_error=classify_error_text(message),
        error_message=message,
        target=target,
        scheme="tcp",
    )


def _fortio_log_messages(stderr: str) -> list[str]:
    """The msg of every JSON log line fortio wrote (non-JSON lines are its text report)."""
    messages = []
    for line in stderr.splitlines():
        entry = _json_object(line)
        if entry is not None and "msg" in entry:
            messages.append(str(entry["msg"]))
    return messages


def _abort_reason(stderr: str) -> str:
    for line in stderr.splitlines():
        if line.startswith("Aborting because of "):
            return line.removeprefix("Aborting because of ").strip()
    errors = [m for m in _fortio_log_messages(stderr) if m]
    return errors[-1] if errors else ""


# --- the call --------------------------------------------------------------------------------------


class CallCluster(PodLister, PodExecutor, Protocol):
    """What `call` needs of meshproof.kube.Cluster: find the source pod, exec in it."""


def exec_budget(count: int, request_timeout: float, scheme: Scheme, new_connection: bool) -> float:
    """The whole exec's timeout: every request's own budget plus overhead.

    curl requests run one after the other (--max-time caps each); fortio runs new connections in
    parallel (-c count) but reuses one connection sequentially.
    """
    sequential = 1 if (scheme == "tcp" and new_connection) else count
    return sequential * request_timeout + EXEC_OVERHEAD_S


def call(
    cluster: CallCluster,
    src: Workload,
    dst: Workload | str,
    port: int,
    scheme: Scheme = "http",
    path: str = "/",
    headers: Mapping[str, str] | None = None,
    count: int = 1,
    new_connection: bool = True,
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
    *,
    method: str = "GET",
    data: str | None = None,
) -> list[Response]:
    """Send `count` requests from a pod of `src` to `dst` (a server Workload or a host name) on `port`.

    Returns one Response per request. Raises CallError when the client cannot run or its output cannot
    be read (not a mesh verdict: `eventually` retries it like any failed attempt).
    """
    host = dst.host if isinstance(dst, Workload) else dst
    pod = pod_name(cluster, src)
    marker = new_marker()
    if scheme == "http":
        if not path.startswith("/"):
            raise ValueError(f"path must start with '/': {path!r}")
        url = f"http://{host}:{port}{path}"
        command = curl_command(
            url,
            marker=marker,
            request_timeout=request_timeout,
            method=method,
            headers=headers,
            data=data,
            count=count,
            new_connection=new_connection,
        )
        container = CURL_CONTAINER
    elif scheme == "tcp":
        url = f"tcp://{host}:{port}"
        payload = tcp_payload(marker)
        command = fortio_tcp_command(
            host,
            port,
            payload=payload,
            request_timeout=request_timeout,
            count=count,
            new_connection=new_connection,
        )
        container = APP_CONTAINER
    else:
        raise ValueError(f"unknown scheme {scheme!r}: expected http or tcp")
    result = cluster.exec(
        pod,
        src.namespace,
        command,
        container=container,
        timeout=exec_budget(count, request_timeout, scheme, new_connection),
    )
    if scheme == "http":
        responses = parse_curl_output(result.stdout, marker, target=url)
    else:
        responses = parse_fortio_tcp(
            result.stdout, result.stderr, result.exit_code, payload=payload, count=count, target=url
        )
    if len(responses) != count:
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise CallError(
            f"{src} -> {url}: expected {count} result(s) from the client, read {len(responses)} "
            f"(exit {result.exit_code}: {tail[0][:200]})"
        )
    return responses


def describe(responses: Sequence[Response]) -> str:
    """A one-line summary for messages and JUnit properties: '200 x2, reset x1'."""
    counts: dict[str, int] = {}
    for r in responses:
        key = (
            str(r.status)
            if r.status is not None
            else ("ok" if r.transport_error is TransportError.NONE else r.transport_error.value)
        )
        counts[key] = counts.get(key, 0) + 1
    return ", ".join(f"{k} x{n}" for k, n in counts.items()) or "no responses"


# --- helpers ---------------------------------------------------------------------------------------


def _check_count(count: int) -> None:
    if not 1 <= count <= MAX_COUNT:
        raise ValueError(f"count must be between 1 and {MAX_COUNT}, got {count}")


def _seconds(value: float) -> str:
    if value <= 0:
        raise ValueError(f"request timeout must be positive, got {value}")
    return f"{value:g}"


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _float_or_none(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _json_object(text: str) -> dict[str, Any] | None:
    text = text.strip()
    if not text.startswith("{"):
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


# --- expectations: traffic that converges on a verdict ---------------------------------------------


class Judge(Protocol):
    """A check over one response (meshproof.checks.responses.Check is one)."""

    def __call__(self, response: Response, /) -> Verdict: ...


@dataclass
class Traffic:
    """Send calls until every response passes a check `converge` times in a row (suite-anchors §3).

    Every assertion is inside the loop; the budget (`converge_timeout`, e.g. Timeouts.policy) covers
    config propagation, while each request keeps its own `request_timeout`. What was finally observed is
    recorded through `record` (pytest's record_property: a JUnit property per expectation).
    """

    cluster: CallCluster
    converge_timeout: float
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    converge: int = 3
    record: Callable[[str, object], None] | None = None
    _count: int = field(default=0, init=False)

    def expect(
        self,
        src: Workload,
        dst: Workload | str,
        port: int,
        check: Judge,
        *,
        description: str,
        scheme: Scheme = "http",
        path: str = ECHO_PATH,
        method: str = "GET",
        headers: Mapping[str, str] | None = None,
        count: int = 1,
        timeout: float | None = None,
    ) -> list[Response]:
        """Converge on `check` passing for all `count` responses of a call; return the last responses."""
        check_name = str(getattr(check, "name", check))

        def attempt() -> list[Response]:
            responses = call(
                self.cluster,
                src,
                dst,
                port,
                scheme,
                path,
                headers,
                count,
                True,
                self.request_timeout,
                method=method,
            )
            for index, response in enumerate(responses):
                verdict = check(response)
                if not verdict.ok:
                    raise CheckFailed(
                        f"{check_name} (response {index + 1}/{len(responses)}): {verdict.reason}"
                    )
            return responses

        host = dst if isinstance(dst, str) else dst.host
        what = f"{method} {path}" if scheme == "http" else "tcp"
        where = f"{src} -> {host}:{port} {what}"
        responses = eventually(
            attempt,
            timeout=timeout if timeout is not None else self.converge_timeout,
            converge=self.converge,
            description=f"{description} [{where}]",
        )
        self._count += 1
        if self.record is not None:
            self.record(
                f"traffic.{self._count}",
                f"{description}: {check_name} held {self.converge}x in a row ({describe(responses)})",
            )
        return responses
