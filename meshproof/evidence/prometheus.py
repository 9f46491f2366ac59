"""A small parser for the Prometheus text / OpenMetrics exposition formats, and sample selection.

ztunnel's `:15020/metrics` is OpenMetrics text ending in `# EOF` (output-formats §4.1); an Envoy's
`/stats/prometheus` is the classic text format. Both are lines of `name{label="value",...} value
[timestamp]` plus `#` comment lines, which is all this reads. Label values unescape `\\\\`, `\\"`, `\\n`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from meshproof.evidence.errors import EvidenceParseError

TCP_OPENED = "istio_tcp_connections_opened_total"
TCP_CLOSED = "istio_tcp_connections_closed_total"
TCP_RECEIVED_BYTES = "istio_tcp_received_bytes_total"
TCP_SENT_BYTES = "istio_tcp_sent_bytes_total"
REQUESTS_TOTAL = "istio_requests_total"


@dataclass(frozen=True)
class MetricSample:
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    value: float = 0.0

    def label(self, key: str) -> str | None:
        return self.labels.get(key)


def parse_exposition(text: str) -> list[MetricSample]:
    """Parse every sample line; comment lines (# HELP/TYPE/UNIT/EOF) and blank lines are skipped."""
    samples: list[MetricSample] = []
    for number, raw_line in enumerate(text.splitlines(), start=1):
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            samples.append(_parse_sample(line))
        except EvidenceParseError as exc:
            raise EvidenceParseError(f"metrics line {number}: {exc}: {line[:120]!r}") from None
    return samples


def select(
    samples: Iterable[MetricSample], name: str, labels: Mapping[str, str] | None = None
) -> list[MetricSample]:
    """The samples called `name` whose labels include every given key=value."""
    wanted = dict(labels or {})
    return [s for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in wanted.items())]


def total(samples: Iterable[MetricSample]) -> float:
    return sum(sample.value for sample in samples)


def _parse_sample(line: str) -> MetricSample:
    brace = line.find("{")
    space = _first_whitespace(line)
    if brace != -1 and (space == -1 or brace < space):
        name = line[:brace]
        labels, end = _parse_labels(line, brace + 1)
        rest = line[end:]
    else:
        if space == -1:
            raise EvidenceParseError("sample without a value")
        name, rest = line[:space], line[space:]
        labels = {}
    if not name or not _is_metric_name(name):
        raise EvidenceParseError(f"bad metric name {name!r}")
    value_text = rest.split("#", 1)[0].split()  # drop an OpenMetrics exemplar, keep value [timestamp]
    if not value_text:
        raise EvidenceParseError("sample without a value")
    return MetricSample(name=name, labels=labels, value=_parse_value(value_text[0]))


def _parse_labels(line: str, start: int) -> tuple[dict[str, str], int]:
    labels: dict[str, str] = {}
    index = start
    while True:
        while index < len(line) and line[index] in " ,":
            index += 1
        if index >= len(line):
            raise EvidenceParseError("unterminated label set")
        if line[index] == "}":
            return labels, index + 1
        equals = line.find("=", index)
        if equals == -1:
            raise EvidenceParseError("label without '='")
        key = line[index:equals].strip()
        if not key or line[equals + 1 : equals + 2] != '"':
            raise EvidenceParseError(f"label {key!r} without a quoted value")
        value, index = _parse_quoted(line, equals + 2)
        labels[key] = value


def _parse_quoted(line: str, start: int) -> tuple[str, int]:
    out: list[str] = []
    index = start
    while index < len(line):
        char = line[index]
        if char == "\\" and index + 1 < len(line):
            nxt = line[index + 1]
            out.append("\n" if nxt == "n" else nxt)
            index += 2
        elif char == '"':
            return "".join(out), index + 1
        else:
            out.append(char)
            index += 1
    raise EvidenceParseError("unterminated label value")


def _parse_value(text: str) -> float:
    try:
        return float(text)  # also reads +Inf, -Inf and NaN
    except ValueError:
        raise EvidenceParseError(f"value {text!r} is not a number") from None


def _first_whitespace(line: str) -> int:
    for index, char in enumerate(line):
        if char in " \t":
            return index
    return -1


def _is_metric_name(name: str) -> bool:
    return all(c.isalnum() or c in "_:" for c in name) and not name[0].isdigit()
