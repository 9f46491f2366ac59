"""Workload identity: SPIFFE ids, the X-Forwarded-Client-Cert header, and workload certificate chains.

Pure functions; nothing here talks to a cluster. `verify_workload_certificate` never raises on bad input:
whatever is wrong comes back as a failed Verdict naming it.

Why the chain walk is our own and not `cryptography.x509.verification.PolicyBuilder`: PolicyBuilder's
client verifier does accept URI-only SPIFFE leaves with an empty subject, but it applies the Web PKI
profile, which demands what an X.509-SVID need not carry (an authorityKeyIdentifier on the leaf, the
clientAuth EKU whenever an EKU is present, critical basicConstraints and a keyUsage on every CA), and its
failure reasons do not say what is wrong ("candidates exhausted"). The walk below applies RFC 5280 path
rules (issuer/subject linkage, signature per link, CA and keyCertSign on issuers, pathLen, validity of
every link) and names the broken link. The local-real tests cross-check it against OpenSSL's handshake
verdict and against PolicyBuilder on well-formed chains.
"""

from __future__ import annotations

import datetime as dt
import re

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from meshproof.checks.verdict import Verdict

SPIFFE_SCHEME = "spiffe://"
MAX_CHAIN_DEPTH = 8  # intermediates; Istio uses 0-2, cert-manager setups rarely more than 3

# A DNS-label-like segment: what Kubernetes allows in namespace and service-account names, and what
# the SPIFFE spec allows in a trust domain (lower-case letters, digits, '.', '-', '_').
_SEGMENT = re.compile(r"^[A-Za-z0-9._-]+$")


def spiffe_id(trust_domain: str, namespace: str, service_account: str) -> str:
    """The SPIFFE id Istio gives a workload: spiffe://<td>/ns/<ns>/sa/<sa> (istio-facts §3.4).

    Raises ValueError for an empty part or one with characters a trust domain, namespace or service
    account cannot contain (a programming error, not evidence).
    """
    for label, value in (
        ("trust domain", trust_domain),
        ("namespace", namespace),
        ("service account", service_account),
    ):
        if not isinstance(value, str) or not _SEGMENT.match(value):
            raise ValueError(f"invalid {label} for a SPIFFE id: {value!r}")
    return f"{SPIFFE_SCHEME}{trust_domain}/ns/{namespace}/sa/{service_account}"


def principal(spiffe: str) -> str:
    """The AuthorizationPolicy principal form of a SPIFFE id: the id without the scheme (facts §3.4)."""
    return spiffe.removeprefix(SPIFFE_SCHEME)


# ---------------------------------------------------------------------------------------------------
# X-Forwarded-Client-Cert


class XfccSyntaxError(ValueError):
    """The header value is not a well-formed XFCC value (unterminated quote, pair without '=')."""


def parse_xfcc(value: str) -> list[dict[str, str]]:
    """Parse an X-Forwarded-Client-Cert value into one dict per element.

    Grammar (Envoy, output-formats §5.1): elements separated by ',', key=value pairs within an element
    separated by ';', values optionally double-quoted with '\\"' and '\\\\' escapes; ',' ';' '=' inside
    quotes are data. Keys are kept as they appear (By, Hash, Cert, Chain, Subject, URI, DNS).

    Repeated keys: Envoy writes one URI= (or DNS=) pair per SAN of that type, so a key may repeat
    within an element. Their values are joined with ',' in order of appearance. A joined URI can never
    equal a single SPIFFE id (SPIFFE ids cannot contain ','), so an identity comparison on a
    certificate with several URI SANs fails instead of silently picking one.

    Elements appear in forwarding order; with APPEND_FORWARD (Istio sidecars) the last element is the
    one the nearest proxy added. Empty elements are skipped. Raises XfccSyntaxError on malformed input.
    """
    elements: list[dict[str, str]] = []
    for raw_element in _split_outside_quotes(value, ","):
        if not raw_element.strip():
            continue
        element: dict[str, str] = {}
        for raw_pair in _split_outside_quotes(raw_element, ";"):
            if not raw_pair.strip():
                continue
            key, sep, raw_value = raw_pair.partition("=")
            key = key.strip()
            if not sep or not key or '"' in key:
                raise XfccSyntaxError(f"XFCC pair without a key=value form: {raw_pair.strip()!r}")
            parsed = _unquote(raw_value.strip())
            element[key] = f"{element[key]},{parsed}" if key in element else parsed
        if element:
            elements.append(element)
    return elements


