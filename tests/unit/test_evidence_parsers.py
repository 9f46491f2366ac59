"""Parsers of mesh evidence, on samples in the exact formats the tools emit (output-formats §2-§4).

Static samples live in tests/fixtures_data/; certificate dumps are built here around freshly generated
certificates (same keys, nesting, base64 wrapping and 4-space indent as istioctl) so they never expire.
What this cannot prove: that a future istioctl/ztunnel keeps these formats; the samples are hand-made
from the format facts, not captured from a live cluster.
"""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path

import pytest
from fixtures_data.spiffe_pki import Pki, pem_of

from meshproof.checks.identity import verify_workload_certificate
from meshproof.evidence.errors import EvidenceParseError
from meshproof.evidence.policy_status import generation, policy_conditions
from meshproof.evidence.prometheus import TCP_CLOSED, TCP_OPENED, parse_exposition, select, total
from meshproof.evidence.proxy_config import parse_secrets
from meshproof.evidence.ztunnel_config import parse_certificates, parse_workloads
from meshproof.evidence.ztunnel_logs import parse_access_log, parse_key_values

DATA = Path(__file__).resolve().parents[1] / "fixtures_data"
CLIENT = "spiffe://cluster.local/ns/mp-ambient/sa/client"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# --- ztunnel-config workloads ---------------------------------------------------------------------------


def test_workloads_json_gives_protocol_waypoint_and_identity() -> None:
    workloads = {w.name: w for w in parse_workloads((DATA / "ztunnel_workloads.json").read_text())}

    client = workloads["client-5d8f7c9b4-x2k9q"]
    assert (client.namespace, client.protocol, client.service_account, client.node) == (
        "mp-ambient",
        "HBONE",
        "client",
        "kind-worker",
    )
    assert client.uid == "Kubernetes//Pod/mp-ambient/client-5d8f7c9b4-x2k9q"
    assert client.spiffe_id == CLIENT
    assert client.waypoint is None
    assert client.authorization_policies == ("istio-system/istio_converted_static_strict",)

    behind_waypoint = workloads["echo-66b8f7d4c9-zt5lm"]
    assert behind_waypoint.waypoint == "mp-waypoint/waypoint.mp-waypoint.svc.cluster.local"
    assert behind_waypoint.network == "net1"

    assert workloads["legacy-6c9b8d-qwert"].protocol == "TCP"
    job = workloads["migrate-29183720-8kq2w"]
    assert job.workload_ips == () and job.workload_type == "job" and job.status == "Unhealthy"


def test_workloads_empty_filter_result_is_an_empty_list() -> None:
    assert parse_workloads("[]\n") == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Error: no ztunnel pods found", "not JSON"),
        ('{"uid": "x"}', "expected a JSON array"),
        ('[{"uid": "Kubernetes//Pod/a/b", "name": "b", "namespace": "a"}]', "missing 'protocol'"),
        ('[{"uid": 1, "name": "b", "namespace": "a", "protocol": "TCP"}]', "expected a string"),
    ],
)
def test_workloads_malformed_output_is_named(text: str, message: str) -> None:
    with pytest.raises(EvidenceParseError, match=message):
        parse_workloads(text)


# --- ztunnel-config certificates -----------------------------------------------------------------------


def _cert_entry(pem: str, serial: int) -> dict[str, str]:
    return {
        "pem": b64(pem),
        "serialNumber": str(serial),
        "validFrom": "2025-06-01T09:12:44Z",
        "expirationTime": "2025-06-02T09:14:44Z",
    }


def test_certificates_json_decodes_chain_and_roots_that_verify() -> None:
    pki = Pki()
    root = pki.root()
    inter = pki.intermediate(root)
    leaf = pki.leaf(inter, [CLIENT])
    dump = [
        {
            "identity": CLIENT,
            "state": "Available",
            "certChain": [_cert_entry(leaf.pem, leaf.cert.serial_number), _cert_entry(inter.pem, 2)],
            "rootCerts": [_cert_entry(root.pem, 1)],
        },
        {
            "identity": "spiffe://cluster.local/ns/mp-ambient/sa/echo",
            "state": "Initializing",
            "certChain": [],
            "rootCerts": [],
        },
        {
            "identity": "spiffe://cluster.local/ns/mp-ambient/sa/gone",
            "state": "Unavailable: signing gRPC error (Unavailable)",
            "certChain": [],
            "rootCerts": [],
        },
    ]

    certs = parse_certificates(json.dumps(dump, indent=4))

    first = certs[0]
    assert first.identity == CLIENT and first.state == "Available"
    assert first.chain[0].serial_number == str(leaf.cert.serial_number)
    assert first.chain_pem == pem_of(leaf, inter)
    assert first.roots_pem == root.pem
    assert verify_workload_certificate(first.chain_pem, CLIENT, first.roots_pem).ok
    assert certs[1].chain == () and certs[2].state.startswith("Unavailable")


