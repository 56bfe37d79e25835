"""`voicebus redrive` and `voicebus call` against moto server, as an operator runs them."""

from __future__ import annotations

import json

import boto3
import pytest

from tests.support.calls import CallScript, as_bus_event
from tests.support.routing import targets
from voicebus_cli.__main__ import main
from voicebus_cli.local.provision import ProvisionedStack
from voicebus_cli.operations import original_event

pytestmark = pytest.mark.integration


def test_dead_letters_of_both_kinds_unwrap_to_the_event() -> None:
    event = as_bus_event(CallScript().event("call.answered"))
    assert original_event(json.dumps(event)) == event
    assert original_event(json.dumps({"requestPayload": event, "responseContext": {}})) == event
    assert original_event("not json") is None
    assert original_event(json.dumps({"requestPayload": {"x": 1}})) is None


def test_redrive_dry_run_changes_nothing_then_redrive_moves_everything(
    stack: ProvisionedStack, capsys: pytest.CaptureFixture[str]
) -> None:
    sqs = boto3.client("sqs")
    queue = stack.ref("FailedInvocationQueue")
    events = [as_bus_event(CallScript().event(kind)) for kind in ("call.answered", "call.hangup", "streaming.failed")]
    for event in events:
        sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"requestPayload": event}))
    from voicebus_cli.local.provision import route_to_queue

    tap = route_to_queue(stack.ref("EventBus"), f"{stack.stack.name}-redrive", {"source": ["telnyx"]})
    where = ["--bus", stack.ref("EventBus"), "--queue-url", queue]

    assert main(["redrive", *where, "--dry-run"]) == 0
    assert "would redrive 3 event(s)" in capsys.readouterr().out
    depth = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessages"])
    assert depth["Attributes"]["ApproximateNumberOfMessages"] == "3"
    assert sqs.receive_message(QueueUrl=tap).get("Messages", []) == []

    assert main(["redrive", *where]) == 0
    assert "redrove 3 event(s)" in capsys.readouterr().out
    delivered = [json.loads(m["Body"]) for m in sqs.receive_message(QueueUrl=tap, MaxNumberOfMessages=10)["Messages"]]
    assert sorted(e["detail"]["data"]["id"] for e in delivered) == sorted(e["detail"]["data"]["id"] for e in events)
    assert {e["detail-type"] for e in delivered} == {"call.answered", "call.hangup", "streaming.failed"}
    assert sqs.receive_message(QueueUrl=queue).get("Messages", []) == []


def test_call_prints_state_and_timeline(
    stack: ProvisionedStack, consumers: dict[str, object], capsys: pytest.CaptureFixture[str]
) -> None:
    script = CallScript()
    for webhook in script.basic_call():
        event = as_bus_event(webhook)
        for function in sorted(targets(event)):
            consumers[function].invoke(event)  # type: ignore[attr-defined]

    capsys.readouterr()  # the functions' own logs
    assert main(["call", script.call_control_id, "--table", stack.ref("CallsTable")]) == 0
    out = capsys.readouterr().out
    state = json.loads(out.split("\ntimeline:")[0])
    assert state["status"]["value"] == "hung_up"
    timeline = out.split("\ntimeline:")[1].strip().splitlines()
    assert [line.split()[1] for line in timeline] == [w["data"]["event_type"] for w in script.webhooks]

    assert main(["call", "v3:nobody", "--table", stack.ref("CallsTable")]) == 1
    assert main(["call", "v3:nobody"]) == 2  # no table named: a clear error, not a traceback
    assert "needs the calls table" in capsys.readouterr().err


def test_both_commands_find_a_deployed_stack_by_its_outputs(
    stack: ProvisionedStack, consumers: dict[str, object], capsys: pytest.CaptureFixture[str]
) -> None:
    """`--stack NAME` reads the names from CloudFormation's outputs, as against AWS."""
    script = CallScript()
    event = as_bus_event(script.event("call.answered"))
    consumers["CallControlFunction"].invoke(event)  # type: ignore[attr-defined]
    sqs = boto3.client("sqs")
    sqs.send_message(QueueUrl=stack.ref("EventDeadLetterQueue"), MessageBody=json.dumps(event))
    outputs = {
        "EventBusName": stack.ref("EventBus"),
        "CallsTableName": stack.ref("CallsTable"),
        "EventDeadLetterQueueUrl": stack.ref("EventDeadLetterQueue"),
        "FailedInvocationQueueUrl": stack.ref("FailedInvocationQueue"),
    }
    template = {
        "Resources": {"Marker": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {name: {"Value": value} for name, value in outputs.items()},
    }
    name = f"{stack.stack.name}-deployed"
    boto3.client("cloudformation").create_stack(StackName=name, TemplateBody=json.dumps(template))
    capsys.readouterr()

    assert main(["call", script.call_control_id, "--stack", name]) == 0
    assert json.loads(capsys.readouterr().out.split("\ntimeline:")[0])["status"]["value"] == "answered"
    assert main(["redrive", "--stack", name, "--dry-run"]) == 0
    assert "would redrive 1 event(s)" in capsys.readouterr().out
