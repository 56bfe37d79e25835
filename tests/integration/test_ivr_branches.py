"""Failure branches, step time limits, outside commands, racing events and `invoke`, through the real functions.

moto (DynamoDB, EventBridge Scheduler) over HTTP, the Telnyx stand-in for commands, and a
local server speaking Lambda's Invoke API for `invoke` steps (real boto3 over HTTP).
"""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import boto3
import pytest
from aws_lambda_powertools.utilities.typing import LambdaContext

from tests.integration.test_ivr import (
    FUNCTION,
    MAIN_NUMBER,
    PhoneCall,
    assert_sent,
    at,
    flow_lane,
    position_in,
    sent_by,
)
from tests.support.bus import command_request
from tests.support.calls import CallScript, as_bus_event
from tests.support.lambda_api import lambda_api
from voicebus.calls.client_state import decode
from voicebus.calls.events import TelnyxBusEvent
from voicebus.calls.recorder import RecordedEvent
from voicebus.calls.store import CallStore
from voicebus.commands.sender import CommandSender
from voicebus.flows.engine import FlowEngine
from voicebus.flows.envelope import unwrap
from voicebus.flows.invoke import LambdaInvoker
from voicebus.flows.loader import load_flows
from voicebus.flows.runner import FlowRunner
from voicebus.flows.store import FlowStateStore
from voicebus.flows.timeouts import fire_due
from voicebus_cli.local.functions import LoadedFunction, LocalContext, environment
from voicebus_cli.local.provision import ProvisionedStack
from voicebus_cli.local.telnyx_api import TelnyxApiStandIn

pytestmark = pytest.mark.integration

VOICE = "AWS.Polly.Joanna-Neural"
SALES_UNAVAILABLE = "Sorry, no one in sales can take your call right now. Please call again later. Goodbye."


@pytest.fixture
def env(stack: ProvisionedStack) -> dict[str, str]:
    return stack.functions[FUNCTION].environment


def schedules(stack: ProvisionedStack) -> list[str]:
    group = stack.ref("FlowTimeoutSchedules")
    return sorted(entry["Name"] for entry in boto3.client("scheduler").list_schedules(GroupName=group)["Schedules"])


def fire_due_checks(stack: ProvisionedStack, function: LoadedFunction) -> list[dict[str, Any]]:
    """Run the due step-timeout schedules, as Scheduler would an hour from now; the function's results."""
    results: list[dict[str, Any]] = []

    def deliver(target_arn: str, event: dict[str, Any]) -> None:
        assert target_arn.endswith(f":function:{FUNCTION}")
        results.append(function.invoke(event))

    later = datetime.now(UTC) + timedelta(hours=1)
    fire_due(boto3.client("scheduler"), stack.ref("FlowTimeoutSchedules"), deliver, now=later)
    return results


# ---------------------------------------------------------------------------
# Failure branches of the main flow


def test_a_transfer_whose_far_leg_hangs_up_apologises_and_hangs_up(
    consumers: dict[str, LoadedFunction], telnyx_api: TelnyxApiStandIn, stack: ProvisionedStack
) -> None:
    call = PhoneCall(consumers, telnyx_api)
    call.answered_at_the_menu()
    _, [transfer] = call.event("call.gather.ended", status="valid", digits="1")
    far_leg_state = transfer.body["target_leg_client_state"]
    carried = unwrap(far_leg_state)
    assert (carried.call, carried.position is not None and carried.position.step) == (call.call_control_id, "sales")

    far_leg = CallScript()  # the leg the transfer dialled: its own call, carrying the caller's flow position
    outgoing = far_leg.event("call.initiated", direction="outgoing", client_state=far_leg_state)
    assert call.deliver(outgoing) == []
    busy = far_leg.event("call.hangup", hangup_cause="user_busy", client_state=far_leg_state)
    requests = call.deliver(busy)

    assert_sent(
        requests, sent_by(busy, "sales_unavailable", "speak", at("sales_unavailable", 1, 4), payload=SALES_UNAVAILABLE)
    )
    assert {request.call_control_id for request in requests} == {call.call_control_id}
    spoken, requests = call.event("call.speak.ended", status="completed")
    assert_sent(requests, sent_by(spoken, "hangup", "hangup", at("hangup", 1, 5)))


