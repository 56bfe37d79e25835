"""Every events/webhooks/*.json is fed to the ingress handler, as `sam local invoke -e` would."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.support.bus import BusTap
from tests.support.requests import answer
from voicebus.ingress.signature import TIMESTAMP_HEADER, WebhookVerifier, decode_public_key
from voicebus_cli.local.functions import LoadedFunction
from voicebus_cli.testkey import ROOT, TestKeyPair
from voicebus_cli.webhooks import raw_body, resign_event, webhook_event_files

pytestmark = pytest.mark.integration

FILES = webhook_event_files()


def test_there_is_a_sample_for_every_seed_event_type() -> None:
    seed_types = {
        "call.playback.started", "call.playback.ended", "call.speak.started", "call.speak.ended",
        "call.recording.saved", "call.recording.error", "call.recording.transcription.saved",
        "call.fork.started", "call.fork.stopped", "streaming.started", "streaming.stopped", "streaming.failed",
        "call.transcription", "call.refer.started", "call.refer.completed", "call.refer.failed",
        "siprec.started", "siprec.stopped", "siprec.failed", "call.initiated", "call.answered", "call.hangup",
        "call.bridged", "call.gather.ended", "call.dtmf.received", "call.hold", "call.unhold", "call.enqueued",
        "call.dequeued", "call.machine.detection.ended", "call.cost", "conference.created",
    }  # fmt: skip
    types = {json.loads(raw_body(json.loads(path.read_text())))["data"]["event_type"] for path in FILES}
    assert seed_types <= types


def test_env_json_holds_the_test_public_key(test_key: TestKeyPair) -> None:
    env = json.loads((ROOT / "events" / "env.json").read_text())
    assert env["IngressFunction"]["TELNYX_PUBLIC_KEY"] == test_key.public_key_b64
    assert {"EVENT_BUS_NAME", "CALLS_TABLE_NAME", "IDEMPOTENCY_TABLE_NAME"} <= set(env["Parameters"])


@pytest.mark.parametrize("path", FILES, ids=[path.name for path in FILES])
def test_committed_signature_is_valid_for_its_own_timestamp(path: Path, test_key: TestKeyPair) -> None:
    event = json.loads(path.read_text())
    signed_at = int(event["headers"][TIMESTAMP_HEADER])
    verifier = WebhookVerifier(decode_public_key(test_key.public_key_b64), clock=lambda: float(signed_at))

    assert verifier.verify(raw_body(event), event["headers"]) == signed_at


@pytest.mark.parametrize("path", FILES, ids=[path.name for path in FILES])
def test_each_sample_reaches_the_bus_when_fresh_and_is_refused_when_stale(
    path: Path, ingress: LoadedFunction, bus_tap: BusTap, test_key: TestKeyPair
) -> None:
    event = json.loads(path.read_text())
    body = json.loads(raw_body(event))

    stale = resign_event(event, test_key.signing_key, int(time.time()) - 301)
    assert answer(ingress.invoke(stale))[0] == 401
    assert bus_tap.drain() == []

    fresh = resign_event(event, test_key.signing_key)
    status, reply = answer(ingress.invoke(fresh))
    assert (status, reply["id"]) == (200, body["data"]["id"])
    [delivered] = bus_tap.drain()
    assert (delivered["detail-type"], delivered["detail"]) == (body["data"]["event_type"], body)
