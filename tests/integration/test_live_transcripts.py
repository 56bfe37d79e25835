"""Live transcription: final segments in order on the call, the whole transcript in S3 at hang-up."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from tests.support.calls import CallScript, as_bus_event
from tests.support.routing import targets
from voicebus.calls.store import CallStore

pytestmark = pytest.mark.integration


def segment(script: CallScript, text: str, *, final: bool = True) -> dict[str, Any]:
    data = {"transcript": text, "is_final": final, "confidence": 0.93}
    return as_bus_event(script.event("call.transcription", transcription_data=data))


def deliver(consumers: dict[str, Any], event: dict[str, Any]) -> None:
    for function in sorted(targets(event)):
        consumers[function].invoke(event)


def read(uri: str) -> str:
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    return str(boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read().decode())


def test_segments_in_order_whatever_the_delivery_and_archived_at_hangup(
    consumers: dict[str, Any], call_store: CallStore
) -> None:
    script = CallScript()
    deliver(consumers, as_bus_event(script.event("call.initiated")))
    first = segment(script, "hello")
    interim = segment(script, "I would like to", final=False)
    second = segment(script, "I would like to change my booking")
    hangup = as_bus_event(script.event("call.hangup", hangup_cause="normal_clearing"))

    for event in (second, interim, first, second, hangup):  # out of order, with a duplicate
        deliver(consumers, event)

    texts = [item["text"] for item in call_store.transcript_segments(script.call_control_id)]
    assert texts == ["hello", "I would like to change my booking"]
    record = call_store.get_call(script.call_control_id)
    assert record is not None and record.transcript is not None
    assert record.transcript["segments"] == 2
    document = json.loads(read(record.transcript["json"]))
    assert [item["text"] for item in document["segments"]] == texts
    assert read(record.transcript["text"]) == "hello\nI would like to change my booking\n"
    assert record.transcript["json"].endswith(f"/{script.session}/{script.call_control_id.replace(':', '_')}.json")


def test_a_segment_after_the_hangup_rewrites_the_transcript(consumers: dict[str, Any], call_store: CallStore) -> None:
    script = CallScript()
    early = segment(script, "first words")
    late = segment(script, "last words")
    deliver(consumers, early)
    deliver(consumers, as_bus_event(script.event("call.hangup", hangup_cause="normal_clearing")))
    record = call_store.get_call(script.call_control_id)
    assert record is not None and record.transcript is not None
    assert read(record.transcript["text"]) == "first words\n"

    deliver(consumers, late)  # delivered after the hang-up, though it happened before it

    record = call_store.get_call(script.call_control_id)
    assert record is not None and record.transcript is not None
    assert read(record.transcript["text"]) == "first words\nlast words\n"


def test_a_call_without_live_transcription_archives_nothing(consumers: dict[str, Any], call_store: CallStore) -> None:
    script = CallScript()
    deliver(consumers, as_bus_event(script.event("call.hangup", hangup_cause="normal_clearing")))
    record = call_store.get_call(script.call_control_id)
    assert record is not None and record.transcript is None
