"""`voicebus call` and the command log behind it, against moto server, as an operator runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.support.bus import command_request
from tests.support.calls import CallScript, as_bus_event
from tests.support.routing import targets
from voicebus.calls.commands_log import REDACTED, CommandEntry, CommandOutcomeKind, CommandSource
from voicebus.calls.store import CallStore
from voicebus.commands.ids import command_id
from voicebus_cli.__main__ import main
from voicebus_cli.local.moto_server import MotoServer
from voicebus_cli.local.provision import ProvisionedStack
from voicebus_cli.local.telnyx_api import TelnyxApiStandIn
from voicebus_cli.operations import STATE_FILE_VARIABLE
from voicebus_cli.redrive import original_event
from voicebus_cli.testkey import ROOT

pytestmark = pytest.mark.integration

VOICEBUS = Path(sys.executable).with_name("voicebus")


REQUESTED_AT = "2026-11-21T10:00:05Z"  # after the call's own events


def play(script: CallScript, consumers: dict[str, Any], webhooks: list[dict[str, Any]]) -> None:
    for webhook in webhooks:
        event = as_bus_event(webhook)
        for function in sorted(targets(event)):
            consumers[function].invoke(event)


def test_dead_letters_of_both_kinds_unwrap_to_the_event() -> None:
    event = as_bus_event(CallScript().event("call.answered"))
    assert original_event(json.dumps(event)) == event
    assert original_event(json.dumps({"requestPayload": event, "responseContext": {}})) == event
    assert original_event("not json") is None
    assert original_event(json.dumps({"requestPayload": {"x": 1}})) is None


def test_call_json_is_one_document_with_flow_commands_archive_and_timeline(
    stack: ProvisionedStack, consumers: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    script = CallScript()
    webhooks = script.basic_call()
    play(script, consumers, webhooks)
    request = command_request(
        script.call_control_id,
        "transfer",
        {"to": "+15550003333", "sip_auth_username": "u", "sip_auth_password": "pw1"},
        at=REQUESTED_AT,
        request_id="crm-1",
    )
    consumers["CommandFunction"].invoke(request)
    capsys.readouterr()  # the functions' own logs

    assert main(["call", script.call_control_id, "--table", stack.ref("CallsTable"), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)  # one JSON document, nothing else on stdout

    assert set(document) == {"call", "flow", "lanes", "commands", "archive", "timeline"}
    assert document["call"]["status"]["value"] == "hung_up"
    assert (document["call"]["from_number"], document["call"]["to_number"]) == ("+15550001111", "+15550002222")
    # call.answered echoes no client_state here, so the flow waits at its answer step until the hang-up.
    assert (document["flow"]["flow"], document["flow"]["step"], document["flow"]["status"]) == (
        "main",
        "answer",
        "ended",
    )
    initiated = webhooks[0]["data"]["id"]
    sent = [(c["source"], c["action"], c.get("step"), c["outcome"], c.get("command_id")) for c in document["commands"]]
    assert sent == [
        ("flow", "answer", "answer", "accepted", command_id(initiated, "answer", "answer")),
        ("request", "transfer", None, "accepted", command_id(request["id"], "transfer")),
    ]
    assert document["commands"][1]["params"]["sip_auth_password"] == REDACTED
    assert document["commands"][1]["params"]["to"] == "+15550003333"
    [recording] = document["archive"]["recordings"]
    assert recording["recording_id"] == "rec-1"
    assert [entry["event_type"] for entry in document["timeline"]] == [w["data"]["event_type"] for w in webhooks]

    assert main(["call", script.call_control_id, "--table", stack.ref("CallsTable")]) == 0
    text = capsys.readouterr().out
    assert "main/answer" in text and "transfer" in text and "pw1" not in text and "rec-1" in text


def test_a_redelivered_command_rewrites_its_item_and_secrets_never_reach_the_table(
    stack: ProvisionedStack, call_store: CallStore, consumers: dict[str, Any], telnyx_api: TelnyxApiStandIn
) -> None:
    request = command_request(
        "v3:crm-call",
        "transfer",
        {"to": "+15550003333", "sip_auth_password": "hunter2-secret"},
        at=REQUESTED_AT,
        request_id="crm-1",
    )
    consumers["CommandFunction"].invoke(request)
    assert telnyx_api.take_requests()[0].body["sip_auth_password"] == "hunter2-secret"  # sent as given
    entry = CommandEntry(
        action="streaming_start",
        trigger_id="webhook-1",
        occurred_at="2026-11-21T10:00:01.000000Z",
        outcome=CommandOutcomeKind.REJECTED,
        source=CommandSource.FLOW,
        reason="90018 Call has already ended",
        params={"stream_url": "wss://x", "stream_auth_token": "s3cr3t-t0k3n", "nested": [{"client_secret": "s"}]},
    )
    call_store.record_command("v3:crm-call", entry)
    call_store.record_command("v3:crm-call", entry)  # a redelivery

    commands = call_store.commands("v3:crm-call")
    assert [c["action"] for c in commands] == ["streaming_start", "transfer"]  # in the order of their events
    assert commands[0]["params"] == {
        "stream_url": "wss://x",
        "stream_auth_token": REDACTED,
        "nested": [{"client_secret": REDACTED}],
    }
    assert commands[0]["reason"] == "90018 Call has already ended"
    raw = json.dumps(boto3.client("dynamodb").scan(TableName=stack.ref("CallsTable"))["Items"])
    assert "hunter2-secret" not in raw and "s3cr3t-t0k3n" not in raw


def test_call_errors_are_one_line_with_the_right_exit_code(
    stack: ProvisionedStack, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["call", "v3:nobody", "--table", stack.ref("CallsTable")]) == 1
    assert capsys.readouterr().err.strip() == "voicebus call: no call v3:nobody in the calls table"
    assert main(["call", "v3:nobody"]) == 2  # no table named
    assert "needs the calls table" in capsys.readouterr().err
    assert main(["call", "v3:nobody", "--table", "no-such-table"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("voicebus call: AWS refused GetItem: ResourceNotFoundException") and err.count("\n") == 1


def test_local_without_a_running_stack_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "local.json"
    monkeypatch.setenv(STATE_FILE_VARIABLE, str(state))
    assert main(["call", "v3:x", "--local"]) == 1
    assert "no local stack is running" in capsys.readouterr().err

    state.write_text(json.dumps({"EndpointUrl": "http://127.0.0.1:9", "CallsTableName": "t"}))  # stale
    assert main(["redrive", "--local", "--dry-run"]) == 1
    err = capsys.readouterr().err
    assert "the local stack is not running" in err and "http://127.0.0.1:9" in err and err.count("\n") == 1


def test_both_commands_find_a_deployed_stack_by_its_outputs(
    stack: ProvisionedStack, consumers: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """`--stack NAME` reads the names from CloudFormation's outputs, as against AWS."""
    script = CallScript()
    event = as_bus_event(script.event("call.answered"))
    consumers["CallControlFunction"].invoke(event)
    boto3.client("sqs").send_message(QueueUrl=stack.ref("EventDeadLetterQueue"), MessageBody=json.dumps(event))
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

    assert main(["call", script.call_control_id, "--stack", name, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["call"]["status"]["value"] == "answered"
    assert main(["redrive", "--stack", name, "--dry-run"]) == 0
    assert "would redrive 1 event(s)" in capsys.readouterr().out
    assert main(["call", "v3:x", "--stack", f"{name}-missing"]) == 1
    assert "AWS refused DescribeStacks" in capsys.readouterr().err


def test_the_installed_script_exits_quietly_into_a_closed_pipe(
    stack: ProvisionedStack, consumers: dict[str, Any], moto_server: MotoServer
) -> None:
    script = CallScript()
    play(script, consumers, script.basic_call())
    assert VOICEBUS.exists(), "uv sync installs the console script"
    env = {**os.environ, **moto_server.environment()}
    command = f"{VOICEBUS} call {script.call_control_id} --table {stack.ref('CallsTable')} | head -1"
    finished = subprocess.run(["bash", "-c", command], env=env, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert finished.stdout == f"call {script.call_control_id}\n"
    assert finished.stderr == ""
