"""A throwaway certificate authority for the local control plane.

The API server runs with real authentication: clients present certificates signed
by this CA, and RBAC decides what their user and groups may do.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = dt.timedelta(days=365)

# The issuer of every local control plane's ServiceAccount tokens (the `iss` claim
# Trino requires of them).
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"


@dataclass(frozen=True)
class KeyPair:
    cert: Path
    key: Path


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attrs)


class CertificateAuthority:
    """A CA kept in `directory`, issuing server and client certificates."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.pair = KeyPair(directory / "ca.crt", directory / "ca.key")
        if self.pair.cert.exists() and self.pair.key.exists():
            key = serialization.load_pem_private_key(self.pair.key.read_bytes(), None)
            assert isinstance(key, ec.EllipticCurvePrivateKey)
            self._key = key
            self._cert = x509.load_pem_x509_certificate(self.pair.cert.read_bytes())
            return
        self._key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        subject = _name("clientpipelines-local-ca")
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self._key, hashes.SHA256())
        )
        _write_key(self._key, self.pair.key)
        self.pair.cert.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))

    def issue(
        self,
        name: str,
        *,
        common_name: str,
        organization: str | None = None,
        server: bool = False,
    ) -> KeyPair:
        """Issue `<name>.crt`/`<name>.key`; a server certificate is valid for loopback."""
        pair = KeyPair(self.directory / f"{name}.crt", self.directory / f"{name}.key")
        if pair.cert.exists() and pair.key.exists():
            return pair
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name, organization))
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName("localhost"),
                        x509.DNSName("kubernetes.default.svc"),
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                        # The first address of the service range: the in-cluster
                        # `kubernetes` Service.
                        x509.IPAddress(ipaddress.ip_address("10.0.0.1")),
                    ]
                ),
                critical=False,
            )
        cert = builder.sign(self._key, hashes.SHA256())
        _write_key(key, pair.key)
        pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return pair


def write_service_account_keys(directory: Path) -> KeyPair:
    """The key pair the API server signs (private) and verifies (public) tokens with.

    RSA, as kubeadm makes a cluster's: Nessie (Quarkus OIDC) verifies tokens with
    a local public key only if it is RSA. `cert` holds the public key here:
    kube-apiserver reads public keys from --service-account-key-file and refuses a
    PKCS#8 private key there.
    """
    pair = KeyPair(directory / "service-account-rsa.pub", directory / "service-account-rsa.key")
    if not (pair.key.exists() and pair.cert.exists()):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pair.key.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        pair.key.chmod(0o600)
        pair.cert.write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    return pair


def mint_service_account_token(
    pair: KeyPair, subject: str, audience: str, lifetime: dt.timedelta
) -> str:
    """A token as the API server's TokenRequest makes one (RS256, its issuer), for a
    platform principal where no control plane runs (the local stack's services)."""
    key = serialization.load_pem_private_key(pair.key.read_bytes(), None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise TypeError(f"{pair.key}: not an RSA key")
    return service_account_jwt(key, subject, audience, lifetime)


def service_account_jwt(
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    subject: str,
    audience: str,
    lifetime: dt.timedelta,
) -> str:
    """A ServiceAccount token's JWT (the cluster's issuer) signed by `key`: RS256 for
    an RSA key, ES256 for a P-256 one (the tests' forgeries)."""

    def part(data: dict[str, Any]) -> str:
        raw = json.dumps(data, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    now = int(time.time())
    claims = {
        "iss": SERVICE_ACCOUNT_ISSUER,
        "aud": [audience],
        "sub": subject,
        "iat": now,
        "nbf": now,
        "exp": now + int(lifetime.total_seconds()),
    }
    alg = "RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256"
    signing_input = f"{part({'alg': alg, 'typ': 'JWT'})}.{part(claims)}".encode()
    if isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    else:
        r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return f"{signing_input.decode()}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"
