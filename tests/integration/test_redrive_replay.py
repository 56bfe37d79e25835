"""`voicebus redrive` and `voicebus replay` against moto server, with dead letters and a bus record
in the formats the local stack writes (and AWS: EventBridge's DLQ attributes, Lambda's on-failure record)."""

from __future__ import annotations

import io
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.support.calls import CallScript, as_bus_event
from voicebus.calls.store import CallStore
from voicebus_cli.__main__ import main
from voicebus_cli.local.dead_letters import invocation_record, send_undelivered
from voicebus_cli.local.moto_server import MotoServer
from voicebus_cli.local.provision import ProvisionedStack, route_to_queue
from voicebus_cli.local.stack import LocalStack
from voicebus_cli.local.workers import Invocation
from voicebus_cli.operations import STATE_FILE_VARIABLE
from voicebus_cli.redrive import DeadLetter
from voicebus_cli.redrive_counts import SHOWN_CHARACTERS, RedriveCounts, RedriveKey, event_digest, shown

pytestmark = pytest.mark.integration

ACCOUNT = "123456789012"


def function_arn(stack: ProvisionedStack, logical: str) -> str:
    return f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{stack.stack.name}-{logical}"


@pytest.fixture
def local(stack: ProvisionedStack, moto_server: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A local.json naming this stack, as `make local` writes it; returns the bus record's path."""
    record = tmp_path / "bus.jsonl"
    state = {
        "EndpointUrl": moto_server.endpoint_url,
        "EventBusName": stack.ref("EventBus"),
        "CallsTableName": stack.ref("CallsTable"),
        "EventDeadLetterQueueUrl": stack.ref("EventDeadLetterQueue"),
        "FailedInvocationQueueUrl": stack.ref("FailedInvocationQueue"),
        "RuleQueues": {
            f"{logical}/{event}": url
            for logical, function in stack.functions.items()
            for event, url in function.rule_queues.items()
        },
        "FunctionArns": {logical: function_arn(stack, logical) for logical in stack.functions},
        "BusRecordFile": str(record),
    }
    (tmp_path / "local.json").write_text(json.dumps(state))
    monkeypatch.setenv(STATE_FILE_VARIABLE, str(tmp_path / "local.json"))
    return record


def messages(queue_url: str) -> list[dict[str, Any]]:
    """Every event in the queue (consumed)."""
    sqs = boto3.client("sqs")
    found = []
    while batch := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
        for message in batch:
            found.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return found


def depth(queue_url: str) -> int:
    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


def receive_all(queue_url: str) -> list[dict[str, Any]]:
    """Every message in the queue with its attributes (hidden for a minute, not deleted)."""
    sqs = boto3.client("sqs")
    found: list[dict[str, Any]] = []
    while batch := sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], VisibilityTimeout=60
    ).get("Messages", []):
        found.extend(dict(message) for message in batch)
    return found


def ids(events: list[dict[str, Any]]) -> list[str]:
    return sorted(event["detail"]["data"]["id"] for event in events)


