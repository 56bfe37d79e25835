"""The engine's failure branches, time limits, new step types, `invoke` and the client_state envelope (pure)."""

from __future__ import annotations

import textwrap
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from voicebus.calls.client_state import decode, encode
from voicebus.calls.events import WebhookData
from voicebus.commands.validation import parse_command
from voicebus.flows import steps
from voicebus.flows.decision import InvokeRequest, InvokeResult
from voicebus.flows.engine import TIMEOUT_EVENT, Decision, DecisionKind, FlowEngine
from voicebus.flows.envelope import app_value, unwrap, wrap
from voicebus.flows.loader import FlowLoadError, load_flows
from voicebus.flows.models import APOLOGY_STEP, DEFAULT_APOLOGY, HANGUP_STEP
from voicebus.flows.position import FlowPosition, FlowStatus, StoredFlowState, position_from_client_state
from voicebus_cli.flows import FLOWS_DIR, example_environment

CALL = "v3:caller-leg"
FAR_LEG = "v3:far-leg"
VOICE = "AWS.Polly.Joanna-Neural"

FLOW = """\
name: main
entry: answer
on_error: oops
steps:
  answer: {type: answer, next: lookup}
  lookup:
    type: invoke
    function: crm-lookup
    timeout_millis: 2000
    payload: {purpose: routing}
    sets: [tier, agent]
    branch_on: tier
    branches: {gold: vip}
    next: pick
    on_error: pick
  vip:
    type: transfer
    params: {to: "${vars.agent}", timeout_secs: 20}
    on_failure: sorry
  pick:
    type: audio_menu
    params: {audio_url: "https://example.test/menu.mp3"}
    retry_audio_url: "https://example.test/again.mp3"
    branches: {"1": card, "2": refer, "3": music}
    max_attempts: 2
    on_exhausted: bye
  card:
    type: record_pause
    next: digits
  digits:
    type: gather
    params: {maximum_digits: 16, terminating_digit: "#"}
    save_as: account
    on_no_input: bye
    next: resume
  resume:
    type: record_resume
    next: supervise
  supervise:
    type: switch_supervisor_role
    params: {role: monitor}
    next: bye
  refer:
    type: refer
    params: {sip_address: "sip:desk@example.test"}
    on_failure: sorry
  music:
    type: play
    params: {audio_url: "https://example.test/hold.mp3", loop: infinity}
    next: bye
  stop_music:
    type: playback_stop
    next: bye
  sorry:
    type: speak
    params: {payload: Sorry., voice: AWS.Polly.Joanna-Neural}
    next: bye
  oops:
    type: speak
    params: {payload: Something went wrong., voice: AWS.Polly.Joanna-Neural}
    next: bye
  bye: {type: hangup}
"""


class Call:
    """One call as the runner keeps it: the stored lane, and Telnyx echoing the last client_state."""

    def __init__(self, engine: FlowEngine, invoker: Any = None) -> None:
        self.engine = engine
        self.invoker = invoker
        self.state: StoredFlowState | None = None
        self.client_state: str | None = None
        self.far_leg_state: str | None = None
        self.clock = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)

    def webhook(self, event_type: str, call: str = CALL, **payload: Any) -> WebhookData:
        self.clock += timedelta(seconds=1)
        state = self.far_leg_state if call == FAR_LEG else self.client_state
        fields: dict[str, Any] = {"call_control_id": call, "to": "+15550002222", "from": "+15550001111"}
        if state is not None:
            fields["client_state"] = state
        data = {"id": str(uuid.uuid4()), "event_type": event_type, "occurred_at": self.clock}
        return WebhookData.model_validate({**data, "payload": {**fields, **payload}})

    def deliver(self, data: WebhookData) -> Decision:
        decision = self.engine.decide(data, self.state, invoker=self.invoker)
        if decision.writes_state:
            assert decision.state is not None
            self.state = StoredFlowState.model_validate({**decision.state.model_dump(), "event_id": data.id})
        if decision.commands and decision.client_state is not None:
            self.client_state = encode(decision.client_state)
        for planned in decision.commands:
            if "target_leg_client_state" in planned.command.params:
                self.far_leg_state = planned.command.params["target_leg_client_state"]
        return decision

    def event(self, event_type: str, call: str = CALL, **payload: Any) -> Decision:
        return self.deliver(self.webhook(event_type, call, **payload))

    def timeout(self) -> Decision:
        """The scheduled check of the current position, as `voicebus.flows.timeouts` builds it."""
        assert self.state is not None
        guarded = encode(wrap(self.state.client_state(), call=CALL, app=None))
        return self.deliver(self.webhook(TIMEOUT_EVENT, client_state=guarded))


