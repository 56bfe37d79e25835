"""`voicebus redrive` and `voicebus replay` against moto server, with dead letters and a bus record
in the formats the local stack writes (and AWS: EventBridge's DLQ attributes, Lambda's on-failure record)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.support.calls import CallScript, as_bus_event
from voicebus_cli.__main__ import main
from voicebus_cli.local.moto_server import MotoServer
from voicebus_cli.local.provision import ProvisionedStack, route_to_queue
from voicebus_cli.operations import STATE_FILE_VARIABLE

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