def test_a_bridged_transfer_is_handed_over(
    consumers: dict[str, LoadedFunction], telnyx_api: TelnyxApiStandIn, stack: ProvisionedStack
) -> None:
    call = PhoneCall(consumers, telnyx_api)
    call.answered_at_the_menu()
    _, [transfer] = call.event("call.gather.ended", status="valid", digits="1")
    assert call.event("call.bridged")[1] == []
    assert position_in(flow_lane(stack, call.call_control_id)) == ("main", "sales", 1, 3, "handed_over")
    far_leg = CallScript()
    hangup = far_leg.event("call.hangup", client_state=transfer.body["target_leg_client_state"])
    assert call.deliver(hangup) == []  # after the bridge, the far leg's hang-up is no failure


def test_a_recording_error_takes_the_voicemail_on_error(
    consumers: dict[str, LoadedFunction], telnyx_api: TelnyxApiStandIn, stack: ProvisionedStack
) -> None:
    call = PhoneCall(consumers, telnyx_api)
    call.answered_at_the_menu()
    call.event("call.gather.ended", status="valid", digits="2")
    call.event("call.speak.ended", status="completed")
    error = call.webhook("call.recording.error", reason="Internal server error")
    del error["data"]["payload"]["call_control_id"]  # as the spec's example: only the envelope names the call

    requests = call.deliver(error)

    payload = "Sorry, we could not record your message. Please call again later. Goodbye."
    assert_sent(requests, sent_by(error, "voicemail_failed", "speak", at("voicemail_failed", 1, 5), payload=payload))


def test_opening_hours_that_fail_to_play_are_spoken_instead(
    consumers: dict[str, LoadedFunction], telnyx_api: TelnyxApiStandIn
) -> None:
    call = PhoneCall(consumers, telnyx_api)
    call.answered_at_the_menu()
    call.event("call.gather.ended", status="valid", digits="3")
    failed, requests = call.event("call.playback.ended", status="file_not_found")
    assert_sent(requests, sent_by(failed, "opening_hours_spoken", "speak", at("opening_hours_spoken", 1, 4)))


def test_a_menu_gather_ended_by_the_caller_hanging_up_ends_the_flow(
    consumers: dict[str, LoadedFunction], telnyx_api: TelnyxApiStandIn, stack: ProvisionedStack
) -> None:
    call = PhoneCall(consumers, telnyx_api)
    call.answered_at_the_menu()
    _, requests = call.event("call.gather.ended", status="call_hangup")
    assert requests == []
    assert position_in(flow_lane(stack, call.call_control_id)) == ("main", "menu", 1, 2, "ended")
    assert schedules(stack) == []  # its time limit went with it


# ---------------------------------------------------------------------------
# Step time limits: one schedule per deadline


def test_a_menu_whose_gather_never_ends_is_asked_again_when_its_schedule_fires(
    consumers: dict[str, LoadedFunction], telnyx_api: TelnyxApiStandIn, stack: ProvisionedStack
) -> None:
    call = PhoneCall(consumers, telnyx_api)
    call.incoming()
    assert len(schedules(stack)) == 1  # the answer's
    call.event("call.answered")
    [menu_check] = schedules(stack)  # the answer's was deleted when the flow moved on
    lane = flow_lane(stack, call.call_control_id)
    assert lane is not None and lane["deadline"] == "2026-11-21T10:02:00Z"  # answered at 10:00:00.500 + 120 s

    scheduler = boto3.client("scheduler")
    group = stack.ref("FlowTimeoutSchedules")
    check_event = json.loads(scheduler.get_schedule(Name=menu_check, GroupName=group)["Target"]["Input"])

    not_yet = fire_due(scheduler, group, lambda arn, event: pytest.fail("fired early"), now=datetime.now(UTC))
    assert not_yet == []  # due at the deadline (at the earliest a minute from when it was scheduled)
    [result] = fire_due_checks(stack, consumers[FUNCTION])

    assert result["flow"]["decision"] == "advanced"
    assert "no call.gather.ended before the step's time limit" in result["flow"]["reason"]
    [retry] = telnyx_api.take_requests()
    assert (retry.action, retry.client_state["voicebus"]) == ("gather_using_speak", at("menu", 2, 3))
    [next_check] = schedules(stack)
    assert next_check != menu_check  # the fired one is gone; the retry has its own

    call.client_state = retry.body["client_state"]  # Telnyx echoes the retry's
    _, requests = call.event("call.gather.ended", status="valid", digits="1")
    assert [request.action for request in requests] == ["transfer"]
    check_event["detail"]["data"]["id"] = str(uuid.uuid4())  # the menu's check again, late (past idempotency)
    late = consumers[FUNCTION].invoke(check_event)
    assert (late["flow"]["decision"], late["flow"]["reason"][:5]) == ("ignored", "stale")
    assert telnyx_api.take_requests() == []


