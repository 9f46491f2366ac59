"""Redaction of realistic secrets (Secrets, kubeconfigs, SA tokens, keys, headers), and what it leaves alone.

Every secret value used here is unique and searched for in the whole output, so a leak anywhere fails.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from meshproof.redact import redact_object, redact_text

# A ServiceAccount token as the kubelet projects it: RS256 header, claims, signature (signature made up).
SA_TOKEN = (
    "eyJhbGciOiJSUzI1NiIsImtpZCI6IjNxQ2E2a2V4In0."
    "eyJhdWQiOlsiaXN0aW8tY2EiXSwiaXNzIjoiaHR0cHM6Ly9rdWJlcm5ldGVzLmRlZmF1bHQuc3ZjIiwic3ViIjoic3lzdGVtOnNlcnZp"
    "Y2VhY2NvdW50OmZvbzpodHRwYmluIn0."
    "Zm9vYmFyLXNpZ25hdHVyZS1ub3QtcmVhbC0wMTIzNDU2Nzg5"
)


def _private_key_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


KEY_PEM = _private_key_pem()
KEY_B64 = base64.b64encode(KEY_PEM.encode()).decode()
CERT_PEM = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUJ1n0t4secretfree\n-----END CERTIFICATE-----\n"


def _dumped(obj: Any) -> str:
    return json.dumps(obj) + yaml.safe_dump(obj)


def test_secret_values_become_their_sizes_including_the_last_applied_copy():
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "cacerts",
            "namespace": "istio-system",
            "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": json.dumps(
                    {"apiVersion": "v1", "kind": "Secret", "data": {"ca-key.pem": KEY_B64}}
                )
            },
        },
        "type": "Opaque",
        "data": {"ca-key.pem": KEY_B64, "root-cert.pem": base64.b64encode(b"12345").decode()},
        "stringData": {"password": "hunter2-unique-pw"},
    }
    clean = redact_object(secret)
    assert clean["data"] == {
        "ca-key.pem": f"<redacted: {len(KEY_PEM.encode())} bytes>",
        "root-cert.pem": "<redacted: 5 bytes>",
    }
    assert clean["stringData"] == {"password": "<redacted: 17 bytes>"}
    text = _dumped(clean)
    assert KEY_B64[:40] not in text and "hunter2-unique-pw" not in text
    assert secret["data"]["ca-key.pem"] == KEY_B64  # the input is not modified


KUBECONFIG: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Config",
    "current-context": "kind-meshproof",
    "clusters": [
        {
            "name": "kind-meshproof",
            "cluster": {"server": "https://127.0.0.1:41234", "certificate-authority-data": "Q0EtZGF0YQ=="},
        }
    ],
    "users": [
        {
            "name": "kind-meshproof",
            "user": {"client-certificate-data": "Y2xpZW50LWNlcnQtdW5pcXVl", "client-key-data": KEY_B64},
        },
        {"name": "sa", "user": {"token": SA_TOKEN}},
        {"name": "basic", "user": {"username": "admin", "password": "basic-pw-unique-1"}},
        {
            "name": "oidc",
            "user": {
                "auth-provider": {
                    "name": "oidc",
                    "config": {
                        "client-id": "meshproof",
                        "client-secret": "oidc-client-secret-unique",
                        "id-token": "oidc-id-token-unique",
                        "refresh-token": "oidc-refresh-unique",
                        "idp-issuer-url": "https://issuer.example",
                    },
                }
            },
        },
        {
            "name": "exec",
            "user": {
                "exec": {
                    "apiVersion": "client.authentication.k8s.io/v1",
                    "command": "aws",
                    "args": ["eks", "get-token"],
                    "env": [{"name": "AWS_PROFILE", "value": "exec-env-unique-profile"}],
                }
            },
        },
    ],
    "contexts": [
        {"name": "kind-meshproof", "context": {"cluster": "kind-meshproof", "user": "kind-meshproof"}}
    ],
}
KUBECONFIG_SECRETS = [
    "Y2xpZW50LWNlcnQtdW5pcXVl",
    KEY_B64[:40],
    SA_TOKEN[:30],
    "basic-pw-unique-1",
    "oidc-client-secret-unique",
    "oidc-id-token-unique",
    "oidc-refresh-unique",
    "exec-env-unique-profile",
]


def test_kubeconfig_credentials_are_removed_and_the_rest_kept():
    clean = redact_object(KUBECONFIG)
    text = _dumped(clean)
    for secret in KUBECONFIG_SECRETS:
        assert secret not in text, secret
    assert clean["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:41234"
    assert clean["users"][4]["user"]["exec"]["command"] == "aws"


def test_a_kubeconfig_inside_a_configmap_value_is_redacted_as_text():
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "remote-kubeconfig", "namespace": "istio-system"},
        "data": {
            "config": yaml.safe_dump(KUBECONFIG),
            "mesh": "defaultConfig:\n  discoveryAddress: istiod:15012\n",
        },
    }
    clean = redact_object(configmap)
    for secret in KUBECONFIG_SECRETS:
        assert secret not in _dumped(clean), secret
    assert clean["data"]["mesh"] == configmap["data"]["mesh"]
    assert "server: https://127.0.0.1:41234" in clean["data"]["config"]


def test_env_vars_named_like_secrets_lose_their_values_only():
    container = {
        "name": "app",
        "env": [
            {"name": "API_TOKEN", "value": "env-token-unique"},
            {"name": "DB_PASSWORD", "value": "env-pw-unique"},
            {"name": "ISTIO_META_CLUSTER_ID", "value": "Kubernetes"},
            {"name": "FROM_SECRET", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
        ],
    }
    clean = redact_object(container)
    assert [e.get("value") for e in clean["env"]] == ["<redacted>", "<redacted>", "Kubernetes", None]
    assert clean["env"][3]["valueFrom"] == container["env"][3]["valueFrom"]


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (
            "> GET /headers HTTP/1.1\n> Authorization: Bearer opaque-bearer-unique-123\n",
            "opaque-bearer-unique-123",
        ),
        (
            '{"headers": {"Authorization": "Basic YWRtaW46c2VjcmV0LXVuaXF1ZQ=="}}',
            "YWRtaW46c2VjcmV0LXVuaXF1ZQ==",
        ),
        (f"istio-proxy: fetched token {SA_TOKEN} for sa", SA_TOKEN[:30]),
        ("token: plain-token-unique\n", "plain-token-unique"),
        ('{"access_token":"access-unique-1","expires_in":3599}', "access-unique-1"),
        ("GET /login?client=a&password=pw-in-query-unique HTTP/1.1", "pw-in-query-unique"),
        (f"key file:\n{KEY_PEM}done\n", KEY_PEM.splitlines()[1]),
        (f'"private_key": {{"inline_bytes": "{KEY_B64}"}}', KEY_B64[:40]),
        ("client-key-data: LS0tLS1CRUdJTiBFQyBQUklWQVRFIEtFWS0tLS0tCk1IY0NBUUVF\n", "LS0tLS1CRUdJTiBFQyBQ"),
    ],
)
def test_text_secrets_are_redacted(text: str, secret: str):
    clean = redact_text(text)
    assert secret not in clean
    assert "<redacted" in clean


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-26T06:45:01Z info xds: pushed config to ztunnel-abc (spiffe://cluster.local/ns/foo/sa/httpbin)",
        "automountServiceAccountToken: false",
        "spec:\n  tokenRequests:\n  - audience: istio-ca\n",
        CERT_PEM,
        "RBAC: access denied",
        base64.b64encode(CERT_PEM.encode()).decode(),  # a base64 certificate is not a private key
    ],
)
def test_ordinary_text_and_public_material_are_left_alone(text: str):
    assert redact_text(text) == text


def test_redaction_is_idempotent():
    once = redact_text(f"Authorization: Bearer {SA_TOKEN}\ntoken: abc-unique\n{KEY_PEM}")
    assert redact_text(once) == once