def actions(decision: Decision) -> list[tuple[str, str]]:
    return [(planned.step, planned.command.action) for planned in decision.commands]


def step_of(decision: Decision) -> str | None:
    return decision.state.step if decision.state is not None else None


class Invoked:
    """An invoker that answers as told and remembers what it was sent."""

    def __init__(self, result: InvokeResult) -> None:
        self.result = result
        self.requests: list[InvokeRequest] = []

    def __call__(self, request: InvokeRequest) -> InvokeResult:
        self.requests.append(request)
        return self.result


@pytest.fixture
def engine(tmp_path: Path) -> FlowEngine:
    (tmp_path / "main.yaml").write_text(FLOW)
    return FlowEngine(load_flows(tmp_path, {}))


def answered(engine: FlowEngine, result: InvokeResult) -> tuple[Call, Decision, Invoked]:
    invoked = Invoked(result)
    call = Call(engine, invoked)
    call.event("call.initiated", direction="incoming")
    return call, call.event("call.answered"), invoked


# ---------------------------------------------------------------------------
# invoke


def test_invoke_sends_the_call_context_and_branches_on_a_result_field(engine: FlowEngine) -> None:
    call, decision, invoked = answered(engine, InvokeResult({"tier": "gold", "agent": "+15550109999"}))

    [request] = invoked.requests
    assert (request.function, request.timeout_millis, request.step) == ("crm-lookup", 2000, "lookup")
    assert request.payload["call"] == {"call_control_id": CALL, "from": "+15550001111", "to": "+15550002222"}
    assert request.payload["input"] == {"purpose": "routing"}
    assert (request.payload["flow"], request.payload["vars"], request.payload["digits"]) == ("main", {}, None)
    # ${vars.agent} filled into the transfer's params; the result is kept as flow variables on the lane
    [(step, transfer)] = [(p.step, p.command) for p in decision.commands]
    assert (step, transfer.params["to"], transfer.params["timeout_secs"]) == ("vip", "+15550109999", 20)
    assert decision.state is not None and decision.state.vars == {"tier": "gold", "agent": "+15550109999"}
    assert call.state is not None and call.state.step == "vip"


def test_invoke_without_a_branch_for_the_value_goes_to_next(engine: FlowEngine) -> None:
    _, decision, _ = answered(engine, InvokeResult({"tier": "bronze", "agent": "+15550109999"}))
    assert actions(decision) == [("pick", "gather_using_audio")]


@pytest.mark.parametrize(
    "result",
    [
        InvokeResult(error="crm-lookup raised Unhandled: boom"),
        InvokeResult(error="invoking crm-lookup: ReadTimeoutError"),
        InvokeResult({"tier": "gold"}),  # `sets` names agent too
    ],
    ids=["error", "timeout", "missing-field"],
)
def test_invoke_failure_takes_on_error(engine: FlowEngine, result: InvokeResult) -> None:
    _, decision, _ = answered(engine, result)
    assert actions(decision) == [("pick", "gather_using_audio")]
    assert "lookup: crm-lookup failed" in decision.reason


def test_a_variable_that_breaks_the_params_takes_the_failure_branch(engine: FlowEngine) -> None:
    _, decision, _ = answered(engine, InvokeResult({"tier": "gold", "agent": 42}))  # `to` must be a string
    assert actions(decision) == [("sorry", "speak")]  # vip's failure branch


def test_vars_in_params_are_checked_against_the_step_fields_at_load(tmp_path: Path) -> None:
    (tmp_path / "main.yaml").write_text(
        textwrap.dedent("""\
        name: main
        entry: greet
        steps:
          greet:
            type: speak
            params: {payload: "Hello ${vars.name}", voice: "${vars.voice}", colour: "${vars.x}"}
        """)
    )
    with pytest.raises(FlowLoadError, match=r"step 'greet': params.colour"):
        load_flows(tmp_path, {})


