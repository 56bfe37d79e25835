"""call.command requests from the user's own systems: validated, sent through the SDK, answered on the bus."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.bus import BusTap, command_request
from tests.support.routing import targets
from voicebus.calls.records import Feature
from voicebus.calls.store import CallStore
from voicebus.commands.ids import command_id
from voicebus_cli.local.provision import ProvisionedStack
from voicebus_cli.local.telnyx_api import Fault, TelnyxApiStandIn
from voicebus_cli.testkey import ROOT

pytestmark = pytest.mark.integration

COMMAND_FILES = sorted((ROOT / "events" / "commands").glob("*.json"))


@pytest.fixture
def answers(stack: ProvisionedStack) -> BusTap:
    """What the command function puts back on the bus."""
    return BusTap.on(stack.ref("EventBus"), f"{stack.stack.name}-answers", {"source": ["voicebus"]})


def request(action: str, params: dict[str, Any] | None = None, **detail: Any) -> dict[str, Any]:
    return command_request("v3:crm-call", action, params, **detail)


def test_only_the_command_function_hears_command_requests() -> None:
    assert targets(request("hangup")) == {"CommandFunction"}
    answer = {**request("hangup"), "detail-type": "call.command.succeeded"}
    assert targets(answer) == set()


@pytest.mark.parametrize("path", COMMAND_FILES, ids=[path.name for path in COMMAND_FILES])
def test_sample_requests_are_sent_and_answered(
    path: Path, consumers: dict[str, Any], telnyx_api: TelnyxApiStandIn, answers: BusTap
) -> None:
    event = json.loads(path.read_text())
    detail = event["detail"]

    result = consumers["CommandFunction"].invoke(event)

    assert result["outcome"] == "call.command.succeeded"
    [sent] = telnyx_api.take_requests()
    assert (sent.action, sent.call_control_id) == (detail["action"], detail["call_control_id"])
    for name, value in detail["params"].items():
        assert sent.body[name] == value
    [answer] = answers.drain()
    assert answer["detail-type"] == "call.command.succeeded"
    assert answer["detail"]["request_id"] == detail["request_id"]


def test_client_state_and_command_id_are_set(
    consumers: dict[str, Any], telnyx_api: TelnyxApiStandIn, answers: BusTap
) -> None:
    event = request("record_start", {"format": "mp3", "channels": "single"}, client_state={"by": "crm"})

    consumers["CommandFunction"].invoke(event)

    [sent] = telnyx_api.take_requests()
    assert sent.command_id == command_id(event["id"], "record_start")
    assert sent.client_state == {"by": "crm"}
    assert answers.drain()[0]["detail"]["command_id"] == sent.command_id


@pytest.mark.parametrize(
    ("action", "params", "fragment"),
    [
        ("record_start", {"format": "ogg", "channels": "single"}, "format"),
        ("switch_supervisor_role", {"role": "boss"}, "role"),
        ("teleport", {}, "teleport"),
        ("speak", {"voice": "female"}, "payload"),
    ],
)
def test_invalid_requests_are_answered_failed_and_never_sent(
    consumers: dict[str, Any],
    telnyx_api: TelnyxApiStandIn,
    answers: BusTap,
    action: str,
    params: dict[str, Any],
    fragment: str,
) -> None:
    result = consumers["CommandFunction"].invoke(request(action, params, request_id="r-1"))

    assert result["outcome"] == "call.command.failed"
    assert telnyx_api.take_requests() == []
    [answer] = answers.drain()
    assert answer["detail-type"] == "call.command.failed"
    assert fragment in answer["detail"]["reason"]


def test_a_call_that_has_ended_is_answered_failed_with_telnyx_reason(
    consumers: dict[str, Any], telnyx_api: TelnyxApiStandIn, answers: BusTap
) -> None:
    telnyx_api.fail_next(Fault.call_ended())

    consumers["CommandFunction"].invoke(request("hangup"))

    [answer] = answers.drain()
    assert answer["detail-type"] == "call.command.failed"
    assert "90018" in answer["detail"]["reason"]
    assert len(telnyx_api.take_requests()) == 1  # not retried


def test_telnyx_down_fails_the_invocation_for_eventbridge_to_retry(
    consumers: dict[str, Any], telnyx_api: TelnyxApiStandIn, answers: BusTap
) -> None:
    from voicebus.commands.sender import CommandRetryableError

    telnyx_api.fail_next(*[Fault.server_error(503)] * 10)
    with pytest.raises(CommandRetryableError):
        consumers["CommandFunction"].invoke(request("hangup"))
    assert answers.drain() == []


def test_features_without_webhooks_are_recorded_when_accepted(
    consumers: dict[str, Any], telnyx_api: TelnyxApiStandIn, call_store: CallStore
) -> None:
    consumers["CommandFunction"].invoke(request("suppression_start", {"direction": "both"}))
    consumers["CommandFunction"].invoke(request("switch_supervisor_role", {"role": "barge"}))

    record = call_store.get_call("v3:crm-call")
    assert record is not None
    assert record.features[Feature.NOISE_SUPPRESSION].model_extra == {"state": "active", "direction": "both"}
    assert record.features[Feature.SUPERVISOR_ROLE].model_extra == {"state": "barge"}


def test_a_redelivered_request_is_sent_once(consumers: dict[str, Any], telnyx_api: TelnyxApiStandIn) -> None:
    event = request("hangup")
    first = consumers["CommandFunction"].invoke(event)
    second = consumers["CommandFunction"].invoke(event)
    assert first == second
    assert len(telnyx_api.take_requests()) == 1


def malformed(detail: dict[str, Any]) -> dict[str, Any]:
    event = request("hangup")
    event["detail"] = detail
    return event


MALFORMED = {
    "params not an object": (malformed({"call_control_id": "v3:crm-call", "action": "hangup", "params": []}), "params"),
    "params a string": (malformed({"call_control_id": "v3:crm-call", "action": "hangup", "params": "x"}), "params"),
    "no call id": (malformed({"action": "hangup", "params": {}}), "call_control_id"),
    "an empty call id": (malformed({"call_control_id": "", "action": "hangup"}), "call_control_id"),
    "a numeric call id": (malformed({"call_control_id": 42, "action": "hangup"}), "call_control_id"),
    "a call id like ..": (malformed({"call_control_id": "..", "action": "hangup"}), "call_control_id"),
    "a call id with a newline": (malformed({"call_control_id": "v3:a\nb", "action": "hangup"}), "call_control_id"),
    "a 2,100-character call id": (malformed({"call_control_id": "c" * 2100, "action": "hangup"}), "call_control_id"),
    "no action": (malformed({"call_control_id": "v3:crm-call"}), "action"),
    "a numeric request_id": (
        malformed({"call_control_id": "v3:crm-call", "action": "hangup", "request_id": 7}),
        "request_id",
    ),
    "an oversized client_state": (request("hangup", client_state={"blob": "x" * 5000}), "client_state"),
    "a client_state Telnyx would echo and the call could not store": (
        request("hangup", client_state={"n": 10**40}),
        "client_state",
    ),
    "a client_state for a command that carries none": (
        request("client_state_update", {"client_state": "aGk="}, client_state={"by": "crm"}),
        "client_state",
    ),
    "params nested past DynamoDB's limit": (
        request("speak", {"payload": "hi", "x": json.loads("[" * 40 + "]" * 40)}),
        "nests",
    ),
    "a lone surrogate in params": (request("speak", {"payload": "\ud800", "voice": "female"}), "surrogate"),
}


@pytest.mark.parametrize(("event", "fragment"), MALFORMED.values(), ids=MALFORMED.keys())
def test_every_malformed_request_is_answered_failed_with_its_reason(
    consumers: dict[str, Any], telnyx_api: TelnyxApiStandIn, answers: BusTap, event: dict[str, Any], fragment: str
) -> None:
    result = consumers["CommandFunction"].invoke(event)  # raising would send it, unanswered, to the failure queue

    assert result["outcome"] == "call.command.failed"
    assert telnyx_api.take_requests() == []
    [answer] = answers.drain()
    assert answer["detail-type"] == "call.command.failed"
    assert fragment in answer["detail"]["reason"]
    assert isinstance(answer["detail"]["call_control_id"], str) and isinstance(answer["detail"]["action"], str)
    assert answer["detail"]["request_id"] is None or isinstance(answer["detail"]["request_id"], str)
