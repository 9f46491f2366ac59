"""Real ztunnel 1.27.9 output (../shared/captures, see its README.md) for parser and check tests.

Two ztunnels: node1 serves the client podA (10.88.0.10, `client-ns/client`), the source side; node2
serves podB (10.88.0.20, `server-ns/server`) and podC (10.88.0.40, `restricted-ns/restricted`), the
destination side. podU (10.88.0.30) is outside the mesh. Cases: 01/02 allowed; 03 DENY by principal
(`server-ns/deny-client-principal`, port 8081); 04 DENY by namespace (`server-ns/deny-client-namespace`,
port 8082); 05 an ALLOW that does not match (podC); 06 nothing listening (podB:9090); 07/08 plaintext
from podU into STRICT; 09/10 to the unmeshed podU.
"""

from __future__ import annotations

import json

from fixtures_data.shared_data import capture
from meshproof.evidence.prometheus import MetricSample, parse_exposition
from meshproof.evidence.ztunnel_logs import AccessLogRecord, parse_access_log

CAPTURE = "ztunnel-1.27.9"
ISTIOD_CAPTURE = "ztunnel-1.27.9-istiod"

CLIENT = "spiffe://cluster.local/ns/client-ns/sa/client"
SERVER = "spiffe://cluster.local/ns/server-ns/sa/server"
RESTRICTED = "spiffe://cluster.local/ns/restricted-ns/sa/restricted"
SERVER_POD = "server-5f7b9c8d4-fghij"
RESTRICTED_POD = "restricted-6d5c4b3a2-klmno"
CLIENT_IP, OUTSIDER_IP = "10.88.0.10", "10.88.0.30"
DENY_BY_PRINCIPAL = "server-ns/deny-client-principal"
DENY_BY_NAMESPACE = "server-ns/deny-client-namespace"
STRICT = "istio-system/istio_converted_static_strict"


def log_text(node: str, log_format: str = "plain") -> str:
    """The whole ztunnel log of `node` ("node1" source, "node2" destination), access and other lines."""
    return capture(CAPTURE, log_format, f"ztunnel-{node}.log").read_text()


def access_records(node: str, log_format: str = "plain") -> list[AccessLogRecord]:
    return parse_access_log(log_text(node, log_format))


def metrics_text(node: str, *, after_repeat: bool = False) -> str:
    name = f"metrics-{node}.after-repeat.txt" if after_repeat else f"metrics-{node}.txt"
    return capture(CAPTURE, "plain", name).read_text()


def metrics(node: str, *, after_repeat: bool = False) -> list[MetricSample]:
    return parse_exposition(metrics_text(node, after_repeat=after_repeat))


def hbone_port(record: AccessLogRecord) -> str | None:
    """The server port a record is about (the capture's cases differ by port)."""
    target = record.dst_hbone_addr or record.fields.get("dst.addr")
    return target.rsplit(":", 1)[1] if target else None


def istiod_workloads_json() -> str:
    """The workloads of a ztunnel fed by a real istiod, as `istioctl ztunnel-config workloads -o json`
    prints them: the `workloads` array of ztunnel's config_dump."""
    dump = json.loads(capture(ISTIOD_CAPTURE, "config_dump-strict.json").read_text())
    return json.dumps(dump["workloads"], indent=4)


def istiod_capture_text(name: str) -> str:
    return capture(ISTIOD_CAPTURE, name).read_text()
