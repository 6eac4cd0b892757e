"""Ed25519 signatures for audit checkpoints, behind the domain's Signer and Verifier protocols."""

from __future__ import annotations

from collections.abc import Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from medcloud.core.errors import InvalidArgument


def generate_key_pair() -> tuple[bytes, bytes]:
    """A new key pair as raw bytes: (32-byte private key, 32-byte public key)."""
    private_key = Ed25519PrivateKey.generate()
    return (
        private_key.private_bytes_raw(),
        private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw),
    )


class Ed25519Signer:
    """Signs with one raw 32-byte Ed25519 private key; `key_id` names its public key."""

    def __init__(self, private_key: bytes, key_id: str) -> None:
        if not key_id:
            raise InvalidArgument.single("signer.key_id", "must not be empty")
        try:
            self._key = Ed25519PrivateKey.from_private_bytes(private_key)
        except (TypeError, ValueError) as error:
            raise InvalidArgument.single(
                "signer.private_key", f"must be a raw 32-byte Ed25519 private key: {error}"
            ) from None
        self._key_id = key_id

    @property
    def key_id(self) -> str:
        return self._key_id

    @property
    def public_key(self) -> bytes:
        """The raw 32-byte public key that verifies this signer's signatures."""
        return self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)


class Ed25519Verifier:
    """Verifies with raw 32-byte Ed25519 public keys by key id; keeping retired keys here keeps
    the checkpoints they signed verifiable after a rotation."""

    def __init__(self, public_keys: Mapping[str, bytes]) -> None:
        self._keys: dict[str, Ed25519PublicKey] = {}
        for key_id, public_key in public_keys.items():
            try:
                self._keys[key_id] = Ed25519PublicKey.from_public_bytes(public_key)
            except (TypeError, ValueError) as error:
                raise InvalidArgument.single(
                    f"verifier.public_keys.{key_id}",
                    f"must be a raw 32-byte Ed25519 public key: {error}",
                ) from None

    def verify(self, key_id: str, message: bytes, signature: bytes) -> bool:
        key = self._keys.get(key_id)
        if key is None:
            return False
        try:
            key.verify(signature, message)
        except InvalidSignature:
            return False
        return True
