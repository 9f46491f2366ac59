"""Take secrets out of objects and text before they are written anywhere (artifacts, reports, logs).

Objects: Secret data/stringData values become `<redacted: N bytes>`; kubeconfig user credentials (token,
password, client key/cert data, auth-provider config, exec env) are replaced; env vars whose names say
token/password/secret/key lose their values; the last-applied-configuration annotation is redacted as an
object too (it holds a Secret's data verbatim). Text: bearer/basic Authorization values, `token: ...`-like
fields, JWTs (ServiceAccount tokens), PEM private keys and base64-encoded PEM private keys.

Redaction errs on the side of removing: a certificate in a kubeconfig is not secret, but an artifact is
never the place someone needs it.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import re
from typing import Any

import yaml

REDACTED = "<redacted>"
_LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"

# Keys whose values are credentials wherever they appear (kubeconfig users, OIDC configs, status dumps).
_SECRET_KEYS = frozenset(
    {
        "token",
        "password",
        "passwd",
        "client-key-data",
        "client-certificate-data",
        "client-key",
        "id-token",
        "refresh-token",
        "access-token",
        "client-secret",
        "bearer-token",
        "api-key",
        "apikey",
        "private-key",
        "secret-key",
    }
)
_SECRETISH_ENV_NAME = re.compile(r"(?i)(token|passw(or)?d|secret|api_?key|private_?key|credential)")

_PEM_PRIVATE_KEY = re.compile(
    r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----.*?(-----END \1PRIVATE KEY-----|\Z)", re.DOTALL
)
# base64 of "-----BEGIN" starts with LS0tLS1CRUdJTi; decoded and checked for a private key below.
_BASE64_PEM = re.compile(r"LS0tLS1CRUdJTi[A-Za-z0-9+/=\\n]{16,}")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_AUTH_HEADER = re.compile(
    r"(?i)(\bauthorization[\"']?\s*[:=]\s*[\"']?)(?:(?:bearer|basic|negotiate)\s+)?(?!<redacted)[^\s\"',}]+"
)
_BEARER = re.compile(r"(?i)(\bbearer\s+)(?!<redacted)[A-Za-z0-9._~+/=-]{8,}")
_KEY_NAMES = "|".join(
    sorted((re.escape(k) for k in _SECRET_KEYS | {"access_token", "id_token"}), key=len)[::-1]
)
_SECRET_FIELD = re.compile(
    rf"(?i)(?<![A-Za-z0-9])((?:{_KEY_NAMES})[\"']?\s*[:=]\s*)([\"']?)(?!<redacted)([^\s\"',}}]+)\2"
)


def redact_text(text: str) -> str:
    """`text` with credentials replaced; everything else left as it was."""
    # Keyed patterns first, so a token after "Authorization:" or "token:" is replaced with its key kept;
    # the JWT pattern then catches tokens that appear with no key at all.
    text = _PEM_PRIVATE_KEY.sub("<redacted: private key>", text)
    text = _BASE64_PEM.sub(_redact_base64_pem, text)
    text = _AUTH_HEADER.sub(lambda m: f"{m.group(1)}{REDACTED}", text)
    text = _BEARER.sub(lambda m: f"{m.group(1)}{REDACTED}", text)
    text = _SECRET_FIELD.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}{m.group(2)}", text)
    return _JWT.sub("<redacted: jwt>", text)


def _redact_base64_pem(match: re.Match[str]) -> str:
    blob = match.group(0).replace("\\n", "")
    try:
        decoded = base64.b64decode(blob + "=" * (-len(blob) % 4), validate=False)
    except (binascii.Error, ValueError):
        return match.group(0)
    return "<redacted: private key>" if b"PRIVATE KEY" in decoded else match.group(0)


def redact_object(obj: Any) -> Any:
    """A redacted deep copy of a Kubernetes object, kubeconfig, list of them, or any nested data."""
    return _redact(copy.deepcopy(obj))


def _redact(node: Any) -> Any:
    if isinstance(node, str):
        return _redact_embedded_kubeconfig(node) or redact_text(node)
    if isinstance(node, list):
        return [_redact(item) for item in node]
    if not isinstance(node, dict):
        return node
    if node.get("kind") == "Secret":
        _redact_secret_payload(node)
    if node.get("kind") == "Config" and isinstance(node.get("users"), list):
        for entry in node["users"]:
            if isinstance(entry, dict) and isinstance(entry.get("user"), dict):
                _redact_kubeconfig_user(entry["user"])
    _redact_last_applied(node)
    if isinstance(node.get("name"), str) and "value" in node and _SECRETISH_ENV_NAME.search(node["name"]):
        node["value"] = REDACTED  # an env var like {name: API_TOKEN, value: ...}
    for key, value in list(node.items()):
        if isinstance(key, str) and key.lower().replace("_", "-") in _SECRET_KEYS and _is_scalar(value):
            node[key] = value if value in (None, "") or _is_redacted(value) else REDACTED
        else:
            node[key] = _redact(value)
    return node


def _redact_embedded_kubeconfig(text: str) -> str | None:
    """A kubeconfig stored as a string (ConfigMap value, remote-cluster config) redacted as an object,
    so credentials that text patterns cannot recognise (exec env values) go too. None if it is not one."""
    if "users" not in text or "Config" not in text:
        return None
    try:
        parsed = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    if not (isinstance(parsed, dict) and parsed.get("kind") == "Config" and "users" in parsed):
        return None
    return yaml.safe_dump(_redact(parsed), sort_keys=False)


def _is_redacted(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("<redacted")


def _redact_secret_payload(secret: dict[str, Any]) -> None:
    for field, encoded in (("data", True), ("stringData", False)):
        values = secret.get(field)
        if isinstance(values, dict):
            secret[field] = {k: f"<redacted: {_byte_len(v, encoded)} bytes>" for k, v in values.items()}


def _byte_len(value: Any, base64_encoded: bool) -> int:
    text = "" if value is None else str(value)
    if base64_encoded:
        try:
            return len(base64.b64decode(text, validate=True))
        except (binascii.Error, ValueError):
            pass
    return len(text.encode())


def _redact_kubeconfig_user(user: dict[str, Any]) -> None:
    provider = user.get("auth-provider")
    if isinstance(provider, dict) and isinstance(provider.get("config"), dict):
        provider["config"] = {k: REDACTED for k in provider["config"]}
    exec_cfg = user.get("exec")
    if isinstance(exec_cfg, dict) and isinstance(exec_cfg.get("env"), list):
        for var in exec_cfg["env"]:
            if isinstance(var, dict) and "value" in var:
                var["value"] = REDACTED
    for key in ("username", "tokenFile"):
        if key in user:
            user[key] = REDACTED


def _redact_last_applied(node: dict[str, Any]) -> None:
    meta = node.get("metadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("annotations"), dict):
        return
    raw = meta["annotations"].get(_LAST_APPLIED)
    if not isinstance(raw, str):
        return
    try:
        applied = json.loads(raw)
    except json.JSONDecodeError:
        meta["annotations"][_LAST_APPLIED] = REDACTED
        return
    # stored pre-redacted so the generic string pass below leaves it alone
    meta["annotations"][_LAST_APPLIED] = json.dumps(_redact(applied), sort_keys=True)


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)