def test_moving_on_deletes_the_steps_schedule(
    consumers: dict[str, LoadedFunction], telnyx_api: TelnyxApiStandIn, stack: ProvisionedStack
) -> None:
    call = PhoneCall(consumers, telnyx_api)
    call.answered_at_the_menu()
    [menu_check] = schedules(stack)
    call.event("call.gather.ended", status="valid", digits="1")
    [transfer_check] = schedules(stack)
    assert transfer_check != menu_check
    call.event("call.hangup", hangup_cause="normal_clearing")
    assert schedules(stack) == []


# ---------------------------------------------------------------------------
# Outside commands and flows coexist


def test_a_call_command_with_its_own_client_state_keeps_the_flow_running(
    consumers: dict[str, LoadedFunction], telnyx_api: TelnyxApiStandIn, stack: ProvisionedStack, env: dict[str, str]
) -> None:
    call = PhoneCall(consumers, telnyx_api)
    call.answered_at_the_menu()
    request = command_request(
        call.call_control_id,
        "record_start",
        {"format": "mp3", "channels": "dual"},
        at="2026-11-21T10:00:01Z",
        client_state={"requested_by": "crm"},
        request_id="crm-4712",
    )

    answer = consumers["CommandFunction"].invoke(request)

    assert answer["outcome"] == "call.command.succeeded"
    [record_start] = telnyx_api.take_requests()
    sent_state = record_start.client_state
    assert sent_state["voicebus"] == at("menu", 1, 2)
    assert decode(sent_state["app"]).value == {"requested_by": "crm"}
    call.client_state = record_start.body["client_state"]  # Telnyx now echoes the request's client_state

    pressed, requests = call.event("call.gather.ended", status="valid", digits="1")

    assert_sent(requests, sent_by(pressed, "sales", "transfer", at("sales", 1, 3), to=env["FLOW_SALES_NUMBER"]))
    assert requests[0].client_state["app"] == sent_state["app"]  # the requester's value travels on


def test_a_client_state_update_request_keeps_the_flow_and_its_base64_value(
    consumers: dict[str, LoadedFunction], telnyx_api: TelnyxApiStandIn
) -> None:
    call = PhoneCall(consumers, telnyx_api)
    call.answered_at_the_menu()
    seed_004 = "aGF2ZSBhIG5pY2UgZGF5ID1d"
    request = command_request(
        call.call_control_id, "client_state_update", {"client_state": seed_004}, at="2026-11-21T10:00:01Z"
    )
    assert consumers["CommandFunction"].invoke(request)["outcome"] == "call.command.succeeded"
    [update] = telnyx_api.take_requests()
    carried = unwrap(update.body["client_state"])
    assert (carried.app, carried.position is not None and carried.position.step) == (seed_004, "menu")


# ---------------------------------------------------------------------------
# Two events at the same position, at the same instant


