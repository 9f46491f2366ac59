"""Unit tests for meshproof.checks.identity: SPIFFE ids, XFCC parsing, and certificate-chain verdicts.

Chains are generated in-process (tests/fixtures_data/spiffe_pki.py, shaped like Istio's); the handshake
tier is tests/local_real/test_identity_tls.py. What this cannot prove: that a real mesh's certificates
look like these.
"""

from __future__ import annotations

import datetime as dt

import pytest
from fixtures_data.spiffe_pki import Pki, pem_of

from meshproof.checks.identity import (
    XfccSyntaxError,
    parse_xfcc,
    principal,
    spiffe_id,
    verify_workload_certificate,
)
from meshproof.mesh.certs import unrelated_root_pem

CLIENT = "spiffe://cluster.local/ns/demo/sa/client"


# --- spiffe_id ---------------------------------------------------------------------------------------


def test_spiffe_id_has_istio_shape() -> None:
    assert spiffe_id("cluster.local", "demo", "client") == CLIENT
    assert principal(CLIENT) == "cluster.local/ns/demo/sa/client"


@pytest.mark.parametrize(
    ("td", "ns", "sa"), [("", "demo", "client"), ("cluster.local", "a/b", "x"), ("td", "ns", "")]
)
def test_spiffe_id_rejects_impossible_parts(td: str, ns: str, sa: str) -> None:
    with pytest.raises(ValueError, match="invalid"):
        spiffe_id(td, ns, sa)


# --- parse_xfcc -------------------------------------------------------------------------------------

# The value an app behind an Istio 1.27 sidecar receives (output-formats §5.1): By, Hash, quoted empty
# Subject, URI; no DNS for Istio workload certificates.
SIDECAR_XFCC = (
    "By=spiffe://cluster.local/ns/demo/sa/server;"
    "Hash=9b1e4f0e1c6f3a2d5b7c8e9f0a1b2c3d4e5f60718293a4b5c6d7e8f9a0b1c2d3;"
    'Subject="";URI=spiffe://cluster.local/ns/demo/sa/client'
)


def test_parse_xfcc_sidecar_value() -> None:
    assert parse_xfcc(SIDECAR_XFCC) == [
        {
            "By": "spiffe://cluster.local/ns/demo/sa/server",
            "Hash": "9b1e4f0e1c6f3a2d5b7c8e9f0a1b2c3d4e5f60718293a4b5c6d7e8f9a0b1c2d3",
            "Subject": "",
            "URI": CLIENT,
        }
    ]


def test_parse_xfcc_respects_quotes_and_escapes() -> None:
    value = (
        'By=spiffe://td/ns/a/sa/gw;Hash=ab;Subject="CN=client,O=Example\\, Inc.;OU=x";'
        'URI=spiffe://td/ns/a/sa/one;Cert="-----BEGIN%20CERTIFICATE-----%0A";DNS=a.example.com;'
        'DNS="b.example.com",By=spiffe://td/ns/a/sa/server;Hash=cd;Subject="say \\"hi\\"";URI=spiffe://td/ns/a/sa/gw'
    )

    elements = parse_xfcc(value)

    assert len(elements) == 2
    assert elements[0]["Subject"] == "CN=client,O=Example, Inc.;OU=x"
    assert elements[0]["Cert"] == "-----BEGIN%20CERTIFICATE-----%0A"
    assert elements[0]["DNS"] == "a.example.com,b.example.com"  # repeated keys joined in order
    assert elements[1]["Subject"] == 'say "hi"'
    assert elements[1]["URI"] == "spiffe://td/ns/a/sa/gw"


def test_parse_xfcc_repeated_uri_never_equals_one_spiffe_id() -> None:
    element = parse_xfcc("By=spiffe://td/ns/a/sa/s;URI=spiffe://td/ns/a/sa/c;URI=spiffe://td/ns/a/sa/admin")[
        0
    ]

    assert element["URI"] == "spiffe://td/ns/a/sa/c,spiffe://td/ns/a/sa/admin"


def test_parse_xfcc_tolerates_spaces_and_empty_elements() -> None:
    assert parse_xfcc(" By=a ; URI=b , , URI=c ") == [{"By": "a", "URI": "b"}, {"URI": "c"}]
    assert parse_xfcc("") == []


@pytest.mark.parametrize("bad", ['By=a;Subject="unterminated', "By=a;justakey", 'By=a;Su"bj=x', 'URI=a"b'])
def test_parse_xfcc_rejects_malformed_values(bad: str) -> None:
    with pytest.raises(XfccSyntaxError):
        parse_xfcc(bad)