# ---------------------------------------------------------------------------
# Failure branches


def test_a_transfer_whose_far_leg_hangs_up_takes_on_failure(engine: FlowEngine) -> None:
    call, _, _ = answered(engine, InvokeResult({"tier": "gold", "agent": "+15550109999"}))
    far = unwrap(call.far_leg_state)
    assert (far.call, far.position) == (CALL, FlowPosition(flow="main", step="vip", attempt=1, seq=3))

    failed = call.event("call.hangup", call=FAR_LEG, hangup_cause="busy")

    assert actions(failed) == [("sorry", "speak")]
    assert failed.call_control_id == CALL  # the apology goes to the caller, not the far leg
    assert "far leg hung up" in failed.reason


def test_a_bridged_transfer_is_handed_over_and_the_far_leg_hangup_later_changes_nothing(engine: FlowEngine) -> None:
    call, _, _ = answered(engine, InvokeResult({"tier": "gold", "agent": "+15550109999"}))
    bridged = call.event("call.bridged", call=FAR_LEG)
    assert (bridged.kind, bridged.commands) == (DecisionKind.HANDED_OVER, ())
    assert bridged.state is not None and bridged.state.deadline is None
    assert call.event("call.hangup", call=FAR_LEG).kind is DecisionKind.IGNORED


def test_a_transfer_that_never_bridges_takes_on_failure_at_its_time_limit(engine: FlowEngine) -> None:
    call, decision, _ = answered(engine, InvokeResult({"tier": "gold", "agent": "+15550109999"}))
    assert decision.state is not None and decision.state.deadline == "2026-11-21T10:00:52Z"  # dial 20 s + 30 s
    timed_out = call.timeout()
    assert actions(timed_out) == [("sorry", "speak")]
    assert "no answer within 50 s" in timed_out.reason


def menu_choice(engine: FlowEngine, digits: str) -> tuple[Call, Decision]:
    call, _, _ = answered(engine, InvokeResult(error="down"))
    return call, call.event("call.gather.ended", status="valid", digits=digits)


def test_a_failed_refer_takes_on_failure(engine: FlowEngine) -> None:
    call, decision = menu_choice(engine, "2")
    assert actions(decision) == [("refer", "refer")]
    failed = call.event("call.refer.failed", status="failed")
    assert actions(failed) == [("sorry", "speak")]


def test_a_completed_refer_is_handed_over(engine: FlowEngine) -> None:
    call, _ = menu_choice(engine, "2")
    assert call.event("call.refer.completed").kind is DecisionKind.HANDED_OVER


def test_a_failed_prompt_takes_the_flow_on_error(engine: FlowEngine) -> None:
    call, _ = menu_choice(engine, "2")
    call.event("call.refer.failed")  # now speaking "Sorry."
    failed = call.event("call.speak.ended", status="failed")
    assert actions(failed) == [("oops", "speak")]


def test_a_recording_error_takes_on_error_and_without_one_the_apology() -> None:
    flows = load_flows(FLOWS_DIR, example_environment())
    call = Call(FlowEngine(flows))
    call.event("call.initiated", direction="incoming")
    call.event("call.answered")
    call.event("call.gather.ended", status="valid", digits="2")
    call.event("call.speak.ended", status="completed")
    error = call.webhook("call.recording.error", reason="Internal server error")
    error.payload.call_control_id = None  # as the spec's example sends it: the envelope names the call
    decision = call.deliver(error)
    assert actions(decision) == [("voicemail_failed", "speak")]
    assert decision.call_control_id is not None


def test_without_any_branch_a_failure_apologises_and_hangs_up(tmp_path: Path) -> None:
    (tmp_path / "main.yaml").write_text(
        "name: main\nentry: answer\nsteps:\n  answer: {type: answer, next: out}\n"
        "  out: {type: transfer, params: {to: '+15550100100'}}\n"
    )
    call = Call(FlowEngine(load_flows(tmp_path, {})))
    call.event("call.initiated", direction="incoming")
    call.event("call.answered")
    apology = call.event("call.hangup", call=FAR_LEG, hangup_cause="timeout")
    assert actions(apology) == [(APOLOGY_STEP, "speak")]
    assert apology.commands[0].command == parse_command("speak", DEFAULT_APOLOGY)
    assert actions(call.event("call.speak.ended", status="completed")) == [(HANGUP_STEP, "hangup")]