def test_two_events_racing_for_one_position_send_once(
    consumers: dict[str, LoadedFunction],
    telnyx_api: TelnyxApiStandIn,
    stack: ProvisionedStack,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Both invocations read the menu position before either writes; the lane's compare-and-set lets one through."""
    call = PhoneCall(consumers, telnyx_api)
    call.answered_at_the_menu()
    first = call.webhook("call.gather.ended", status="valid", digits="1")
    second = call.webhook("call.gather.ended", status="valid", digits="3")  # occurred later: "newer wins" would let it
    function = consumers[FUNCTION]
    runner = function.module.runner
    both_read = threading.Barrier(2, timeout=20)
    first_wrote = threading.Event()
    seen = threading.local()
    read, write = runner.states.read, runner.states.write

    def read_together(call_control_id: str) -> Any:
        view = read(call_control_id)
        if not getattr(seen, "read", False):  # each invocation's first read: both see the same position
            seen.read = True
            both_read.wait()
        return view

    def write_in_order(call_control_id: str, state: Any, ref: Any, **options: Any) -> bool:
        if ref.event_id == second["data"]["id"]:
            first_wrote.wait(20)  # the later event writes second, the order in which "newer wins" lets both send
        try:
            return bool(write(call_control_id, state, ref, **options))
        finally:
            if ref.event_id == first["data"]["id"]:
                first_wrote.set()

    monkeypatch.setattr(runner.states, "read", read_together)
    monkeypatch.setattr(runner.states, "write", write_in_order)
    results: dict[str, Any] = {}

    def invoke(webhook: dict[str, Any]) -> None:
        context = LocalContext(function_name=FUNCTION)
        results[webhook["data"]["id"]] = function.module.lambda_handler(as_bus_event(webhook), context)

    with environment(function.env):
        threads = [threading.Thread(target=invoke, args=(webhook,)) for webhook in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)

    requests = telnyx_api.take_requests()
    assert [request.action for request in requests] == ["transfer"]  # pressed 1 won; 3 sent nothing
    assert results[second["data"]["id"]]["flow"]["decision"] == "ignored"
    assert results[second["data"]["id"]]["flow"]["reason"].startswith("stale")
    assert position_in(flow_lane(stack, call.call_control_id)) == ("main", "sales", 1, 3, "active")


# ---------------------------------------------------------------------------
# invoke: your Lambda function, called through boto3 over HTTP


INVOKE_FLOW = """\
name: main
entry: answer
steps:
  answer: {type: answer, next: lookup}
  lookup:
    type: invoke
    function: crm-lookup
    timeout_millis: 500
    sets: [tier, greeting]
    branch_on: tier
    branches: {gold: vip}
    next: regular
    on_error: fallback
  vip:
    type: speak
    params: {payload: "${vars.greeting}", voice: AWS.Polly.Joanna-Neural}
  regular:
    type: speak
    params: {payload: Welcome., voice: AWS.Polly.Joanna-Neural}
  fallback:
    type: speak
    params: {payload: Welcome to our shop., voice: AWS.Polly.Joanna-Neural}
"""


@pytest.fixture
def invoke_runner(
    tmp_path: Path, stack: ProvisionedStack, telnyx_api: TelnyxApiStandIn, monkeypatch: pytest.MonkeyPatch
) -> Any:
    (tmp_path / "main.yaml").write_text(INVOKE_FLOW)
    calls = CallStore(boto3.client("dynamodb"), stack.ref("CallsTable"))
    sender = CommandSender.from_environment(
        {"TELNYX_API_KEY": telnyx_api.api_key, "TELNYX_BASE_URL": telnyx_api.base_url}
    )

    def run(api_url: str, allowed: frozenset[str] = frozenset({"crm-lookup"})) -> FlowRunner:
        monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", api_url)
        engine = FlowEngine(load_flows(tmp_path, {}), LambdaInvoker(allowed))
        return FlowRunner(engine, FlowStateStore(calls), sender, calls=calls)

    return run


def play(runner: FlowRunner, script: CallScript, event_type: str, client_state: str | None, **payload: Any) -> Any:
    if client_state is not None:
        payload["client_state"] = client_state
    webhook = TelnyxBusEvent.model_validate(as_bus_event(script.event(event_type, **payload))).detail
    recorded = RecordedEvent.unrecorded(webhook.data)
    return runner.on_event(webhook, recorded, cast("LambdaContext", LocalContext(function_name=FUNCTION)))


def answer_through(runner: FlowRunner, telnyx_api: TelnyxApiStandIn) -> tuple[CallScript, Any]:
    script = CallScript()
    play(runner, script, "call.initiated", None, direction="incoming", to=MAIN_NUMBER, **{"from": "+15550001111"})
    [answer] = telnyx_api.take_requests()
    result = play(runner, script, "call.answered", answer.body["client_state"])
    return script, result


def test_invoke_calls_the_function_with_the_call_and_speaks_its_result(
    invoke_runner: Any, telnyx_api: TelnyxApiStandIn
) -> None:
    with lambda_api() as api:
        api.functions["crm-lookup"] = lambda event: {"tier": "gold", "greeting": "Welcome back, Ada."}
        script, result = answer_through(invoke_runner(api.url), telnyx_api)

    [invocation] = api.invocations
    assert (invocation.function, invocation.invocation_type) == ("crm-lookup", "RequestResponse")
    assert invocation.payload["call"]["call_control_id"] == script.call_control_id
    assert invocation.payload["call"]["from"] == "+15550001111"
    assert (invocation.payload["flow"], invocation.payload["step"]) == ("main", "lookup")
    [speak] = telnyx_api.take_requests()
    assert (speak.action, speak.body["payload"]) == ("speak", "Welcome back, Ada.")
    assert result["flow"]["position"]["step"] == "vip"


@pytest.mark.parametrize("failure", ["raises", "not-an-object", "times-out", "not-allowed"])
def test_invoke_failure_takes_on_error(invoke_runner: Any, telnyx_api: TelnyxApiStandIn, failure: str) -> None:
    release = threading.Event()

    def crm(event: Any) -> Any:
        if failure == "raises":
            raise RuntimeError("database down")
        if failure == "times-out":
            release.wait(10)  # answers long after the step's 500 ms budget
        return ["not", "an", "object"] if failure == "not-an-object" else {"tier": "gold", "greeting": "Hi"}

    with lambda_api() as api:
        api.functions["crm-lookup"] = crm
        allowed = frozenset({"someone-else"}) if failure == "not-allowed" else frozenset({"crm-lookup"})
        _, result = answer_through(invoke_runner(api.url, allowed), telnyx_api)
        release.set()

    [speak] = telnyx_api.take_requests()
    assert (speak.action, speak.body["payload"]) == ("speak", "Welcome to our shop.")
    assert "lookup: crm-lookup failed" in result["flow"]["reason"]
    assert len(api.invocations) == (0 if failure == "not-allowed" else 1)  # never retried


def test_the_call_controls_timeouts_schedule_targets_itself(
    consumers: dict[str, LoadedFunction], telnyx_api: TelnyxApiStandIn, stack: ProvisionedStack
) -> None:
    call = PhoneCall(consumers, telnyx_api)
    call.incoming()
    [name] = schedules(stack)
    schedule = boto3.client("scheduler").get_schedule(Name=name, GroupName=stack.ref("FlowTimeoutSchedules"))
    assert schedule["Target"]["Arn"] == f"arn:aws:lambda:us-east-1:123456789012:function:{FUNCTION}"
    assert schedule["Target"]["RoleArn"] == stack.functions[FUNCTION].environment["STEP_TIMEOUT_ROLE_ARN"]
    assert schedule["ActionAfterCompletion"] == "DELETE"
    guarded = unwrap(TelnyxBusEvent.model_validate_json(schedule["Target"]["Input"]).detail.data.payload.client_state)
    assert guarded.position is not None and (guarded.position.step, guarded.call) == ("answer", call.call_control_id)


# ---------------------------------------------------------------------------
# The new step types, sent to the stand-in (which checks every request against Telnyx's OpenAPI spec)


STEPS_FLOW = """\
name: main
entry: answer
steps:
  answer: {type: answer, next: menu}
  menu:
    type: audio_menu
    params: {audio_url: "https://example.test/menu.mp3"}
    branches: {"1": pause}
    on_exhausted: bye
  pause: {type: record_pause, next: card}
  card:
    type: gather
    params: {maximum_digits: 16, terminating_digit: "#", timeout_millis: 10000}
    save_as: account
    next: resume
  resume: {type: record_resume, next: quiet}
  quiet: {type: playback_stop, next: coach}
  coach: {type: switch_supervisor_role, params: {role: whisper}, next: bye}
  bye: {type: hangup}
"""


def test_the_new_step_types_send_what_telnyx_accepts(
    tmp_path: Path, stack: ProvisionedStack, telnyx_api: TelnyxApiStandIn
) -> None:
    (tmp_path / "main.yaml").write_text(STEPS_FLOW)
    calls = CallStore(boto3.client("dynamodb"), stack.ref("CallsTable"))
    sender = CommandSender.from_environment(
        {"TELNYX_API_KEY": telnyx_api.api_key, "TELNYX_BASE_URL": telnyx_api.base_url}
    )
    runner = FlowRunner(FlowEngine(load_flows(tmp_path, {})), FlowStateStore(calls), sender, calls=calls)
    script, _ = answer_through(runner, telnyx_api)
    [menu] = telnyx_api.take_requests()
    assert (menu.action, menu.body["audio_url"], menu.body["maximum_tries"]) == (
        "gather_using_audio",
        "https://example.test/menu.mp3",
        1,
    )
    play(runner, script, "call.gather.ended", menu.body["client_state"], status="valid", digits="1")
    pause, card = telnyx_api.take_requests()
    assert (pause.action, card.action, card.body["terminating_digit"]) == ("record_pause", "gather", "#")
    play(runner, script, "call.gather.ended", card.body["client_state"], status="valid", digits="12345678")
    requests = telnyx_api.take_requests()
    assert [request.action for request in requests] == [
        "record_resume",
        "playback_stop",
        "switch_supervisor_role",
        "hangup",
    ]
    assert [request.status for request in [menu, pause, card, *requests]] == [200] * 7
    assert "client_state" not in requests[2].body and requests[2].body == {"role": "whisper"}
    lane = flow_lane(stack, script.call_control_id)
    assert lane is not None and lane["vars"]["account"] == "12345678"
