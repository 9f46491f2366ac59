"""Parser for ztunnel access log lines (stdout of a ztunnel pod, Istio 1.27).

Format: output-formats §4.2, checked against real ztunnel 1.27.9 output (../shared/captures). Plain
layout is `<time>\\t<level>\\taccess\\t<message>\\t<k=v k=v ...>` with Rust-Debug-quoted strings (`"..."`,
`\\"` and `\\\\` escapes) and unquoted addresses/integers; fields whose value is absent are omitted (an
inbound line without `src.identity` was plaintext: identities are logged only for mTLS). With
LOG_FORMAT=json each line is one compact JSON object with `level`, `time`, `scope`, `message` and the same
dotted keys (integers as JSON numbers); access records have scope `access`, everything else a module
path such as `ztunnel::xds` and is skipped, as are the other targets of the plain format. A policy
rejection is an ERROR `connection complete` record with `error="connection closed due to policy
rejection: ..."`, written only by the destination ztunnel.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from meshproof.evidence.errors import EvidenceParseError

ACCESS_TARGET = "access"
POLICY_REJECTION = "connection closed due to policy rejection"

_DURATION = re.compile(r"^(\d+)ms$")
_KEY = re.compile(r"[A-Za-z0-9_.]+")


@dataclass(frozen=True)
class AccessLogRecord:
    """One ztunnel access log line."""

    time: str
    level: str  # debug | info | warn | error
    message: str  # "connection opened" | "connection complete" | "connection failed"
    fields: Mapping[str, str] = field(default_factory=dict)

    @property
    def src_identity(self) -> str | None:
        return self.fields.get("src.identity")

    @property
    def dst_identity(self) -> str | None:
        return self.fields.get("dst.identity")

    @property
    def direction(self) -> str | None:
        return self.fields.get("direction")

    @property
    def error(self) -> str | None:
        return self.fields.get("error")

    @property
    def src_ip(self) -> str | None:
        """The host part of `src.addr` (`10.1.2.3:5678`, `[fd00::1]:5678`). Its port is no key: the
        source ztunnel pools HBONE connections, so inbound records of separate requests share ports."""
        addr = self.fields.get("src.addr")
        if not addr:
            return None
        host = addr.rsplit(":", 1)[0] if addr.count(":") == 1 or addr.startswith("[") else addr
        return host.strip("[]")

    @property
    def src_workload(self) -> str | None:
        return self.fields.get("src.workload")

    @property
    def src_namespace(self) -> str | None:
        return self.fields.get("src.namespace")

    @property
    def dst_workload(self) -> str | None:
        return self.fields.get("dst.workload")

    @property
    def dst_namespace(self) -> str | None:
        return self.fields.get("dst.namespace")

    @property
    def dst_service(self) -> str | None:
        return self.fields.get("dst.service")

    @property
    def dst_hbone_addr(self) -> str | None:
        return self.fields.get("dst.hbone_addr")

    @property
    def bytes_sent(self) -> int | None:
        return _int(self.fields.get("bytes_sent"))

    @property
    def bytes_recv(self) -> int | None:
        return _int(self.fields.get("bytes_recv"))

    @property
    def duration_ms(self) -> int | None:
        match = _DURATION.match(self.fields.get("duration", ""))
        return int(match.group(1)) if match else None


def parse_access_log(text: str) -> list[AccessLogRecord]:
    """Every access record in the log text, in order; non-access lines are skipped."""
    records: list[AccessLogRecord] = []
    for number, raw_line in enumerate(text.splitlines(), start=1):
        line = raw_line.rstrip("\r")
        if not line.strip():
            continue
        try:
            record = _parse_json_line(line) if line.lstrip().startswith("{") else _parse_plain_line(line)
        except EvidenceParseError as exc:
            raise EvidenceParseError(f"ztunnel log line {number}: {exc}: {line[:160]!r}") from None
        if record is not None:
            records.append(record)
    return records


def _parse_plain_line(line: str) -> AccessLogRecord | None:
    parts = line.split("\t", 4)
    if len(parts) < 4 or not _is_access_target(parts[2].strip()):
        return None
    time, level, _target, message = (part.strip() for part in parts[:4])
    message = message.strip('"')  # the message is written with {:?}; for format_args that adds no quotes
    fields = parse_key_values(parts[4]) if len(parts) == 5 else {}
    return AccessLogRecord(time=time, level=level.lower(), message=message, fields=fields)


def _parse_json_line(line: str) -> AccessLogRecord | None:
    try:
        data = json.loads(line)
    except json.JSONDecodeError:
        return None  # not a JSON log line (another component's output); nothing to read
    if not isinstance(data, dict) or not _is_access_target(str(data.get("scope", data.get("target", "")))):
        return None
    fields = {
        key: value if isinstance(value, str) else json.dumps(value)
        for key, value in data.items()
        if key not in ("level", "time", "scope", "target", "message")
    }
    return AccessLogRecord(
        time=str(data.get("time", "")),
        level=str(data.get("level", "")).lower(),
        message=str(data.get("message", "")),
        fields=fields,
    )


def _is_access_target(target: str) -> bool:
    # ztunnel's IstioFormat appends span names as ":span{fields}" after the target (telemetry.rs).
    return target == ACCESS_TARGET or target.startswith(ACCESS_TARGET + ":")


def parse_key_values(text: str) -> dict[str, str]:
    """Parse `k=v k="quoted \\"v\\"" ...` as ztunnel writes it; unquoted values run to the next space."""
    fields: dict[str, str] = {}
    index = 0
    length = len(text)
    while index < length:
        while index < length and text[index] in " \t":
            index += 1
        if index >= length:
            break
        key_match = _KEY.match(text, index)
        if key_match is None or key_match.end() >= length or text[key_match.end()] != "=":
            raise EvidenceParseError(f"expected key=value at column {index}")
        key = key_match.group(0)
        index = key_match.end() + 1
        if index < length and text[index] == '"':
            value, index = _rust_debug_string(text, index + 1)
        else:
            end = index
            while end < length and text[end] not in " \t":
                end += 1
            value, index = text[index:end], end
        fields[key] = value
    return fields


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\", '"': '"', "'": "'"}


def _rust_debug_string(text: str, start: int) -> tuple[str, int]:
    """Read a Rust `{:?}` string body starting after its opening quote; return (value, index after)."""
    out: list[str] = []
    index = start
    while index < len(text):
        char = text[index]
        if char == '"':
            return "".join(out), index + 1
        if char == "\\" and index + 1 < len(text):
            nxt = text[index + 1]
            if nxt == "u" and text[index + 2 : index + 3] == "{":
                close = text.find("}", index + 3)
                if close == -1:
                    raise EvidenceParseError("unterminated \\u{...} escape")
                out.append(chr(int(text[index + 3 : close], 16)))
                index = close + 1
                continue
            out.append(_ESCAPES.get(nxt, nxt))
            index += 2
            continue
        out.append(char)
        index += 1
    raise EvidenceParseError("unterminated quoted value")


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