def test_a_gather_that_ends_because_the_caller_hung_up_ends_the_flow(engine: FlowEngine) -> None:
    call, _, _ = answered(engine, InvokeResult(error="down"))
    decision = call.event("call.gather.ended", status="call_hangup")
    assert (decision.kind, decision.commands) == (DecisionKind.ENDED, ())
    assert decision.state is not None and decision.state.status is FlowStatus.ENDED


def test_an_invalid_gather_tries_the_audio_menu_again_with_the_retry_audio(engine: FlowEngine) -> None:
    call, _, _ = answered(engine, InvokeResult(error="down"))
    again = call.event("call.gather.ended", status="invalid", digits="9")
    [planned] = again.commands
    assert planned.command.params == {
        "audio_url": "https://example.test/again.mp3",
        "maximum_tries": 1,
        "maximum_digits": 1,
    }
    assert actions(call.event("call.gather.ended", status="invalid")) == [("bye", "hangup")]


# ---------------------------------------------------------------------------
# Time limits


def test_a_menu_whose_gather_never_ends_is_tried_again_at_its_time_limit(engine: FlowEngine) -> None:
    call, decision, _ = answered(engine, InvokeResult(error="down"))
    assert decision.state is not None and decision.state.deadline == "2026-11-21T10:02:02Z"  # 120 s default
    timed_out = call.timeout()
    assert actions(timed_out) == [("pick", "gather_using_audio")]
    assert timed_out.state is not None and timed_out.state.attempt == 2


def test_a_timeout_for_a_position_the_flow_has_left_is_stale(engine: FlowEngine) -> None:
    call, _, _ = answered(engine, InvokeResult(error="down"))
    assert call.state is not None
    old = encode(wrap(call.state.client_state(), call=CALL, app=None))
    call.event("call.gather.ended", status="valid", digits="2")
    late = call.deliver(call.webhook(TIMEOUT_EVENT, client_state=old))
    assert late.kind is DecisionKind.IGNORED and late.reason.startswith("stale")


def test_an_unanswered_call_is_hung_up_at_the_answer_time_limit(engine: FlowEngine) -> None:
    call = Call(engine)
    started = call.event("call.initiated", direction="incoming")
    assert started.state is not None and started.state.deadline == "2026-11-21T10:00:31Z"
    assert actions(call.timeout()) == [(HANGUP_STEP, "hangup")]


def test_a_looping_play_has_no_time_limit_unless_given_one(engine: FlowEngine) -> None:
    _, decision = menu_choice(engine, "3")
    assert actions(decision) == [("music", "playback_start")]
    assert decision.state is not None and decision.state.deadline is None


# ---------------------------------------------------------------------------
# New step types: the commands match Telnyx's request schemas


def test_pause_gather_resume_and_supervisor_role_send_the_spec_commands(engine: FlowEngine) -> None:
    call, decision = menu_choice(engine, "1")
    assert actions(decision) == [("card", "record_pause"), ("digits", "gather")]
    assert decision.commands[1].command == parse_command("gather", {"maximum_digits": 16, "terminating_digit": "#"})

    done = call.event("call.gather.ended", status="valid", digits="12345678")

    assert actions(done) == [("resume", "record_resume"), ("supervise", "switch_supervisor_role"), ("bye", "hangup")]
    assert done.commands[1].command == parse_command("switch_supervisor_role", {"role": "monitor"})
    assert done.state is not None and done.state.vars["account"] == "12345678"


def test_a_gather_with_no_input_goes_to_on_no_input(engine: FlowEngine) -> None:
    call, _ = menu_choice(engine, "1")
    assert actions(call.event("call.gather.ended", status="timeout")) == [("bye", "hangup")]


def test_playback_stop_is_a_step(engine: FlowEngine) -> None:
    step = engine.catalog.flows["main"].steps["stop_music"]
    assert isinstance(step, steps.PlaybackStopStep)
    assert step.command(1, {}) == parse_command("playback_stop")