# --- verify_workload_certificate -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki()


def test_chain_that_includes_the_root_is_accepted(pki: Pki) -> None:
    # istio-agent's certificateChain may carry the root after the intermediates.
    root = pki.root()
    inter = pki.intermediate(root)
    leaf = pki.leaf(inter)

    verdict = verify_workload_certificate(pem_of(leaf, inter, root), CLIENT, root.pem)

    assert verdict.ok, verdict.reason


def test_leaf_signed_directly_by_root_and_bytes_input(pki: Pki) -> None:
    root = pki.root()
    leaf = pki.leaf(root)

    verdict = verify_workload_certificate(leaf.pem.encode(), CLIENT, root.pem.encode())

    assert verdict.ok, verdict.reason
    assert "through 0 intermediate" in verdict.reason


def test_one_of_several_roots_is_enough(pki: Pki) -> None:
    old_root, new_root = pki.root(), pki.root()
    leaf = pki.leaf(new_root)

    assert verify_workload_certificate(leaf.pem, CLIENT, pem_of(old_root, new_root)).ok
    assert not verify_workload_certificate(leaf.pem, CLIENT, old_root.pem).ok


def test_two_level_intermediates_and_path_length(pki: Pki) -> None:
    root = pki.root()
    limited = pki.intermediate(root, "limited", path_length=0)
    below = pki.intermediate(limited, "below")
    leaf = pki.leaf(below)

    verdict = verify_workload_certificate(pem_of(leaf, below, limited), CLIENT, root.pem)

    assert not verdict.ok
    assert "pathLen 0 but 1 intermediates below it" in verdict.reason
    relaxed = pki.intermediate(root, "relaxed", path_length=1)
    below_relaxed = pki.intermediate(relaxed, "below")
    ok = verify_workload_certificate(
        pem_of(pki.leaf(below_relaxed), below_relaxed, relaxed), CLIENT, root.pem
    )
    assert ok.ok, ok.reason


def test_issuer_that_is_not_a_ca_is_rejected(pki: Pki) -> None:
    root = pki.root()
    not_ca = pki.intermediate(root, "not-a-ca", ca=False)
    leaf = pki.leaf(not_ca)

    verdict = verify_workload_certificate(pem_of(leaf, not_ca), CLIENT, root.pem)

    assert not verdict.ok
    assert "is not a CA" in verdict.reason


def test_expired_intermediate_and_expired_root_are_rejected(pki: Pki) -> None:
    root = pki.root()
    old_inter = pki.intermediate(
        root, not_before=pki.now - dt.timedelta(days=2), not_after=pki.now - dt.timedelta(days=1)
    )
    verdict = verify_workload_certificate(pem_of(pki.leaf(old_inter), old_inter), CLIENT, root.pem)
    assert not verdict.ok and "intermediate 'CN=istio-intermediate,O=cluster.local' expired" in verdict.reason

    later = pki.now + dt.timedelta(days=400)  # past the root's one-year validity, leaf too
    verdict = verify_workload_certificate(pki.leaf(root).pem, CLIENT, root.pem, at=later)
    assert not verdict.ok and "root 'O=cluster.local' expired" in verdict.reason and "leaf" in verdict.reason


def test_validity_is_judged_at_the_given_time(pki: Pki) -> None:
    root = pki.root()
    leaf = pki.leaf(root)  # valid from now-5min to now+24h

    assert verify_workload_certificate(leaf.pem, CLIENT, root.pem, at=pki.now).ok
    assert not verify_workload_certificate(leaf.pem, CLIENT, root.pem, at=pki.now + dt.timedelta(days=2)).ok
    before = verify_workload_certificate(leaf.pem, CLIENT, root.pem, at=pki.now - dt.timedelta(hours=1))
    assert not before.ok and "not yet valid" in before.reason


@pytest.mark.parametrize(
    ("uris", "dns", "expected_reason"),
    [
        ((), ("client.demo.svc",), "leaf has no URI SAN"),
        ((CLIENT, "spiffe://cluster.local/ns/demo/sa/admin"), (), "2 URI SANs"),
        (
            ("spiffe://other.domain/ns/demo/sa/client",),
            (),
            "URI SAN is spiffe://other.domain/ns/demo/sa/client",
        ),
    ],
)
def test_leaf_identity_must_be_exactly_the_expected_spiffe_id(
    pki: Pki, uris: tuple[str, ...], dns: tuple[str, ...], expected_reason: str
) -> None:
    root = pki.root()
    leaf = pki.leaf(root, uris, dns=dns)

    verdict = verify_workload_certificate(leaf.pem, CLIENT, root.pem)

    assert not verdict.ok
    assert expected_reason in verdict.reason


