"""The local stack's workers, dead letters, bus record and flow reloads, through the stack over HTTP."""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.support.calls import CallScript
from voicebus.ingress.signature import sign
from voicebus_cli.demo import post
from voicebus_cli.local.bus_record import read_record
from voicebus_cli.local.journal import Journal
from voicebus_cli.local.moto_server import MotoServer
from voicebus_cli.local.stack import LocalStack
from voicebus_cli.local.workers import Invocation
from voicebus_cli.testkey import ROOT, TestKeyPair
from voicebus_cli.webhooks import compact

pytestmark = pytest.mark.integration

ANSWERS = ["call.command.succeeded", "call.command.failed"]
LAMBDA_RECORD_KEYS = {"version", "timestamp", "requestContext", "requestPayload", "responseContext", "responsePayload"}


class ReportRefused(RuntimeError):
    """The report callback of the test: it refuses every run of the command function."""


def refuse_command_reports(run: Invocation) -> None:
    if run.function == "CommandFunction":
        raise ReportRefused(f"the report of {run.event.get('id')} was refused")


@pytest.fixture
def local_stack(moto_server: MotoServer, tmp_path: Path) -> Iterator[LocalStack]:
    stack = LocalStack(
        moto=moto_server,
        journal=Journal(),
        on_invocation=refuse_command_reports,
        bus_record_file=tmp_path / "bus.jsonl",
    )
    with stack:
        stack.start(dict(os.environ))
        yield stack


def deliver(stack: LocalStack, key: TestKeyPair, webhook: dict[str, Any]) -> int:
    body = compact(webhook)
    status, _ = post(stack.webhook_url, body, sign(body, key.signing_key, int(time.time())))
    return status


def command_request(call_control_id: str, action: str) -> dict[str, Any]:
    detail = {"call_control_id": call_control_id, "action": action, "params": {}, "request_id": str(uuid.uuid4())}
    return {"Source": "voicebus", "DetailType": "call.command", "Detail": json.dumps(detail)}


def receive_all(queue_url: str) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs")
    messages: list[dict[str, Any]] = []
    while batch := sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], VisibilityTimeout=300
    ).get("Messages", []):
        messages.extend(dict(message) for message in batch)
    return messages


def test_workers_survive_every_event_source_and_dead_letter_as_aws_does(
    local_stack: LocalStack, test_key: TestKeyPair
) -> None:
    stack = local_stack
    assert stack.telnyx_api is not None
    # The answers get a rule too (the template routes them nowhere).
    answers = stack.add_rule("TimelineFunction", "CommandAnswers", {"source": ["voicebus"], "detail-type": ANSWERS})
    script = CallScript()

    assert deliver(stack, test_key, script.event("call.initiated", state="parked", direction="incoming")) == 200
    requests = [command_request(script.call_control_id, "hangup") for _ in range(3)]
    entries: list[Any] = [{**entry, "EventBusName": stack.ref("EventBus")} for entry in requests]
    assert boto3.client("events").put_events(Entries=entries)["FailedEntryCount"] == 0
    boto3.client("sqs").send_message(QueueUrl=stack.rule_queues["MediaFunction/Telnyx"], MessageBody="not an event")
    assert stack.wait_until_idle(timeout=120)

    # Every worker is still polling, and every request was sent: none was left behind.
    assert all(worker.alive for worker in stack.workers)
    sent = [(r.action, r.status) for r in stack.telnyx_api.requests() if r.call_control_id == script.call_control_id]
    assert sorted(sent) == sorted([("answer", 200)] + [("hangup", 200)] * 3)
    # Each refused report and the unreadable message: counted, then dead-lettered on the rule's path.
    faults = stack.ledger.faults
    assert sorted(fault.stage for fault in faults) == ["event", "report", "report", "report"]
    commands = stack.targets["CommandFunction/CommandRequests"]
    media = stack.targets["MediaFunction/Telnyx"]
    rule_letters = receive_all(stack.ref("EventDeadLetterQueue"))
    assert len(rule_letters) == 4
    by_target: dict[str, list[dict[str, Any]]] = {}
    for message in rule_letters:
        attributes = message["MessageAttributes"]
        assert {name: value["DataType"] for name, value in attributes.items()} == {
            "RULE_ARN": "String",
            "TARGET_ARN": "String",
            "ERROR_CODE": "String",
            "ERROR_MESSAGE": "String",
        }
        by_target.setdefault(attributes["RULE_ARN"]["StringValue"], []).append(message)
    assert len(by_target[commands.rule_arn]) == 3
    for message in by_target[commands.rule_arn]:
        assert message["MessageAttributes"]["TARGET_ARN"]["StringValue"] == commands.target_arn
        assert "ReportRefused" in message["MessageAttributes"]["ERROR_MESSAGE"]["StringValue"]
        assert json.loads(message["Body"])["detail-type"] == "call.command"
    [unreadable] = by_target[media.rule_arn]
    assert unreadable["Body"] == "not an event"
    assert commands.rule_arn.startswith("arn:aws:events:us-east-1:123456789012:rule/")
    assert commands.target_arn == f"{stack.function_arns()['CommandFunction']}:live"  # AutoPublishAlias

    # Every answer reached the function behind the answers' rule (which records Telnyx events only).
    request_ids = {json.loads(entry["Detail"])["request_id"] for entry in requests}
    heard = [run.event for run in stack.ledger.runs if run.function == "TimelineFunction"]
    assert {event["detail"]["request_id"] for event in heard} == request_ids
    assert {event["detail-type"] for event in heard} == {"call.command.succeeded"}
    assert answers.key == "TimelineFunction/CommandAnswers"

    # The bus record holds every put, in EventBridge's delivered shape.
    recorded = read_record(stack.bus_record_file or Path("missing"))
    kinds = sorted(event["detail-type"] for event in recorded)
    assert kinds == sorted(["call.initiated"] + ["call.command"] * 3 + ["call.command.succeeded"] * 3)
    for event in recorded:
        assert {"id", "time", "source", "detail-type", "detail", "account", "region"} <= set(event)
    assert {event["detail"]["request_id"] for event in recorded if event["detail-type"] in ANSWERS} == request_ids