# ---------------------------------------------------------------------------
# The envelope


def test_the_envelope_keeps_the_position_and_the_callers_own_value() -> None:
    position = FlowPosition(flow="main", step="menu", attempt=1, seq=2)
    seed_004 = "aGF2ZSBhIG5pY2UgZGF5ID1d"  # already base64: kept exactly as given
    raw = encode(wrap(position, call=CALL, app=app_value(seed_004)))
    carried = unwrap(raw)
    assert (carried.position, carried.call, carried.app) == (position, CALL, seed_004)
    mine = unwrap(encode(wrap(position, call=CALL, app=app_value({"requested_by": "crm"}))))
    assert mine.app is not None and decode(mine.app).value == {"requested_by": "crm"}
    assert position_from_client_state(raw) == position
    # someone else's value is theirs; a bare position (calls started before the envelope) still reads
    assert unwrap(encode({"requested_by": "crm"})).position is None
    assert unwrap(encode(position.client_state())).position == position


def test_flow_commands_carry_the_app_value_the_event_brought(engine: FlowEngine) -> None:
    call, _, _ = answered(engine, InvokeResult(error="down"))
    assert call.state is not None
    crm = app_value({"requested_by": "crm"})
    call.client_state = encode(wrap(call.state.client_state(), call=CALL, app=crm))  # a call.command's envelope
    decision = call.event("call.gather.ended", status="valid", digits="2")
    assert actions(decision) == [("refer", "refer")]
    assert decision.client_state is not None and decision.client_state["app"] == crm


def test_the_flows_on_error_step_or_the_apology_failing_in_turn_hangs_up(engine: FlowEngine, tmp_path: Path) -> None:
    call, _ = menu_choice(engine, "2")
    call.event("call.refer.failed")
    call.event("call.speak.ended", status="failed")  # "Sorry." failed: the flow's on_error, "oops"
    assert actions(call.event("call.speak.ended", status="failed")) == [(HANGUP_STEP, "hangup")]

    (tmp_path / "bare").mkdir()
    (tmp_path / "bare" / "main.yaml").write_text(
        "name: main\nentry: answer\nsteps:\n  answer: {type: answer, next: out}\n"
        "  out: {type: refer, params: {sip_address: 'sip:a@example.test'}}\n"
    )
    bare = Call(FlowEngine(load_flows(tmp_path / "bare", {})))
    bare.event("call.initiated", direction="incoming")
    bare.event("call.answered")
    assert actions(bare.event("call.refer.failed")) == [(APOLOGY_STEP, "speak")]
    assert actions(bare.timeout()) == [(HANGUP_STEP, "hangup")]  # the apology never ended


def test_a_result_the_call_cannot_keep_takes_on_error(engine: FlowEngine) -> None:
    deep: Any = "bottom"
    for _ in range(40):
        deep = [deep]
    _, decision, _ = answered(engine, InvokeResult({"tier": "gold", "agent": "+15550109999", "history": deep}))
    assert actions(decision) == [("pick", "gather_using_audio")]
    assert "cannot be kept with the call" in decision.reason


@pytest.mark.parametrize("status", ["completed", "failed"])
def test_a_prompt_with_no_next_rests_and_its_time_limit_no_longer_fires(tmp_path: Path, status: str) -> None:
    (tmp_path / "main.yaml").write_text(
        "name: main\nentry: answer\nsteps:\n  answer: {type: answer, next: greeting}\n"
        "  greeting: {type: speak, params: {payload: Hello., voice: AWS.Polly.Joanna-Neural}}\n"
    )
    call = Call(FlowEngine(load_flows(tmp_path, {})))
    call.event("call.initiated", direction="incoming")
    call.event("call.answered")
    assert call.state is not None and call.state.deadline is not None  # the greeting's time limit runs
    rested = call.event("call.speak.ended", status=status)
    assert rested.state is not None and rested.state.deadline is None and actions(rested) == []
    late_check = call.timeout()  # a scheduled check left behind (its deletion failed) changes nothing
    assert (late_check.kind, actions(late_check)) == (DecisionKind.IGNORED, [])