def test_certificates_pem_that_is_not_base64_is_an_error() -> None:
    dump = [
        {"identity": CLIENT, "state": "Available", "certChain": [{"pem": "-----BEGIN CERT"}], "rootCerts": []}
    ]

    with pytest.raises(EvidenceParseError, match=r"certChain\[0\]: not base64"):
        parse_certificates(json.dumps(dump))


# --- proxy-config secret --------------------------------------------------------------------------------


def _secret_dump(chain_pem: str, root_pem: str, *, warming: bool = False, federated: bool = False) -> str:
    tls_type = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
    spiffe_type = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.SPIFFECertValidatorConfig"
    validation: dict[str, object] = {"trustedCa": {"inlineBytes": b64(root_pem)}}
    if federated:
        validation = {
            "customValidatorConfig": {
                "name": "envoy.tls.cert_validator.spiffe",
                "typedConfig": {
                    "@type": spiffe_type,
                    "trustDomains": [
                        {"name": "cluster.local", "trustBundle": {"inlineBytes": b64(root_pem)}}
                    ],
                },
            }
        }
    dump: dict[str, object] = {
        "dynamicActiveSecrets": [
            {
                "name": "default",
                "versionInfo": "2025-06-01T09:14:45Z/3",
                "lastUpdated": "2025-06-01T09:14:45.123Z",
                "secret": {
                    "@type": tls_type,
                    "name": "default",
                    "tlsCertificate": {
                        "certificateChain": {"inlineBytes": b64(chain_pem)},
                        "privateKey": {"inlineBytes": b64("[redacted]")},
                    },
                },
            },
            {
                "name": "ROOTCA",
                "versionInfo": "2025-06-01T09:14:45Z/2",
                "lastUpdated": "2025-06-01T09:14:45.120Z",
                "secret": {"@type": tls_type, "name": "ROOTCA", "validationContext": validation},
            },
        ]
    }
    if warming:
        dump["dynamicWarmingSecrets"] = [
            {
                "name": "default",
                "versionInfo": "uninitialized",
                "lastUpdated": "2025-06-01T09:14:40Z",
                "secret": {},
            }
        ]
    return json.dumps(dump, indent=4)


def test_proxy_config_secret_gives_workload_chain_and_roots() -> None:
    pki = Pki()
    root = pki.root()
    inter = pki.intermediate(root)
    leaf = pki.leaf(inter, ["spiffe://cluster.local/ns/mp-sidecar/sa/echo"])

    secrets = parse_secrets(_secret_dump(pem_of(leaf, inter, root), root.pem, warming=True))

    assert secrets.workload_chain_pem == pem_of(leaf, inter, root)
    assert secrets.roots_pem == root.pem
    assert secrets.warming[0].version_info == "uninitialized" and secrets.warming[0].cert_chain_pem is None
    assert verify_workload_certificate(
        secrets.workload_chain_pem, "spiffe://cluster.local/ns/mp-sidecar/sa/echo", secrets.roots_pem
    ).ok


def test_proxy_config_secret_with_federated_spiffe_validator() -> None:
    pki = Pki()
    root = pki.root()
    leaf = pki.leaf(root)

    secrets = parse_secrets(_secret_dump(leaf.pem, root.pem, federated=True))

    root_secret = secrets.active_named("ROOTCA")
    assert root_secret is not None and root_secret.trust_bundles == {"cluster.local": root.pem}
    assert secrets.roots_pem == root.pem


def test_proxy_config_secret_before_sds_is_empty_not_an_error() -> None:
    secrets = parse_secrets("{}")

    assert secrets.workload_chain_pem is None and secrets.roots_pem is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("No active or warming secrets found.", "not JSON"),
        ("[]", "expected a JSON object"),
        ('{"dynamicActiveSecrets": [{"secret": {}}]}', "missing 'name'"),
    ],
)
def test_proxy_config_secret_malformed(text: str, message: str) -> None:
    with pytest.raises(EvidenceParseError, match=message):
        parse_secrets(text)


# --- ztunnel metrics ------------------------------------------------------------------------------------


def test_ztunnel_openmetrics_with_labels() -> None:
    samples = parse_exposition((DATA / "ztunnel_metrics.txt").read_text())

    mtls_inbound = select(
        samples,
        TCP_OPENED,
        {"reporter": "destination", "connection_security_policy": "mutual_tls", "source_principal": CLIENT},
    )
    assert total(mtls_inbound) == 7
    assert mtls_inbound[0].labels["destination_principal"] == "spiffe://cluster.local/ns/mp-ambient/sa/echo"
    assert len(mtls_inbound[0].labels) == 27  # every label of output-formats §4.1, none dropped
    assert total(select(samples, TCP_CLOSED, {"response_flags": "DENY"})) == 3
    assert total(select(samples, TCP_OPENED, {"connection_security_policy": "unknown"})) == 2
    assert select(samples, "istio_build")[0].labels == {"component": "ztunnel", "tag": "1.27.3"}
    assert select(samples, "workload_manager_active_proxy_count")[0].value == 3