def _split_outside_quotes(text: str, separator: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    in_quotes = False
    escaped = False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\" and in_quotes:
            current.append(char)
            escaped = True
        elif char == '"':
            current.append(char)
            in_quotes = not in_quotes
        elif char == separator and not in_quotes:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if in_quotes:
        raise XfccSyntaxError(f"XFCC value has an unterminated quote: {text!r}")
    parts.append("".join(current))
    return parts


def _unquote(raw: str) -> str:
    if len(raw) >= 2 and raw[0] == '"' and raw[-1] == '"':
        inner = raw[1:-1]
        out: list[str] = []
        escaped = False
        for char in inner:
            if escaped:
                out.append(char)
                escaped = False
            elif char == "\\":
                escaped = True
            else:
                out.append(char)
        return "".join(out)
    if '"' in raw:
        raise XfccSyntaxError(f"XFCC value with a stray quote: {raw!r}")
    return raw


# ---------------------------------------------------------------------------------------------------
# Workload certificate chains


def verify_workload_certificate(
    chain_pem: str | bytes,
    expected_spiffe_id: str,
    roots_pem: str | bytes,
    at: dt.datetime | None = None,
) -> Verdict:
    """Judge a workload certificate chain (leaf first, then intermediates) against the mesh roots.

    Passes only if all hold: the leaf has exactly one URI SAN and it equals `expected_spiffe_id`; the
    leaf is not a CA (no basicConstraints CA:TRUE, no keyCertSign); every certificate on the path is
    valid at `at` (default: now; must be timezone-aware); each link is signed by the next, whose subject
    is the link's issuer, which is a CA allowed to sign at that depth; and the path ends at one of the
    roots (intermediates come only from the chain). Every problem found is listed in the reason.
    """
    problems: list[str] = []
    when = _checked_time(at, problems)
    chain = load_certificates(chain_pem, "chain_pem", problems)
    roots = load_certificates(roots_pem, "roots_pem", problems)
    if not isinstance(expected_spiffe_id, str) or not expected_spiffe_id.startswith(SPIFFE_SCHEME):
        problems.append(f"expected_spiffe_id {expected_spiffe_id!r} is not a spiffe:// id")
    if problems or when is None or not chain or not roots:
        return Verdict.failed("; ".join(problems))

    leaf = chain[0]
    problems += _leaf_identity_problems(leaf, expected_spiffe_id)
    problems += _leaf_not_ca_problems(leaf)
    problems += _validity_problems(leaf, "leaf", when)
    path, path_problems = _walk_to_root(leaf, chain[1:], roots, when)
    problems += path_problems
    if problems:
        return Verdict.failed("; ".join(problems))
    root = path[-1]
    return Verdict.passed(
        f"leaf {expected_spiffe_id} chains to root {certificate_name(root)} "
        f"through {len(path) - 2} intermediate(s), "
        f"all valid at {when.isoformat()}"
    )


def _checked_time(at: object, problems: list[str]) -> dt.datetime | None:
    if at is None:
        return dt.datetime.now(dt.UTC)
    if not isinstance(at, dt.datetime):
        problems.append(f"at must be a datetime, got {type(at).__name__}")
        return None
    if at.tzinfo is None or at.utcoffset() is None:
        problems.append("at must be timezone-aware (a naive datetime is ambiguous)")
        return None
    return at


def load_certificates(
    data: object, what: str = "PEM", problems: list[str] | None = None
) -> list[x509.Certificate]:
    """The certificates of PEM text (str or bytes), in order; [] when there are none or they do not parse,
    with the reason appended to `problems` (when given)."""
    problems = [] if problems is None else problems
    if isinstance(data, str):
        raw = data.encode("utf-8", errors="replace")
    elif isinstance(data, bytes | bytearray):
        raw = bytes(data)
    else:
        problems.append(f"{what} must be PEM text (str or bytes), got {type(data).__name__}")
        return []
    if b"-----BEGIN CERTIFICATE-----" not in raw:
        problems.append(f"{what} holds no PEM certificate")
        return []
    try:
        return x509.load_pem_x509_certificates(raw)
    except (ValueError, TypeError) as exc:
        problems.append(f"{what} is not parseable PEM: {_one_line(exc)}")
        return []


def _leaf_identity_problems(leaf: x509.Certificate, expected: str) -> list[str]:
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [f"leaf has no subjectAltName (expected URI SAN {expected})"]
    except ValueError as exc:  # malformed extension encoding
        return [f"leaf subjectAltName cannot be read: {_one_line(exc)}"]
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    if not uris:
        return [f"leaf has no URI SAN (expected {expected}); SANs: {_describe_sans(san)}"]
    if len(uris) > 1:
        return [
            f"leaf has {len(uris)} URI SANs {uris}; an X.509-SVID carries exactly one (expected {expected})"
        ]
    if uris[0] != expected:
        return [f"leaf URI SAN is {uris[0]}, expected {expected}"]
    return []


def _describe_sans(san: x509.SubjectAlternativeName) -> str:
    return ", ".join(f"{type(name).__name__}={name.value}" for name in san) or "none"


def _leaf_not_ca_problems(leaf: x509.Certificate) -> list[str]:
    problems: list[str] = []
    constraints = _basic_constraints(leaf)
    if constraints is not None and constraints.ca:
        problems.append("leaf is a CA certificate (basicConstraints CA:TRUE); a workload leaf must not be")
    usage = _key_usage(leaf)
    if usage is not None and usage.key_cert_sign:
        problems.append("leaf asserts keyUsage keyCertSign; a workload leaf must not sign certificates")
    return problems


def _validity_problems(cert: x509.Certificate, role: str, when: dt.datetime) -> list[str]:
    not_before = cert.not_valid_before_utc
    not_after = cert.not_valid_after_utc
    if when < not_before:
        return [
            f"{role} {certificate_name(cert)} is not yet valid: "
            f"notBefore {not_before.isoformat()} > {when.isoformat()}"
        ]
    if when > not_after:
        return [
            f"{role} {certificate_name(cert)} expired: notAfter {not_after.isoformat()} < {when.isoformat()}"
        ]
    return []


def _walk_to_root(
    leaf: x509.Certificate,
    intermediates: list[x509.Certificate],
    roots: list[x509.Certificate],
    when: dt.datetime,
) -> tuple[list[x509.Certificate], list[str]]:
    """Follow issuer links from the leaf up to a trusted root; return the path and what broke it."""
    path = [leaf]
    pool = [cert for cert in intermediates if cert not in roots]
    current = leaf
    for _ in range(MAX_CHAIN_DEPTH + 1):
        root = next((r for r in roots if _signed_by(current, r)), None)
        if root is not None:
            path.append(root)
            problems = _issuer_problems(root, "root", len(path) - 2, when)
            return path, problems
        if current is not leaf and current.issuer == current.subject:
            return path, [
                f"chain ends at self-signed {certificate_name(current)}, "
                "which is not one of the trusted roots (foreign root)"
            ]
        issuer = next((c for c in pool if _signed_by(current, c)), None)
        if issuer is None:
            return path, [_missing_issuer_reason(current, pool, roots)]
        pool.remove(issuer)
        path.append(issuer)
        problems = _issuer_problems(issuer, "intermediate", len(path) - 2, when)
        if problems:
            return path, problems
        current = issuer
    return path, [f"no trusted root within {MAX_CHAIN_DEPTH} intermediates"]


def _missing_issuer_reason(
    cert: x509.Certificate, pool: list[x509.Certificate], roots: list[x509.Certificate]
) -> str:
    issuer = cert.issuer.rfc4514_string() or "<empty name>"
    if any(r.subject == cert.issuer for r in roots):
        # Istio roots are all named O=cluster.local: a same-named root that did not sign is a foreign CA.
        return (
            f"{certificate_name(cert)} names issuer {issuer} but no trusted root with that name signed it "
            "(signed by a different CA with the same name: foreign root)"
        )
    if any(c.subject == cert.issuer for c in pool):
        return (
            f"{certificate_name(cert)} names issuer {issuer}, "
            "but the chain's certificate of that name did not sign it"
        )
    return (
        f"no certificate in the chain or the roots is the issuer {issuer} of {certificate_name(cert)} "
        "(missing intermediate, or a foreign root)"
    )


def _issuer_problems(cert: x509.Certificate, role: str, certs_below: int, when: dt.datetime) -> list[str]:
    """An issuing certificate must be a CA, may sign certificates, respects pathLen, and is valid now.

    `certs_below` counts the intermediates between this issuer and the leaf (RFC 5280 §4.2.1.9).
    """
    problems: list[str] = []
    constraints = _basic_constraints(cert)
    if constraints is None or not constraints.ca:
        problems.append(
            f"{role} {certificate_name(cert)} signed a certificate "
            "but is not a CA (basicConstraints CA:TRUE missing)"
        )
    elif constraints.path_length is not None and certs_below > constraints.path_length:
        problems.append(
            f"{role} {certificate_name(cert)} has pathLen {constraints.path_length} "
            f"but {certs_below} intermediates below it"
        )
    usage = _key_usage(cert)
    if usage is not None and not usage.key_cert_sign:
        problems.append(f"{role} {certificate_name(cert)} lacks keyUsage keyCertSign")
    problems += _validity_problems(cert, role, when)
    return problems


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """True iff `issuer`'s subject is `cert`'s issuer and its key verifies `cert`'s signature."""
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _basic_constraints(cert: x509.Certificate) -> x509.BasicConstraints | None:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except (x509.ExtensionNotFound, ValueError):
        return None


def _key_usage(cert: x509.Certificate) -> x509.KeyUsage | None:
    try:
        return cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except (x509.ExtensionNotFound, ValueError):
        return None


def certificate_name(cert: x509.Certificate) -> str:
    """The certificate for messages: its subject, else (Istio leaves have an empty subject) its URI SAN,
    else its serial."""
    subject = cert.subject.rfc4514_string()
    if subject:
        return f"'{subject}'"
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    except (x509.ExtensionNotFound, ValueError):
        uris = []
    return f"'{uris[0]}'" if uris else f"<serial {cert.serial_number:x}>"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