def test_a_function_failing_every_attempt_leaves_lambdas_record(local_stack: LocalStack, test_key: TestKeyPair) -> None:
    stack = local_stack
    boto3.client("dynamodb").delete_table(TableName=stack.ref("CallsTable"))  # every attempt now fails
    webhook = CallScript().event("call.answered")
    assert deliver(stack, test_key, webhook) == 200
    assert stack.wait_until_idle(timeout=60)

    target = stack.targets["CallControlFunction/Telnyx"]
    [message] = receive_all(stack.ref("FailedInvocationQueue"))
    record = json.loads(message["Body"])
    assert set(record) == LAMBDA_RECORD_KEYS
    assert record["version"] == "1.0"
    datetime.fromisoformat(record["timestamp"])
    context = record["requestContext"]
    assert set(context) == {"requestId", "functionArn", "condition", "approximateInvokeCount"}
    uuid.UUID(context["requestId"])
    assert (
        context["functionArn"]
        == f"arn:aws:lambda:us-east-1:123456789012:function:{stack.name}-CallControlFunction:$LATEST"
    )
    assert context["functionArn"] == f"{stack.function_arns()['CallControlFunction']}:$LATEST"
    assert (context["condition"], context["approximateInvokeCount"]) == ("RetriesExhausted", target.retries + 1)
    assert record["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"}
    assert record["responsePayload"]["errorType"] == "ResourceNotFoundException"
    assert record["responsePayload"]["errorMessage"]
    assert record["requestPayload"]["detail"]["data"]["id"] == webhook["data"]["id"]
    assert [letter.failed_invocation for letter in stack.ledger.dead_letters] == [True]


def _gather_payload(stack: LocalStack, call_control_id: str) -> str:
    assert stack.telnyx_api is not None
    [menu] = [
        r
        for r in stack.telnyx_api.requests()
        if r.call_control_id == call_control_id and r.action == "gather_using_speak"
    ]
    return str(menu.body["payload"])


def _call(stack: LocalStack, key: TestKeyPair) -> str:
    """An incoming call, answered: the main flow answers, then speaks its menu."""
    script = CallScript()
    parties: dict[str, Any] = {"from": "+15550001111", "to": "+15550002222", "direction": "incoming"}
    assert deliver(stack, key, script.event("call.initiated", state="parked", **parties)) == 200
    assert stack.wait_until_idle(timeout=60, quiet_for=0.5)
    assert stack.telnyx_api is not None
    [answer] = [r for r in stack.telnyx_api.requests() if r.call_control_id == script.call_control_id]
    echoed: dict[str, Any] = {"client_state": answer.body["client_state"]}  # Telnyx echoes the command's client_state
    assert deliver(stack, key, script.event("call.answered", **parties, **echoed)) == 200
    assert stack.wait_until_idle(timeout=60, quiet_for=0.5)
    return script.call_control_id


def save(path: Path, text: str) -> None:
    """As an editor saves: the new file replaces the old at once (the watcher never sees half a file)."""
    draft = path.parent.parent / f"{path.name}.draft"
    draft.write_text(text)
    os.replace(draft, path)


def test_flow_files_reload_without_a_restart(moto_server: MotoServer, test_key: TestKeyPair, tmp_path: Path) -> None:
    code = tmp_path / "call_control"
    shutil.copytree(ROOT / "functions" / "call_control", code, ignore=shutil.ignore_patterns("__pycache__"))
    main = code / "flows" / "main.yaml"
    journal = Journal()
    with LocalStack(moto=moto_server, journal=journal, code_dirs={"CallControlFunction": code}) as stack:
        stack.start(dict(os.environ))
        original = _gather_payload(stack, _call(stack, test_key))
        assert original.startswith("Thank you for calling.")

        save(main, main.read_text().replace("Thank you for calling.", "Reloaded, thank you for calling."))
        reloaded = _gather_payload(stack, _call(stack, test_key))
        assert reloaded.startswith("Reloaded, thank you for calling."), [(e.kind, e.text) for e in journal.entries]
        assert any(entry.kind == "flows reloaded" for entry in journal.entries)

        save(main, "name: main\nentry: answer\nsteps: [\n")
        # Still running, on the last good flows; the broken file is named in the timeline.
        assert _gather_payload(stack, _call(stack, test_key)).startswith("Reloaded, thank you for calling.")
        invalid = [entry.text for entry in journal.entries if entry.kind == "flows INVALID"]
        assert len(invalid) == 1
        assert "main.yaml" in invalid[0]
        assert [run.error for run in journal.invocations if run.error] == []
        assert all(worker.alive for worker in stack.workers)