def test_exposition_edge_cases() -> None:
    text = "\n".join(
        [
            "# TYPE envoy_cluster_upstream_rq counter",
            'envoy_cluster_upstream_rq{response_code="200",cluster_name="outbound|80||echo"} 42 1717236000',
            'weird{msg="quote \\" backslash \\\\ newline \\n end",} +Inf',
            "no_labels_metric NaN",
            'with_exemplar_total{a="b"} 5 # {trace_id="abc"} 1.0',
            "",
        ]
    )

    samples = parse_exposition(text)

    assert samples[0].labels["cluster_name"] == "outbound|80||echo" and samples[0].value == 42
    assert samples[1].labels["msg"] == 'quote " backslash \\ newline \n end' and math.isinf(samples[1].value)
    assert samples[2].name == "no_labels_metric" and math.isnan(samples[2].value)
    assert samples[3].value == 5


@pytest.mark.parametrize(
    "line", ['m{a="b" 1', "m{a=b} 1", "m{} notanumber", 'm{a="unterminated} 1', "lonely"]
)
def test_exposition_malformed_line_is_named(line: str) -> None:
    with pytest.raises(EvidenceParseError, match="metrics line 2"):
        parse_exposition(f"ok 1\n{line}\n")


# --- ztunnel access logs -------------------------------------------------------------------------------


def test_access_log_plain_format() -> None:
    records = parse_access_log((DATA / "ztunnel_access.log").read_text())

    assert len(records) == 9  # xds and proxy::inbound lines are not access records
    opened, inbound, outbound, allow_miss, unauthorized, strict_deny, plaintext, early, timeout = records
    assert opened.level == "debug" and opened.message == "connection opened" and opened.bytes_sent is None
    assert inbound.message == "connection complete" and inbound.direction == "inbound"
    assert inbound.src_identity == CLIENT
    assert inbound.dst_identity == "spiffe://cluster.local/ns/mp-ambient/sa/echo"
    assert inbound.dst_hbone_addr == "10.244.2.9:8080" and inbound.fields["dst.addr"] == "10.244.2.9:15008"
    assert (inbound.bytes_sent, inbound.bytes_recv, inbound.duration_ms, inbound.error) == (512, 96, 3, None)
    assert outbound.direction == "outbound"
    assert allow_miss.level == "error"
    assert (
        allow_miss.error
        == "connection closed due to policy rejection: allow policies exist, but none allowed"
    )
    assert unauthorized.error == "http status: 401 Unauthorized"
    assert strict_deny.src_identity is None and strict_deny.dst_hbone_addr is None
    assert strict_deny.error is not None and strict_deny.error.endswith(
        "istio-system/istio_converted_static_strict"
    )
    assert plaintext.error is None and plaintext.src_identity is None and plaintext.dst_identity is not None
    assert early.message == "connection failed" and early.level == "warn" and early.src_workload is None
    assert timeout.error is not None and timeout.error.endswith('deadline has elapsed "after 10s"')
    assert timeout.duration_ms == 10001


def test_access_log_json_format() -> None:
    records = parse_access_log((DATA / "ztunnel_access_json.log").read_text())

    assert len(records) == 2
    assert records[0].src_identity == CLIENT and records[0].bytes_sent == 512 and records[0].duration_ms == 3
    assert records[1].src_identity is None and "istio_converted_static_strict" in (records[1].error or "")


def test_access_log_values_quoted_or_not() -> None:
    # Third-party logs from older ztunnels show unquoted strings (output-formats §4.2): accept both.
    fields = parse_key_values(
        'src.identity=spiffe://td/ns/a/sa/b direction=inbound error="a \\"q\\" \\\\ \\u{e9}"'
    )

    assert fields == {"src.identity": "spiffe://td/ns/a/sa/b", "direction": "inbound", "error": 'a "q" \\ é'}


@pytest.mark.parametrize("fields", ['src.addr=1.2.3.4:5 error="never closed', "justakey", "=value"])
def test_access_log_malformed_access_line_is_named(fields: str) -> None:
    line = f"2025-06-01T10:00:00.000000Z\terror\taccess\tconnection complete\t{fields}"

    with pytest.raises(EvidenceParseError, match="ztunnel log line 1"):
        parse_access_log(line)


# --- AuthorizationPolicy status ------------------------------------------------------------------------


def test_policy_conditions_typed() -> None:
    policy = {
        "metadata": {"name": "ext-authz", "namespace": "mp-ambient", "generation": 2},
        "status": {
            "conditions": [
                {
                    "lastTransitionTime": "2025-06-01T10:00:00.000000Z",
                    "message": "ztunnel does not support the CUSTOM action",
                    "observedGeneration": "2",
                    "reason": "UnsupportedValue",
                    "status": "False",
                    "type": "ZtunnelAccepted",
                }
            ]
        },
    }

    (condition,) = policy_conditions(policy)

    assert condition.type == "ZtunnelAccepted" and condition.status == "False"
    assert condition.observed_generation == 2 and generation(policy) == 2
    assert policy_conditions({"metadata": {}}) == []
