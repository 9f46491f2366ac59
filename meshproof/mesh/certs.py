"""A shared root CA and one intermediate per cluster, as Istio's plug-in `cacerts` Secret expects.

Multicluster needs every cluster's workload certificates to chain to one root (istio-facts §8.1). The
keys are made when the plan is applied, held in memory for that apply, and go only into the clusters'
Secrets: never into the plan, its files, logs or reports.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

GENERATED_ANNOTATION = "meshproof.io/generated"
CLUSTER_ANNOTATION = "meshproof.io/cluster"
CACERTS_KIND = "istio-cacerts"
_VALIDITY = datetime.timedelta(days=365)


@dataclass(frozen=True)
class CaPair:
    cert: x509.Certificate
    key: rsa.RSAPrivateKey

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _ca_cert(
    subject: x509.Name,
    key: rsa.RSAPrivateKey,
    issuer: CaPair | None,
    *,
    path_length: int | None,
    istiod_dns: str | None,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False
        )
    if istiod_dns:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(istiod_dns)]), critical=False
        )
    return builder.sign(issuer.key if issuer else key, hashes.SHA256())


def make_root(organization: str = "Istio") -> CaPair:
    key = _key()
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, "Root CA"),
        ]
    )
    return CaPair(_ca_cert(name, key, None, path_length=None, istiod_dns=None), key)


def unrelated_root_pem() -> str:
    """A fresh self-signed root CA that nothing in any cluster chains to: the negative control for chain
    checks (a verifier that accepts a mesh chain against this root accepts anything)."""
    return make_root("meshproof unrelated root").cert_pem.decode()


def make_intermediate(root: CaPair, cluster: str, istio_namespace: str = "istio-system") -> CaPair:
    """The cluster's CA, as the OSSM/istio.io procedure makes it: CA:true pathlen:0, L=<cluster>."""
    key = _key()
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Istio"),
            x509.NameAttribute(NameOID.COMMON_NAME, "Intermediate CA"),
            x509.NameAttribute(NameOID.LOCALITY_NAME, cluster),
        ]
    )
    cert = _ca_cert(name, key, root, path_length=0, istiod_dns=f"istiod.{istio_namespace}.svc")
    return CaPair(cert, key)


def cacerts_data(root: CaPair, intermediate: CaPair) -> dict[str, str]:
    """The four files of a `cacerts` Secret, as stringData."""
    return {
        "ca-cert.pem": intermediate.cert_pem.decode(),
        "ca-key.pem": intermediate.key_pem.decode(),
        "root-cert.pem": root.cert_pem.decode(),
        "cert-chain.pem": (intermediate.cert_pem + root.cert_pem).decode(),
    }


@dataclass
class SharedCa:
    """One root per apply, one intermediate per cluster, made on first use."""

    root: CaPair | None = None
    intermediates: dict[str, CaPair] = field(default_factory=dict)

    def cacerts_for(self, cluster: str, istio_namespace: str = "istio-system") -> dict[str, str]:
        if self.root is None:
            self.root = make_root()
        if cluster not in self.intermediates:
            self.intermediates[cluster] = make_intermediate(self.root, cluster, istio_namespace)
        return cacerts_data(self.root, self.intermediates[cluster])
