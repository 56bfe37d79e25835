from __future__ import annotations

import base64

import pytest
from nacl.signing import SigningKey

from voicebus.ingress.signature import (
    PublicKeyError,
    SignatureFailure,
    SignatureVerificationError,
    WebhookVerifier,
    decode_public_key,
    sign,
)

KEY = SigningKey(bytes(range(32)))
PUBLIC = base64.b64encode(bytes(KEY.verify_key)).decode()
BODY = b'{"data":{"id":"1","event_type":"call.answered"}}'
NOW = 1_800_000_000


def verifier(now: float = NOW, tolerance: int = 300) -> WebhookVerifier:
    return WebhookVerifier(decode_public_key(PUBLIC), tolerance, clock=lambda: now)


def failure(headers: dict[str, str], body: bytes = BODY, now: float = NOW) -> SignatureFailure:
    with pytest.raises(SignatureVerificationError) as caught:
        verifier(now).verify(body, headers)
    return caught.value.reason


def test_signature_over_timestamp_and_raw_body_verifies() -> None:
    assert verifier().verify(BODY, sign(BODY, KEY, NOW)) == NOW


@pytest.mark.parametrize("offset", [-300, 300, 0])
def test_window_edges_are_inside(offset: int) -> None:
    assert verifier(NOW + offset).verify(BODY, sign(BODY, KEY, NOW)) == NOW


def test_window_is_enforced_both_ways() -> None:
    headers = sign(BODY, KEY, NOW)
    assert failure(headers, now=NOW + 301) is SignatureFailure.STALE_TIMESTAMP
    assert failure(headers, now=NOW - 301) is SignatureFailure.FUTURE_TIMESTAMP


def test_configured_tolerance_is_used() -> None:
    headers = sign(BODY, KEY, NOW)
    with pytest.raises(SignatureVerificationError):
        verifier(NOW + 61, tolerance=60).verify(BODY, headers)


@pytest.mark.parametrize("timestamp", ["-1", "1e9", " 1800000000", "+1800000000", "1_800_000_000", "१८००"])
def test_timestamps_must_be_plain_ascii_digits(timestamp: str) -> None:
    headers = {**sign(BODY, KEY, NOW), "telnyx-timestamp": timestamp}
    assert failure(headers) is SignatureFailure.MALFORMED_TIMESTAMP


def test_absurdly_long_timestamp_is_refused_before_int() -> None:
    headers = {**sign(BODY, KEY, NOW), "telnyx-timestamp": "9" * 5000}
    assert failure(headers) is SignatureFailure.MALFORMED_TIMESTAMP


def test_headers_are_found_in_any_case() -> None:
    headers = {name.upper(): value for name, value in sign(BODY, KEY, NOW).items()}
    assert verifier().verify(BODY, headers) == NOW


def test_empty_headers_count_as_missing() -> None:
    assert failure({"telnyx-signature-ed25519": "", "telnyx-timestamp": str(NOW)}) is (
        SignatureFailure.MISSING_SIGNATURE
    )


@pytest.mark.parametrize(
    ("key", "message"),
    [("", "decodes to 0 bytes"), ("!!", "not valid base64"), (base64.b64encode(b"k" * 31).decode(), "31 bytes")],
)
def test_bad_public_keys_say_what_is_wrong(key: str, message: str) -> None:
    with pytest.raises(PublicKeyError, match=message):
        decode_public_key(key)
