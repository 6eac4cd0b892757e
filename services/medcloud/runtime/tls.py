"""Mutual TLS for medcloud's gRPC: every service and every client presents a certificate from
the region's CA. The certificate names the caller: its common name is the identity, and its
organisation entries are the roles it holds (as Kubernetes reads client certificates)."""

from __future__ import annotations

import functools
import os
import ssl
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.x509.oid import NameOID

from medcloud.runtime.config import ConfigError

TLS_VARIABLES = ("MEDCLOUD_TLS_CA_FILE", "MEDCLOUD_TLS_CERT_FILE", "MEDCLOUD_TLS_KEY_FILE")


@dataclass(frozen=True)
class TlsMaterial:
    """PEM bytes: the CA that signs every medcloud certificate, and this process's own pair."""

    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes

    @classmethod
    def from_files(cls, ca: Path, cert: Path, key: Path) -> TlsMaterial:
        return cls(ca.read_bytes(), cert.read_bytes(), key.read_bytes())

    def server_credentials(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials(
            [(self.key_pem, self.cert_pem)],
            root_certificates=self.ca_pem,
            require_client_auth=True,
        )

    def channel_credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca_pem,
            private_key=self.key_pem,
            certificate_chain=self.cert_pem,
        )

    def client_ssl_context(self) -> ssl.SSLContext:
        """For clients other than gRPC (NATS): trusts only the region's CA and presents this
        process's certificate."""
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=self.ca_pem.decode())
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        # ssl loads a key pair only from files: a private directory, gone once loaded.
        with tempfile.TemporaryDirectory(prefix="medcloud-tls-") as directory:
            cert, key = Path(directory) / "tls.crt", Path(directory) / "tls.key"
            cert.write_bytes(self.cert_pem)
            key.touch(0o600)
            key.write_bytes(self.key_pem)
            context.load_cert_chain(cert, key)
        return context


def tls_from_environment(environ: Mapping[str, str] | None = None) -> TlsMaterial | None:
    """The material the three MEDCLOUD_TLS_* variables name, or None when none is set
    (plaintext, for a test of the runtime alone). Setting only some of them is an error."""
    environ = os.environ if environ is None else environ
    values = {name: environ.get(name, "") for name in TLS_VARIABLES}
    if not any(values.values()):
        return None
    problems = [f"{name}: required with the other TLS files" for name, v in values.items() if not v]
    for name, value in values.items():
        if value and not Path(value).is_file():
            problems.append(f"{name}={value!r}: no such file")
    if problems:
        raise ConfigError(problems)
    return TlsMaterial.from_files(*(Path(values[name]) for name in TLS_VARIABLES))


@dataclass(frozen=True)
class Caller:
    """Who is calling, by its certificate: `subject` (common name) and `groups` (organisations)."""

    subject: str
    groups: frozenset[str]


ANONYMOUS = Caller("", frozenset())


@functools.lru_cache(maxsize=1024)
def _caller_of(pem: bytes) -> Caller:
    certificate = x509.load_pem_x509_certificate(pem)
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    groups = certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return Caller(
        str(names[0].value) if names else "",
        frozenset(str(group.value) for group in groups),
    )


def caller_of(context: grpc.aio.ServicerContext) -> Caller:
    """The verified client certificate's names; ANONYMOUS on a plaintext connection."""
    pems = context.auth_context().get("x509_pem_cert")
    return _caller_of(pems[0]) if pems else ANONYMOUS