def test_leaf_without_any_san_is_rejected(pki: Pki) -> None:
    root = pki.root()
    leaf = pki.leaf(root, ())

    verdict = verify_workload_certificate(leaf.pem, CLIENT, root.pem)

    assert not verdict.ok and "no subjectAltName" in verdict.reason


def test_all_problems_are_listed(pki: Pki) -> None:
    root, foreign = pki.root(), pki.root()
    leaf = pki.leaf(foreign, ["spiffe://cluster.local/ns/x/sa/y"], ca=True)

    reason = verify_workload_certificate(leaf.pem, CLIENT, root.pem).reason

    assert "URI SAN is spiffe://cluster.local/ns/x/sa/y" in reason
    assert "leaf is a CA" in reason
    assert "foreign root" in reason


@pytest.mark.parametrize(
    ("chain", "expected", "roots", "at", "reason"),
    [
        ("", CLIENT, "ROOT", None, "chain_pem holds no PEM certificate"),
        ("not a pem at all", CLIENT, "ROOT", None, "chain_pem holds no PEM certificate"),
        (
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            CLIENT,
            "ROOT",
            None,
            "chain_pem is not parseable PEM",
        ),
        (12345, CLIENT, "ROOT", None, "chain_pem must be PEM text (str or bytes), got int"),
        (None, CLIENT, "ROOT", None, "chain_pem must be PEM text"),
        ("LEAF", CLIENT, b"\x00\xff garbage", None, "roots_pem holds no PEM certificate"),
        ("LEAF", CLIENT, ["not", "pem"], None, "roots_pem must be PEM text"),
        ("LEAF", "cluster.local/ns/demo/sa/client", "ROOT", None, "is not a spiffe:// id"),
        ("LEAF", None, "ROOT", None, "is not a spiffe:// id"),
        ("LEAF", CLIENT, "ROOT", dt.datetime(2025, 1, 1), "timezone-aware"),
        ("LEAF", CLIENT, "ROOT", "2025-01-01", "at must be a datetime"),
    ],
)
def test_bad_input_gives_a_failed_verdict_never_an_exception(
    pki: Pki, chain: object, expected: object, roots: object, at: object, reason: str
) -> None:
    root = pki.root()
    leaf = pki.leaf(root)
    substitutions = {"LEAF": leaf.pem, "ROOT": root.pem}

    verdict = verify_workload_certificate(
        substitutions.get(chain, chain) if isinstance(chain, str) else chain,  # type: ignore[arg-type]
        expected,  # type: ignore[arg-type]
        substitutions.get(roots, roots) if isinstance(roots, str) else roots,  # type: ignore[arg-type]
        at=at,  # type: ignore[arg-type]
    )

    assert not verdict.ok
    assert reason in verdict.reason, verdict.reason


def test_private_key_pem_is_not_a_certificate(pki: Pki) -> None:
    root = pki.root()

    verdict = verify_workload_certificate(root.key_pem, CLIENT, root.pem)

    assert not verdict.ok and "holds no PEM certificate" in verdict.reason


def test_chain_carrying_a_same_named_foreign_root_is_rejected(pki: Pki) -> None:
    root, foreign = pki.root(), pki.root()  # both O=cluster.local, like any two Istio self-signed roots
    inter = pki.intermediate(foreign)

    verdict = verify_workload_certificate(pem_of(pki.leaf(inter), inter, foreign), CLIENT, root.pem)

    assert not verdict.ok
    assert (
        "self-signed 'O=cluster.local', which is not one of the trusted roots (foreign root)"
        in verdict.reason
    )


def test_the_unrelated_root_is_a_ca_that_no_mesh_chain_reaches(pki: Pki) -> None:
    """The mTLS suite's negative control: a real chain is judged against this root and must fail."""
    from cryptography import x509

    root = pki.root()
    inter = pki.intermediate(root)
    chain = pem_of(pki.leaf(inter), inter)
    unrelated = unrelated_root_pem()
    cert = x509.load_pem_x509_certificate(unrelated.encode())

    assert (
        cert.subject == cert.issuer
        and cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    )
    assert verify_workload_certificate(chain, CLIENT, root.pem).ok  # control: the chain itself is good
    assert not verify_workload_certificate(chain, CLIENT, unrelated).ok
    assert unrelated != unrelated_root_pem()  # fresh each time: nothing can have been issued under it
