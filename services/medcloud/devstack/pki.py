"""Certificates and keys for the local stack: a CA per Kubernetes API server (serving and client
certificates, the service-account signing key) and the region's CA for medcloud's mutual TLS."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from medcloud.runtime.tls import TlsMaterial

_VALIDITY = datetime.timedelta(days=365)


def _new_key() -> ec.EllipticCurvePrivateKey:
    # P-256: accepted by kube-apiserver for serving, client and service-account keys, and
    # generated in microseconds where RSA takes tens of milliseconds.
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class IssuedCertificate:
    cert_pem: bytes
    key_pem: bytes


class CertificateAuthority:
    """A throwaway CA for one local cluster."""

    def __init__(self, common_name: str) -> None:
        self._key = _new_key()
        now = datetime.datetime.now(datetime.UTC)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        self._name = name
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
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

    @property
    def cert_pem(self) -> bytes:
        return _cert_pem(self.certificate)

    def issue_certificate(
        self,
        subject: x509.Name,
        usage: x509.ObjectIdentifier | list[x509.ObjectIdentifier],
        alternative_names: list[x509.GeneralName] | None = None,
    ) -> IssuedCertificate:
        usages = usage if isinstance(usage, list) else [usage]
        key = _new_key()
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self._name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        )
        if alternative_names:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(alternative_names), critical=False
            )
        return IssuedCertificate(_cert_pem(builder.sign(self._key, hashes.SHA256())), _key_pem(key))

    def issue_serving(self, host: str) -> IssuedCertificate:
        """A serving certificate valid for `host`, 127.0.0.1 and localhost."""
        names: list[x509.GeneralName] = [
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.DNSName("localhost"),
            x509.DNSName("kubernetes.default.svc"),
        ]
        if host not in ("127.0.0.1", "localhost"):
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")])
        return self.issue_certificate(subject, ExtendedKeyUsageOID.SERVER_AUTH, names)

    def issue_client(self, user: str, groups: tuple[str, ...] = ()) -> IssuedCertificate:
        """A client certificate for Kubernetes user `user` (CN) in `groups` (O)."""
        attributes = [x509.NameAttribute(NameOID.COMMON_NAME, user)]
        attributes += [x509.NameAttribute(NameOID.ORGANIZATION_NAME, group) for group in groups]
        return self.issue_certificate(x509.Name(attributes), ExtendedKeyUsageOID.CLIENT_AUTH)


def _loopback_names() -> list[x509.GeneralName]:
    return [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    cert: Path
    key: Path

    def material(self) -> TlsMaterial:
        return TlsMaterial.from_files(self.ca, self.cert, self.key)

    def environment(self) -> dict[str, str]:
        """The MEDCLOUD_TLS_* variables a medcloud process reads its material from."""
        return {
            "MEDCLOUD_TLS_CA_FILE": str(self.ca),
            "MEDCLOUD_TLS_CERT_FILE": str(self.cert),
            "MEDCLOUD_TLS_KEY_FILE": str(self.key),
        }


class RegionPki:
    """The region's CA and the certificates it issued, as files under `directory`. Every medcloud
    process gets one certificate for both ends of its calls: common name = who (a service, an
    agent's node, a person), organisations = the roles it holds."""

    def __init__(self, directory: Path, region: str) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.authority = CertificateAuthority(f"medcloud {region} CA")
        self.ca_path = directory / "ca.pem"
        self.ca_path.write_bytes(self.authority.cert_pem)

    def issue(self, name: str, roles: tuple[str, ...]) -> TlsFiles:
        attributes = [x509.NameAttribute(NameOID.COMMON_NAME, name)]
        attributes += [x509.NameAttribute(NameOID.ORGANIZATION_NAME, role) for role in roles]
        issued = self.authority.issue_certificate(
            x509.Name(attributes),
            [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
            _loopback_names(),
        )
        cert, key = self.directory / f"{name}.pem", self.directory / f"{name}.key"
        cert.write_bytes(issued.cert_pem)
        key.write_bytes(issued.key_pem)
        key.chmod(0o600)
        return TlsFiles(self.ca_path, cert, key)


def write_service_account_keys(directory: Path) -> tuple[Path, Path]:
    """The key pair kube-apiserver signs and verifies service-account tokens with."""
    key = _new_key()
    private_path, public_path = directory / "sa.key", directory / "sa.pub"
    private_path.write_bytes(_key_pem(key))
    private_path.chmod(0o600)
    public_path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private_path, public_path
