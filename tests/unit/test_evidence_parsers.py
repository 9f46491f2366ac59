"""Parsers of mesh evidence, on samples in the exact formats the tools emit (output-formats §2-§4).

ztunnel workloads, metrics and access logs are real ztunnel 1.27.9 output (../shared/captures, through
fixtures_data.ztunnel_captures); certificate dumps are built here around freshly generated certificates
(same keys, nesting, base64 wrapping and 4-space indent as istioctl) so they never expire. What this
cannot prove: that a future istioctl/ztunnel keeps these formats.
"""

from __future__ import annotations

import base64
import json
import math

import pytest
from fixtures_data.shared_data import upstream
from fixtures_data.spiffe_pki import Pki, pem_of
from fixtures_data.ztunnel_captures import CLIENT, SERVER, istiod_workloads_json, log_text, metrics_text

from meshproof.checks.identity import verify_workload_certificate
from meshproof.evidence.errors import EvidenceParseError
from meshproof.evidence.policy_status import admission_denial, generation, policy_conditions
from meshproof.evidence.prometheus import TCP_CLOSED, TCP_OPENED, parse_exposition, select, total
from meshproof.evidence.proxy_config import parse_secrets
from meshproof.evidence.ztunnel_config import parse_certificates, parse_workloads
from meshproof.evidence.ztunnel_logs import parse_access_log, parse_key_values

ISTIOCTL_ZTUNNEL_TESTDATA = ("istio-1.27.9", "istioctl", "pkg", "writer", "ztunnel", "configdump", "testdata")


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# --- ztunnel-config workloads ---------------------------------------------------------------------------


def test_workloads_json_gives_protocol_and_identity() -> None:
    workloads = {w.name: w for w in parse_workloads(istiod_workloads_json())}

    client = workloads["client-5dc794d664-f2dtv"]
    assert (client.namespace, client.protocol, client.service_account, client.node) == (
        "zt-e2e",
        "HBONE",
        "client",
        "kwok-node-0",
    )
    assert client.uid == "Kubernetes//Pod/zt-e2e/client-5dc794d664-f2dtv"
    assert client.spiffe_id == "spiffe://cluster.local/ns/zt-e2e/sa/client"
    assert client.waypoint is None
    assert workloads["ztunnel-898ph"].protocol == "TCP"


def test_workloads_json_gives_the_waypoint() -> None:
    # istioctl's own 1.27.9 test dump (workloads keyed by uid there; istioctl -o json prints the list).
    dump = json.loads(upstream(*ISTIOCTL_ZTUNNEL_TESTDATA, "dump.json").read_text())
    workloads = {w.name: w for w in parse_workloads(json.dumps(list(dump["workloads"].values())))}

    assert workloads["productpage-v1-675fc69cf-jscn2"].waypoint == "/10.96.71.36"
    assert workloads["sleep-7656cf8794-lxcmx"].waypoint is None


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
    samples = parse_exposition(metrics_text("node2"))

    mtls_inbound = select(
        samples,
        TCP_OPENED,
        {"reporter": "destination", "connection_security_policy": "mutual_tls", "source_principal": CLIENT},
    )
    assert total(mtls_inbound) == 12  # 10 to the server (cases 01-04, 06), 2 to restricted (05)
    assert mtls_inbound[0].labels["destination_principal"] == SERVER
    assert len(mtls_inbound[0].labels) == 27  # every label of output-formats §4.1, none dropped
    assert total(select(samples, TCP_CLOSED, {"response_flags": "DENY"})) == 10
    assert total(select(samples, TCP_OPENED, {"connection_security_policy": "unknown"})) == 4
    assert select(samples, "istio_build")[0].labels == {"component": "ztunnel", "tag": "unknown"}


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


@pytest.mark.parametrize("log_format", ["plain", "json"])
def test_access_log_destination_side(log_format: str) -> None:
    records = parse_access_log(log_text("node2", log_format))  # xds, dns, inpod ... lines are skipped

    assert records and all(r.message == "connection complete" for r in records)
    allowed = records[0]
    assert allowed.level == "info" and allowed.direction == "inbound" and allowed.error is None
    assert (allowed.src_identity, allowed.dst_identity) == (CLIENT, SERVER)
    assert allowed.src_ip == "10.88.0.10" and allowed.dst_workload == "server-5f7b9c8d4-fghij"
    assert allowed.dst_hbone_addr == "10.88.0.20:8080" and allowed.fields["dst.addr"] == "10.88.0.20:15008"
    assert allowed.bytes_sent == 171 and allowed.duration_ms is not None
    assert allowed.dst_service is None  # local config gives the destination side no Service
    rejections = [r for r in records if r.error and "policy rejection" in r.error]
    assert rejections and all(r.level == "error" for r in rejections)
    plaintext = [r for r in records if r.src_ip == "10.88.0.30"]
    assert plaintext and all(r.src_identity is None and r.dst_identity is None for r in plaintext)


def test_access_log_source_side_and_pooled_ports() -> None:
    source = parse_access_log(log_text("node1"))
    destination = parse_access_log(log_text("node2"))

    assert {r.direction for r in source} == {"outbound"}
    assert "http status: 401 Unauthorized" in {r.error for r in source}  # its view of a deny
    # The source ztunnel pools HBONE connections: separate requests reuse a source port inbound.
    inbound_ports = [r.fields["src.addr"] for r in destination if r.src_ip == "10.88.0.10"]
    assert len(set(inbound_ports)) < len(inbound_ports)


def test_access_log_json_is_compact_with_module_path_scopes() -> None:
    text = log_text("node2", "json")
    scopes = {json.loads(line)["scope"] for line in text.splitlines() if line.startswith("{")}

    assert "ztunnel::xds" in scopes and "access" in scopes
    assert '", "' not in text.splitlines()[0]  # compact: no space after separators
    assert len(parse_access_log(text)) == sum(1 for line in text.splitlines() if '"scope":"access"' in line)


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


def test_admission_denial_is_read_from_the_api_error() -> None:
    # The wording of a webhook denial (Kubernetes apiserver admission) as KubeApiError carries it; the
    # reason is istio/istio@1.27.9 pkg/config/validation/validation.go's, as seen in issue 14.
    error = (
        "apply AuthorizationPolicy mp-ambient/meshproof-custom on cluster kind-a failed: 400 Bad Request: "
        'admission webhook "validation.istio.io" denied the request: configuration is invalid: '
        "From.Principals is currently not supported with CUSTOM action"
    )
    denial = admission_denial(error)
    assert denial is not None and denial.webhook == "validation.istio.io"
    assert denial.reason.endswith("From.Principals is currently not supported with CUSTOM action")
    assert admission_denial("409 Conflict: Apply failed with 1 conflict") is None
