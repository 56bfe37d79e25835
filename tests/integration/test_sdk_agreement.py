"""The ingress and the official SDK's `client.webhooks.unwrap` give the same verdict on every request.

The SDK is only imported here, in a test: the ingress never imports it.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass

import pytest
import telnyx
from nacl.signing import SigningKey

from tests.support.requests import answer, envelope
from voicebus.ingress.signature import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from voicebus_cli.local.functions import LoadedFunction
from voicebus_cli.testkey import TestKeyPair
from voicebus_cli.webhooks import api_gateway_event, compact

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Case:
    """One HTTP request as Telnyx (or an attacker) might send it."""

    name: str
    body: bytes
    headers: dict[str, str]
    base64_body: bool = False


def _cases(key: TestKeyPair) -> list[Case]:
    now = int(time.time())
    body = compact(envelope("call.answered"))
    unicode_body = compact(envelope("call.initiated", caller_id_name="Zoë Ñúñez 東京"))
    headers = sign(body, key.signing_key, now)
    stranger = SigningKey.generate()

    def signed(raw: bytes, at: int = now, signer: SigningKey = key.signing_key) -> dict[str, str]:
        return sign(raw, signer, at)

    def with_header(name: str, value: str | None) -> dict[str, str]:
        changed = dict(headers)
        if value is None:
            changed.pop(name)
        else:
            changed[name] = value
        return changed

    pretty = json.dumps(json.loads(body), indent=2).encode()
    return [
        Case("valid", body, headers),
        Case("valid, unicode body signed as UTF-8 bytes", unicode_body, signed(unicode_body)),
        Case("valid, base64-encoded by API Gateway", body, headers, base64_body=True),
        Case("valid, unicode and base64-encoded", unicode_body, signed(unicode_body), base64_body=True),
        Case("valid, header names in title case", body, {k.title(): v for k, v in headers.items()}),
        Case("valid, header names upper case", body, {k.upper(): v for k, v in headers.items()}),
        Case("valid, pretty-printed body signed as sent", pretty, signed(pretty)),
        Case("tampered body", body.replace(b"call.answered", b"call.hangup"), headers),
        Case("one added space", body.replace(b",", b", ", 1), headers),
        Case("trailing newline added", body + b"\n", headers),
        Case("re-serialised JSON", compact(json.loads(body)) + b" ", headers),
        Case("wrong key", body, signed(body, signer=stranger)),
        Case("signature of another body", body, signed(unicode_body)),
        Case("stale timestamp", body, signed(body, now - 400)),
        Case("future timestamp", body, signed(body, now + 400)),
        Case("an hour old", body, signed(body, now - 3600)),
        Case("timestamp changed after signing", body, with_header(TIMESTAMP_HEADER, str(now - 1))),
        Case("missing signature", body, with_header(SIGNATURE_HEADER, None)),
        Case("missing timestamp", body, with_header(TIMESTAMP_HEADER, None)),
        Case("signature not base64", body, with_header(SIGNATURE_HEADER, "%%%not-base64%%%")),
        Case("signature too short", body, with_header(SIGNATURE_HEADER, base64.b64encode(b"x" * 32).decode())),
        Case("signature too long", body, with_header(SIGNATURE_HEADER, base64.b64encode(b"x" * 65).decode())),
        Case("timestamp not a number", body, with_header(TIMESTAMP_HEADER, "now")),
        Case("zero signature", body, with_header(SIGNATURE_HEADER, base64.b64encode(bytes(64)).decode())),
    ]


def _sdk_accepts(client: telnyx.Telnyx, case: Case) -> bool:
    try:
        client.webhooks.unwrap(case.body.decode("utf-8"), headers=case.headers)
    except ValueError:
        return False
    return True


def _ingress_accepts(ingress: LoadedFunction, case: Case) -> tuple[bool, int]:
    event = api_gateway_event(case.body, case.headers, base64_body=case.base64_body)
    status, _ = answer(ingress.invoke(event))
    assert status in (200, 401), f"{case.name}: unexpected status {status}"
    return status == 200, status


def test_ingress_and_sdk_agree_on_every_case(ingress: LoadedFunction, test_key: TestKeyPair) -> None:
    client = telnyx.Telnyx(api_key="unused", public_key=test_key.public_key_b64)
    verdicts: dict[str, tuple[bool, bool]] = {}
    for case in _cases(test_key):
        ours, _ = _ingress_accepts(ingress, case)
        verdicts[case.name] = (ours, _sdk_accepts(client, case))

    disagreements = {name: verdict for name, verdict in verdicts.items() if verdict[0] != verdict[1]}
    assert disagreements == {}
    # The corpus is only worth something if it holds both verdicts.
    accepted = {name for name, (ours, _) in verdicts.items() if ours}
    assert accepted == {name for name in verdicts if name.startswith("valid")}
    assert len(verdicts) - len(accepted) >= 15