def test_redrive_sends_each_dead_letter_to_the_function_that_failed_it(
    stack: ProvisionedStack, local: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sqs = boto3.client("sqs")
    script = CallScript()
    answered = as_bus_event(script.event("call.answered"))
    saved = as_bus_event(script.event("call.recording.saved", recording_id="rec-1"))
    orphan = as_bus_event(script.event("call.hangup"))
    failed_invocations, rule_dlq = stack.ref("FailedInvocationQueue"), stack.ref("EventDeadLetterQueue")
    on_failure = {
        "version": "1.0",
        "timestamp": "2026-11-21T10:00:03.000Z",
        "requestContext": {
            "requestId": "r-1",
            "functionArn": function_arn(stack, "CallControlFunction") + ":$LATEST",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": 3,
        },
        "requestPayload": answered,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {"errorMessage": "table throttled", "errorType": "ProvisionedThroughputExceededException"},
    }
    sqs.send_message(QueueUrl=failed_invocations, MessageBody=json.dumps(on_failure))
    rule_arn = (
        f"arn:aws:events:us-east-1:{ACCOUNT}:rule/{stack.ref('EventBus')}/{stack.stack.name}-RecordingFunction-Telnyx"
    )
    attributes = {
        "RULE_ARN": rule_arn,
        "TARGET_ARN": function_arn(stack, "RecordingFunction"),
        "ERROR_CODE": "Throttling",
        "ERROR_MESSAGE": "Rate exceeded for the target",
    }
    sqs.send_message(
        QueueUrl=rule_dlq,
        MessageBody=json.dumps(saved),
        MessageAttributes={name: {"DataType": "String", "StringValue": value} for name, value in attributes.items()},
    )
    sqs.send_message(QueueUrl=failed_invocations, MessageBody=json.dumps({"requestPayload": orphan}))
    bus = route_to_queue(stack.ref("EventBus"), f"{stack.stack.name}-tap", {"source": ["telnyx"]})
    call_control = stack.functions["CallControlFunction"].rule_queues
    recording = stack.functions["RecordingFunction"].rule_queues["Telnyx"]

    assert main(["redrive", "--local", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would redrive 3 event(s)" in out
    assert "ProvisionedThroughputExceededException: table throttled" in out
    assert "Throttling: Rate exceeded for the target" in out
    assert (depth(failed_invocations), depth(rule_dlq)) == (2, 1)

    assert main(["redrive", "--local", "--function", "CallControl"]) == 0
    assert "redrove 1 event(s), 2 left alone" in capsys.readouterr().out
    assert ids([e for url in call_control.values() for e in messages(url)]) == ids([answered])
    assert messages(recording) == []
    assert messages(bus) == []  # not on the bus: no other rule runs it again

    assert main(["redrive", "--local", "--rule", "RecordingFunction"]) == 0
    assert ids(messages(recording)) == ids([saved])
    assert (depth(failed_invocations), depth(rule_dlq)) == (1, 0)

    assert main(["redrive", "--local"]) == 1  # the orphan names no target
    assert "NOT redriven call.hangup" in capsys.readouterr().out
    assert depth(failed_invocations) == 1 and messages(bus) == []

    assert main(["redrive", "--local", "--to-bus"]) == 0
    assert ids(messages(bus)) == ids([orphan])
    assert depth(failed_invocations) == 0


def recorded(script: CallScript, *kinds: str) -> list[dict[str, Any]]:
    """Bus events a minute apart, from 10:01 on, in the shape the local bus records them."""
    events = []
    for minute, kind in enumerate(kinds, start=1):
        event = as_bus_event(script.event(kind))
        event["time"] = f"2026-11-21T10:{minute:02d}:00Z"
        events.append(event)
    return events


def test_local_replay_puts_the_window_back_on_the_bus_or_on_one_rule(
    stack: ProvisionedStack, local: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = CallScript()
    events = recorded(script, "call.answered", "call.recording.saved", "call.hangup", "call.dtmf.received")
    local.write_text("".join(json.dumps(event) + "\n" for event in events))
    bus = route_to_queue(stack.ref("EventBus"), f"{stack.stack.name}-tap", {"source": ["telnyx"]})
    recording = stack.functions["RecordingFunction"].rule_queues["Telnyx"]
    window = ["--since", "2026-11-21T10:02:00Z", "--until", "2026-11-21T10:04:00"]  # the second and third

    assert main(["replay", "--local", *window, "--rule", "RecordingFunction"]) == 0
    assert "replayed 1 of 2 event(s)" in capsys.readouterr().out
    assert ids(messages(recording)) == ids(events[1:2])
    assert messages(bus) == []

    assert main(["replay", "--local", *window]) == 0
    assert ids(messages(bus)) == ids(events[1:3])

    assert main(["replay", "--local", "--since", "yesterday", "--until", "2026-11-21T10:04:00Z"]) == 2
    assert "--since: not an ISO 8601 time" in capsys.readouterr().err
    assert main(["replay", "--local", *window, "--rule", "Function"]) == 2  # names many rules
    assert "be more specific" in capsys.readouterr().err


def test_replay_against_aws_starts_an_archive_replay_filtered_to_one_rule(
    stack: ProvisionedStack, capsys: pytest.CaptureFixture[str]
) -> None:
    events = boto3.client("events")
    bus_arn = events.describe_event_bus(Name=stack.ref("EventBus"))["Arn"]
    events.create_archive(ArchiveName=f"{stack.stack.name}-archive", EventSourceArn=bus_arn)
    window = ["--since", "2026-11-21T10:00:00Z", "--until", "2026-11-21T11:00:00Z"]

    assert main(["replay", "--bus", stack.ref("EventBus"), *window, "--rule", "RecordingFunction-Telnyx"]) == 0
    out = capsys.readouterr().out
    name = out.split()[1].rstrip(":")
    replay = events.describe_replay(ReplayName=name)
    rule_arn = events.describe_rule(
        Name=f"{stack.stack.name}-RecordingFunction-Telnyx", EventBusName=stack.ref("EventBus")
    )["Arn"]
    assert replay["Destination"]["FilterArns"] == [rule_arn]
    assert replay["Destination"]["Arn"] == bus_arn
    assert "to rule" in out


# ---------------------------------------------------------------- redrive counts, parking, identity
# Against the local stack: its workers run the functions from the template, retry as Lambda
# does and write the dead letters in AWS's shapes, and `voicebus redrive --local` reads them.

ORIGINAL_TIME = "2026-11-21T10:00:00Z"
MEDIA = "MediaFunction/Telnyx"


@pytest.fixture
def running(moto_server: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalStack]:
    """The local stack, and a local.json naming it, as `make local` writes it."""
    with LocalStack(moto=moto_server, function_output=io.StringIO()) as stack:
        stack.start(dict(os.environ))
        state = {
            "EndpointUrl": moto_server.endpoint_url,
            "EventBusName": stack.ref("EventBus"),
            "CallsTableName": stack.ref("CallsTable"),
            "EventDeadLetterQueueUrl": stack.ref("EventDeadLetterQueue"),
            "FailedInvocationQueueUrl": stack.ref("FailedInvocationQueue"),
            "ParkedEventQueueUrl": stack.ref("ParkedEventQueue"),
            "RuleQueues": stack.rule_queues,
            "FunctionArns": stack.function_arns(),
        }
        (tmp_path / "local.json").write_text(json.dumps(state))
        monkeypatch.setenv(STATE_FILE_VARIABLE, str(tmp_path / "local.json"))
        yield stack


def playback_started(script: CallScript, *, occurred_at: str | None) -> dict[str, Any]:
    """call.playback.started (recorded by the media function alone), as its rule delivers it."""
    event = as_bus_event(script.event("call.playback.started", media_url="https://example.test/beep.mp3"))
    event["id"], event["time"] = str(uuid.uuid4()), ORIGINAL_TIME
    if occurred_at is None:
        del event["detail"]["data"]["occurred_at"]
    else:
        event["detail"]["data"]["occurred_at"] = occurred_at
    return event


def runs_of(stack: LocalStack, event: dict[str, Any]) -> list[Invocation]:
    data_id = event["detail"]["data"]["id"]
    return [run for run in stack.ledger.runs if run.function == "MediaFunction" and run.event_key == data_id]


def redrive_locally(stack: LocalStack, *options: str) -> int:
    status = main(["redrive", "--local", *options])
    assert stack.wait_until_idle(timeout=60)
    return status


def test_a_poison_event_is_parked_after_n_redrives_with_its_last_error_and_the_exit_code_says_so(
    running: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = running
    failed, parking = stack.ref("FailedInvocationQueue"), stack.ref("ParkedEventQueue")
    poison = playback_started(CallScript(), occurred_at="not a time")  # the models refuse it, every time
    boto3.client("sqs").send_message(QueueUrl=stack.rule_queues[MEDIA], MessageBody=json.dumps(poison))  # delivered
    assert stack.wait_until_idle(timeout=60)
    assert depth(failed) == 1
    capsys.readouterr()

    # Its first redrive, watched: it is back in the failure queue within the run.
    assert redrive_locally(stack, "--max-redrives", "2", "--wait", "30") == 1
    out = capsys.readouterr().out
    assert "redrove 1 event(s), 1 failed again" in out
    assert "(redrive 1 of 2)  failed: ValidationError" in out  # why it had failed: Lambda's on-failure record
    assert "FAILED AGAIN call.playback.started" in out
    assert "ValidationError" in out.split("FAILED AGAIN", 1)[1]  # and why it failed this time
    assert depth(failed) == 1  # left queued for the next redrive

    assert redrive_locally(stack, "--max-redrives", "2") == 1
    out = capsys.readouterr().out
    assert "1 failed again" in out
    assert "FAILED AGAIN after 1 redrive(s); redrive 2 of 2" in out

    assert redrive_locally(stack, "--max-redrives", "2") == 1
    out = capsys.readouterr().out
    assert "redrove 0 event(s), 1 parked" in out
    assert "PARKED call.playback.started" in out
    assert "after 2 redrive(s)" in out
    assert "last error: ValidationError" in out
    assert (depth(failed), depth(stack.ref("EventDeadLetterQueue"))) == (0, 0)
    [parked] = receive_all(parking)
    attributes = {name: value["StringValue"] for name, value in parked["MessageAttributes"].items()}
    assert json.loads(parked["Body"]) == poison  # the event itself, its id and time kept
    assert attributes["ERROR_CODE"] == "REDRIVES_EXHAUSTED"
    assert attributes["ERROR_MESSAGE"].startswith("ValidationError")
    assert attributes["REDRIVES"] == "2"
    assert attributes["TARGET_ARN"].startswith(stack.function_arns()["MediaFunction"])
    # The first delivery and both redrives, each with Lambda's retries, all ran the original event.
    runs = runs_of(stack, poison)
    assert len(runs) == 3 * (stack.targets[MEDIA].retries + 1)
    assert {(run.event["id"], run.event["time"]) for run in runs} == {(poison["id"], poison["time"])}
    boto3.client("sqs").change_message_visibility(
        QueueUrl=parking, ReceiptHandle=parked["ReceiptHandle"], VisibilityTimeout=0
    )

    assert redrive_locally(stack, "--parked", "--dry-run") == 0
    out = capsys.readouterr().out
    assert "would redrive 1 event(s)" in out
    assert "(redriven 2 of 3 times)" in out and "failed: ValidationError" in out

    assert redrive_locally(stack, "--parked") == 0  # after a fix: a fresh allowance, not parked at once
    assert "(redrive 1 of 3)" in capsys.readouterr().out
    assert (depth(parking), depth(failed)) == (0, 1)  # not fixed after all: back in the failure queue


@pytest.mark.parametrize("how", [["--to-bus"], []], ids=["to-bus", "to-its-function"])
def test_an_event_without_occurred_at_redriven_twice_keeps_its_time_and_one_timeline_item(
    running: LocalStack, how: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    stack = running
    call_store = CallStore(boto3.client("dynamodb"), stack.ref("CallsTable"))
    script = CallScript()
    event = playback_started(script, occurred_at=None)  # ordered and keyed by the bus event's time
    record = invocation_record(stack.targets[MEDIA], event, 3, "TimeoutError", "Task timed out after 30.00 seconds")
    failed = stack.ref("FailedInvocationQueue")

    boto3.client("sqs").send_message(QueueUrl=failed, MessageBody=json.dumps(record))
    assert redrive_locally(stack, *how) == 0
    boto3.client("sqs").send_message(QueueUrl=failed, MessageBody=json.dumps(record))  # dead-lettered again
    assert redrive_locally(stack, *how) == 1  # back after a redrive: it failed again
    assert "Task timed out" in capsys.readouterr().out

    timeline = call_store.timeline(script.call_control_id)
    assert [(entry.event_id, entry.occurred_at) for entry in timeline] == [
        (event["detail"]["data"]["id"], "2026-11-21T10:00:00.000000Z")
    ]
    assert [run.event["time"] for run in runs_of(stack, event)] == [ORIGINAL_TIME, ORIGINAL_TIME]
    assert depth(failed) == 0


def test_a_good_event_redriven_once_succeeds_and_leaves_the_queues_empty(
    running: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = running
    call_store = CallStore(boto3.client("dynamodb"), stack.ref("CallsTable"))
    script = CallScript()
    event = playback_started(script, occurred_at="2026-11-21T10:00:00.250000Z")
    send_undelivered(stack.targets[MEDIA], json.dumps(event), "Rate exceeded for the target", "Throttling")
    dead_letters = stack.ref("EventDeadLetterQueue")
    assert depth(dead_letters) == 1

    assert redrive_locally(stack, "--wait", "2") == 0  # watched: not back
    out = capsys.readouterr().out
    assert "redrove 1 event(s)\n" in out
    assert "1 redriven event(s) not back within 2 s" in out
    assert "(redrive 1 of 3)  failed: Throttling: Rate exceeded for the target" in out
    queues = (dead_letters, stack.ref("FailedInvocationQueue"), stack.ref("ParkedEventQueue"))
    assert [depth(queue) for queue in queues] == [0, 0, 0]
    [run] = runs_of(stack, event)
    assert run.error is None and (run.event["id"], run.event["time"]) == (event["id"], event["time"])
    record = call_store.get_call(script.call_control_id)
    assert record is not None and "playback" in record.model_dump(mode="json")["features"]


def test_redrive_counts_are_per_event_and_target_never_exceed_the_limit_and_survive_a_new_id_and_time(
    stack: ProvisionedStack,
) -> None:
    counts = RedriveCounts(stack.ref("CallsTable"))
    event = as_bus_event(CallScript().event("call.hangup", hangup_cause="normal_clearing"))
    put_again = {**event, "id": str(uuid.uuid4()), "time": "2026-12-01T00:00:00Z"}  # what --to-bus used to do
    reordered = {**event, "detail": json.loads(json.dumps(event["detail"], sort_keys=True))}
    assert event_digest(event) == event_digest(put_again) == event_digest(reordered)
    key = RedriveKey(event_digest(event), "voicebus-CallControlFunction")

    assert [counts.claim(key, 3, shown_event="e", error="x") for _ in range(5)] == [1, 2, 3, None, None]
    assert counts.count(RedriveKey(key.digest, "voicebus-TranscriptionFunction")) == 0  # another target
    counts.release(key)  # a hand-on that failed is not a redrive
    assert counts.count(key) == 2
    counts.forget(key)  # --parked: a fresh allowance
    assert counts.count(key) == 0
    counts.release(key)  # nothing to take back: stays at 0
    assert counts.count(key) == 0


def test_poison_ids_and_errors_are_shown_escaped_and_cut() -> None:
    event = as_bus_event(CallScript().event("call.hangup"))
    event["detail"]["data"]["id"] = "\ud800" + "x" * 2100  # a lone surrogate and 2,100 characters
    letter = DeadLetter("q", "m", "r", event, error="ValueError: bad \udfff value\n" * 100)
    shown_id = letter.describe()
    assert shown_id.isascii() and shown_id.startswith("call.hangup \\ud800xxx") and len(shown_id) < 100
    assert shown(letter.error).isascii() and len(shown(letter.error)) <= SHOWN_CHARACTERS
