"""Every function, cold, through `sam local invoke` with its `events/` sample, checked as in-process.

Each invocation gets its own stack in moto, so what a test finds there was written by that
one invocation in the Lambda container. The invocations run a few at a time (each is
mostly SAM CLI and a container starting: VOICEBUS_SAM_LOCAL_PARALLEL, default 4), then
each test checks its own.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.samlocal.conftest import EMULATED, LocalStack
from tests.samlocal.sam import Invocation
from tests.support.bus import BusTap
from tests.support.routing import bundle, recorders
from voicebus.calls.store import CallStore
from voicebus_cli.local.storage import StorageServer
from voicebus_cli.local.telnyx_api import RecordedRequest, TelnyxApiStandIn
from voicebus_cli.testkey import ROOT, TestKeyPair
from voicebus_cli.webhooks import BUS_EVENTS_DIR, raw_body, resign_event

EVENTS = ROOT / "events"
PARALLEL = int(os.environ.get("VOICEBUS_SAM_LOCAL_PARALLEL", "1" if EMULATED else "4"))
LIGHT_CONSUMER = "TimelineFunction"
"""The consumer run under emulation: records only, no Telnyx, no S3."""

CHOSEN_SAMPLES = {
    "CallControlFunction": "call.initiated.json",  # the IVR answers it
    "RecordingFunction": "call.recording.saved.json",  # archived to S3
}


def sample_for(function: str) -> Path:
    """The function's sample: a chosen one, or the first bus event it records."""
    if function in CHOSEN_SAMPLES:
        return BUS_EVENTS_DIR / CHOSEN_SAMPLES[function]
    for path in sorted(BUS_EVENTS_DIR.glob("*.json")):
        if recorders(json.loads(path.read_text())) == {function}:
            return path
    raise LookupError(f"no bus sample is recorded by {function}")


CONSUMERS = sorted(name for name in bundle().families)
RUN_CONSUMERS = [LIGHT_CONSUMER] if EMULATED else CONSUMERS


def local_recording_urls(event: dict[str, Any], storage: StorageServer) -> dict[str, Any]:
    """The sample's links point at example.com: serve recordings from the storage stand-in instead."""
    payload = event["detail"]["data"]["payload"]
    for fmt in list(payload.get("recording_urls") or {}):
        published = storage.publish(f"{payload['recording_id']}.{fmt}.{uuid.uuid4().hex}", 64 * 1024)
        payload["recording_urls"][fmt] = published.url
    return event


def archived_keys(bucket: str) -> list[str]:
    listing = boto3.client("s3").list_objects_v2(Bucket=bucket)
    return [item["Key"] for item in listing.get("Contents", [])]


@dataclass(frozen=True)
class Run:
    """One cold invocation: its stack, the event it was given, what it returned, its bus tap."""

    local: LocalStack
    event: dict[str, Any]
    result: Invocation
    tap: BusTap


@dataclass(frozen=True)
class Runs:
    by_function: dict[str, Run]
    telnyx_requests: list[RecordedRequest]
    """Every request at the Telnyx stand-in during the runs (each function sends its own action)."""


def invocations(test_key: TestKeyPair, storage: StorageServer) -> dict[str, dict[str, Any]]:
    """Each function run here -> its event: a freshly signed webhook, a bus sample or a command request."""
    webhook = json.loads((EVENTS / "webhooks" / "call.answered.json").read_text())
    events = {"IngressFunction": resign_event(webhook, test_key.signing_key)}
    for function in RUN_CONSUMERS:
        events[function] = local_recording_urls(json.loads(sample_for(function).read_text()), storage)
    if not EMULATED:
        events["CommandFunction"] = json.loads((EVENTS / "commands" / "record_start.json").read_text())
    return events


@pytest.fixture(scope="module")
def runs(
    new_stack: Callable[[], LocalStack],
    test_key: TestKeyPair,
    storage: StorageServer,
    telnyx: TelnyxApiStandIn,
    tmp_path_factory: pytest.TempPathFactory,
) -> Runs:
    telnyx.clear()

    def run(function: str, event: dict[str, Any]) -> Run:
        local = new_stack()
        tap = BusTap.on(local.ref("EventBus"), f"{local.stack.stack.name}-tap")
        folder = tmp_path_factory.mktemp(function)
        return Run(local, event, local.sam.invoke(function, event, folder / "event.json"), tap)

    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        futures = {name: pool.submit(run, name, event) for name, event in invocations(test_key, storage).items()}
        return Runs({name: future.result() for name, future in futures.items()}, telnyx.take_requests())


def test_the_ingress_puts_a_signed_sample_on_the_bus(runs: Runs) -> None:
    run = runs.by_function["IngressFunction"]
    body = json.loads(raw_body(run.event))

    assert not run.result.failed, run.result.payload
    assert run.result.payload["statusCode"] == 200, run.result.payload
    assert json.loads(run.result.payload["body"])["id"] == body["data"]["id"]
    [delivered] = run.tap.drain()
    assert (delivered["detail-type"], delivered["detail"]) == (body["data"]["event_type"], body)


@pytest.mark.parametrize("function", RUN_CONSUMERS)
def test_each_consumer_records_its_sample(function: str, runs: Runs) -> None:
    run = runs.by_function[function]
    data = run.event["detail"]["data"]
    payload = run.result.payload

    assert not run.result.failed, payload
    assert (payload["event_id"], payload["event_type"]) == (data["id"], data["event_type"])
    assert payload["recorded"] is True, (payload, run.result.logs[-3000:])
    store = CallStore(boto3.client("dynamodb"), run.local.ref("CallsTable"))
    call_control_id = data["payload"]["call_control_id"]
    assert data["id"] in {entry.event_id for entry in store.timeline(call_control_id)}
    record = store.get_call(call_control_id)
    assert record is not None
    assert record.call_session_id == data["payload"]["call_session_id"]
    if function == "CallControlFunction":
        assert [request.action for request in runs.telnyx_requests].count("answer") == 1
    if function == "RecordingFunction":
        keys = archived_keys(run.local.ref("ArchiveBucket"))
        assert any(data["payload"]["recording_id"] in key for key in keys), (keys, run.result.logs[-3000:])


@pytest.mark.skipif(EMULATED, reason="under emulation only the ingress and one light consumer run")
def test_the_command_function_sends_a_sample_request_and_answers_it(runs: Runs) -> None:
    run = runs.by_function["CommandFunction"]
    detail = run.event["detail"]

    assert not run.result.failed, run.result.payload
    assert run.result.payload["outcome"] == "call.command.succeeded"
    [sent] = [request for request in runs.telnyx_requests if request.action == detail["action"]]
    assert sent.call_control_id == detail["call_control_id"]
    [answer] = [
        item for item in run.tap.drain() if item["source"] == "voicebus" and item["detail-type"] != "call.command"
    ]
    assert answer["detail-type"] == "call.command.succeeded"
    assert answer["detail"]["request_id"] == detail["request_id"]
