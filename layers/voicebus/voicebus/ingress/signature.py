"""Telnyx webhook signatures: Ed25519 over ``timestamp|raw body``, inside a replay window.

This module knows nothing about HTTP or AWS. It holds the one rule that decides
whether a request came from Telnyx, so that the ingress, the signing CLI and the
tests all agree on it.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable, Mapping
from enum import StrEnum

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from voicebus.errors import PermanentError

SIGNATURE_HEADER = "telnyx-signature-ed25519"
TIMESTAMP_HEADER = "telnyx-timestamp"
DEFAULT_TOLERANCE_SECONDS = 300
ED25519_KEY_BYTES = 32
ED25519_SIGNATURE_BYTES = 64
# Unix seconds stay below 12 digits for the next 30,000 years; longer is an attack on int().
_MAX_TIMESTAMP_DIGITS = 12


class SignatureFailure(StrEnum):
    """Why a request was refused; also the `reason` in the 401 body and in metrics."""

    MISSING_SIGNATURE = "missing_signature"
    MALFORMED_SIGNATURE = "malformed_signature"
    MISSING_TIMESTAMP = "missing_timestamp"
    MALFORMED_TIMESTAMP = "malformed_timestamp"
    STALE_TIMESTAMP = "stale_timestamp"
    FUTURE_TIMESTAMP = "future_timestamp"
    BAD_SIGNATURE = "bad_signature"


class SignatureVerificationError(PermanentError):
    """The request cannot be proven to come from Telnyx."""

    def __init__(self, reason: SignatureFailure, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class PublicKeyError(PermanentError, ValueError):
    """The configured Telnyx public key is not base64 of a 32-byte Ed25519 key."""


def decode_public_key(key_b64: str) -> VerifyKey:
    """Decode Mission Control's public key (base64 of the raw 32-byte key)."""
    try:
        raw = base64.b64decode(key_b64.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise PublicKeyError("is not valid base64") from exc
    if len(raw) != ED25519_KEY_BYTES:
        raise PublicKeyError(f"decodes to {len(raw)} bytes, an Ed25519 public key has {ED25519_KEY_BYTES}")
    return VerifyKey(raw)


def header(headers: Mapping[str, str], name: str) -> str | None:
    """Look a header up by lower-case name, in whatever case the client sent it."""
    value = headers.get(name)
    if value is not None:
        return value
    for key, candidate in headers.items():
        if key.lower() == name:
            return candidate
    return None


class WebhookVerifier:
    """Verifies Telnyx webhooks with one public key, built once per container."""

    def __init__(
        self,
        public_key: VerifyKey,
        tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = public_key
        self._tolerance = tolerance_seconds
        self._clock = clock

    def verify(self, body: bytes, headers: Mapping[str, str]) -> int:
        """Raise `SignatureVerificationError` unless `body` was signed by Telnyx recently.

        `body` must be the raw bytes as received: re-serialised JSON does not verify.
        Returns the verified timestamp.
        """
        signature_b64 = header(headers, SIGNATURE_HEADER)
        if not signature_b64:
            raise SignatureVerificationError(
                SignatureFailure.MISSING_SIGNATURE, f"the {SIGNATURE_HEADER} header is missing"
            )
        timestamp_text = header(headers, TIMESTAMP_HEADER)
        if not timestamp_text:
            raise SignatureVerificationError(
                SignatureFailure.MISSING_TIMESTAMP, f"the {TIMESTAMP_HEADER} header is missing"
            )
        timestamp = self._check_timestamp(timestamp_text)
        signature = self._decode_signature(signature_b64)
        try:
            self._key.verify(timestamp_text.encode("ascii") + b"|" + body, signature)
        except BadSignatureError:
            raise SignatureVerificationError(
                SignatureFailure.BAD_SIGNATURE, "the signature does not match this body and timestamp"
            ) from None
        return timestamp

    def _check_timestamp(self, text: str) -> int:
        if not (text.isascii() and text.isdigit() and len(text) <= _MAX_TIMESTAMP_DIGITS):
            raise SignatureVerificationError(
                SignatureFailure.MALFORMED_TIMESTAMP, f"the {TIMESTAMP_HEADER} header is not Unix seconds"
            )
        timestamp = int(text)
        age = self._clock() - timestamp
        if age > self._tolerance:
            raise SignatureVerificationError(
                SignatureFailure.STALE_TIMESTAMP,
                f"the timestamp is older than the {self._tolerance} s replay window",
            )
        if -age > self._tolerance:
            raise SignatureVerificationError(
                SignatureFailure.FUTURE_TIMESTAMP,
                f"the timestamp is more than {self._tolerance} s in the future",
            )
        return timestamp

    @staticmethod
    def _decode_signature(text: str) -> bytes:
        try:
            signature = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise SignatureVerificationError(
                SignatureFailure.MALFORMED_SIGNATURE, f"the {SIGNATURE_HEADER} header is not base64"
            ) from None
        if len(signature) != ED25519_SIGNATURE_BYTES:
            raise SignatureVerificationError(
                SignatureFailure.MALFORMED_SIGNATURE,
                f"the signature has {len(signature)} bytes, Ed25519 signatures have {ED25519_SIGNATURE_BYTES}",
            )
        return signature


def sign(body: bytes, signing_key: SigningKey, timestamp: int) -> dict[str, str]:
    """The headers Telnyx would send with `body`: for local runs, the CLI and tests."""
    signature = signing_key.sign(str(timestamp).encode("ascii") + b"|" + body).signature
    return {
        SIGNATURE_HEADER: base64.b64encode(signature).decode("ascii"),
        TIMESTAMP_HEADER: str(timestamp),
    }
