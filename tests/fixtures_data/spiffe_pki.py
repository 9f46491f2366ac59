"""Generate a small mesh PKI the way Istio shapes it: a root, intermediates, SPIFFE leaves.

Shapes follow Istio's CA (istio-facts §3.2, §3.4): roots named O=cluster.local with basicConstraints
CA:TRUE and keyCertSign; workload leaves with an empty subject, one critical URI SAN
spiffe://<td>/ns/<ns>/sa/<sa>, CA:FALSE, digitalSignature+keyEncipherment, EKU serverAuth+clientAuth.
EC P-256 keys keep generation fast.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

MESH_ROOT_NAME = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "cluster.local")])


@dataclass(frozen=True)
class Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    @property
    def key_pem(self) -> str:
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()


def pem_of(*certs: Issued) -> str:
    return "".join(c.pem for c in certs)


class Pki:
    """Issues certificates relative to a fixed `now` so validity windows are exact."""

    def __init__(self, now: dt.datetime | None = None) -> None:
        self.now = now or dt.datetime.now(dt.UTC).replace(microsecond=0)

    def root(self, name: x509.Name = MESH_ROOT_NAME, *, hours_valid: int = 24 * 365) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        return self._sign(
            subject=name,
            issuer_name=name,
            public_key_of=key,
            signing_key=key,
            issuer=None,
            ca=True,
            not_before=self.now - dt.timedelta(hours=1),
            not_after=self.now + dt.timedelta(hours=hours_valid),
        )

    def intermediate(
        self,
        issuer: Issued,
        common_name: str = "istio-intermediate",
        *,
        ca: bool = True,
        path_length: int | None = None,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
        subject: x509.Name | None = None,
    ) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        name = subject or x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "cluster.local"),
                x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            ]
        )
        return self._sign(
            subject=name,
            issuer_name=issuer.cert.subject,
            public_key_of=key,
            signing_key=issuer.key,
            issuer=issuer,
            ca=ca,
            path_length=path_length,
            not_before=not_before or self.now - dt.timedelta(hours=1),
            not_after=not_after or self.now + dt.timedelta(days=30),
        )

    def leaf(
        self,
        issuer: Issued,
        uris: Sequence[str] = ("spiffe://cluster.local/ns/demo/sa/client",),
        *,
        ca: bool = False,
        dns: Sequence[str] = (),
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
    ) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        sans: list[x509.GeneralName] = [x509.UniformResourceIdentifier(u) for u in uris]
        sans += [x509.DNSName(d) for d in dns]
        return self._sign(
            subject=x509.Name([]),
            issuer_name=issuer.cert.subject,
            public_key_of=key,
            signing_key=issuer.key,
            issuer=issuer,
            ca=ca,
            sans=sans,
            not_before=not_before or self.now - dt.timedelta(minutes=5),
            not_after=not_after or self.now + dt.timedelta(hours=24),
        )

    def _sign(
        self,
        *,
        subject: x509.Name,
        issuer_name: x509.Name,
        public_key_of: ec.EllipticCurvePrivateKey,
        signing_key: ec.EllipticCurvePrivateKey,
        issuer: Issued | None,
        ca: bool,
        not_before: dt.datetime,
        not_after: dt.datetime,
        path_length: int | None = None,
        sans: Sequence[x509.GeneralName] = (),
    ) -> Issued:
        public_key = public_key_of.public_key()
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer_name)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(
                x509.BasicConstraints(ca=ca, path_length=path_length if ca else None), critical=True
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        )
        if ca:
            builder = builder.add_extension(
                _key_usage(digital_signature=True, key_cert_sign=True), critical=True
            )
        else:
            builder = builder.add_extension(
                _key_usage(digital_signature=True, key_encipherment=True), critical=True
            )
            builder = builder.add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
        if sans:
            # Istio leaves have an empty subject, so the SAN extension is critical (RFC 5280 §4.2.1.6).
            builder = builder.add_extension(
                x509.SubjectAlternativeName(list(sans)), critical=not len(subject)
            )
        if issuer is not None:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False
            )
        cert = builder.sign(signing_key, hashes.SHA256())
        return Issued(cert=cert, key=public_key_of)


def _key_usage(
    *, digital_signature: bool = False, key_encipherment: bool = False, key_cert_sign: bool = False
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=key_cert_sign,
        encipher_only=False,
        decipher_only=False,
    )
