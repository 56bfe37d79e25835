"""How each step answers the event it waits for: success, failure, or its time limit.

One `Transitions` per event (the engine builds it): `start` enters a new call's
flow, `advance` moves a flow whose position the event named, and `enter` runs
steps until one waits, calling `invoke` steps' functions on the way.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pydantic import JsonValue

from voicebus.calls import client_state
from voicebus.calls.events import CallPayload, WebhookData
from voicebus.calls.items import MAX_NESTING, unstorable_reason
from voicebus.commands.validation import CallCommand, InvalidCommandError
from voicebus.flows.decision import (
    Decision,
    DecisionKind,
    Invoker,
    InvokeRequest,
    InvokeResult,
    PlannedCommand,
    ignored,
)
from voicebus.flows.envelope import wrap
from voicebus.flows.loader import FlowCatalog
from voicebus.flows.models import HANGUP_STEP, Flow
from voicebus.flows.position import FlowState, FlowStatus
from voicebus.flows.steps import (
    AnswerStep,
    FlowStep,
    GatherStep,
    InvokeStep,
    MenuStep,
    PlayStep,
    RecordStep,
    ReferStep,
    SetClientStateStep,
    SpeakStep,
    StepKind,
    TransferStep,
    VariableError,
    render,
)

TIMEOUT_EVENT = "flow.step.timeout"
"""The event the scheduled check delivers when a step's deadline passes (`voicebus.flows.timeouts`)."""
INTERRUPTED = frozenset({"cancelled", "cancelled_amd"})
CALLER_HUNG_UP = "call_hangup"
COMPLETED = frozenset({"completed", "valid"})
MAX_STEPS_PER_EVENT = 64
DIGITS_VAR = "digits"
VARS_LEVELS = MAX_NESTING - 2
"""A result's values sit inside the `flow` lane's map and its `vars` map on the call's item."""


class Transitions:
    """The transitions one event can fire on the flow of call `call_control_id`."""

    def __init__(
        self,
        catalog: FlowCatalog,
        invoker: Invoker | None,
        data: WebhookData,
        call_control_id: str | None,
        app: str | None,
    ) -> None:
        self.catalog = catalog
        self.invoker = invoker
        self.data = data
        self.call_control_id = call_control_id
        self.app = app
        self.now = data.occurred_at or datetime.now(UTC)

    # ------------------------------------------------------------------ entry points

    def start(self) -> Decision:
        payload = self.data.payload
        if self.data.event_type != "call.initiated":
            return ignored("no flow is running on this call")
        if payload.direction != "incoming":
            return ignored(f"only incoming calls start a flow (direction {payload.direction!r})")
        flow = self.catalog.choose(payload.to, payload.connection_id)
        parties = {name: value for name, value in (("from", payload.from_), ("to", payload.to)) if value}
        if payload.call_session_id:
            parties["call_session_id"] = payload.call_session_id
        initial = FlowState(flow=flow.name, step=flow.entry, seq=1, parties=parties)
        reason = f"incoming call to {payload.to} starts flow {flow.name!r}"
        return self.enter(flow, flow.entry, initial, 1, DecisionKind.STARTED, reason, first=True)

    def advance(self, current: FlowState, *, far_leg: bool = False) -> Decision:
        flow = self.catalog.get(current.flow)
        if flow is None:
            return ignored(f"flow {current.flow!r} is no longer deployed")
        step = flow.step(current.step)
        if step is None:
            return ignored(f"flow {current.flow!r} no longer has a step {current.step!r}")
        event, payload = self.data.event_type, self.data.payload
        if event == TIMEOUT_EVENT:
            if current.deadline is None:  # the step ended and the flow rests there: a check left behind
                return ignored(f"step {current.step!r} has no time limit running")
            return self._timed_out(flow, step, current)
        match step:
            case TransferStep() if far_leg and event == "call.hangup":
                why = f"the transfer's far leg hung up before it was bridged ({payload.hangup_cause})"
                return self._failed(flow, step, current, why)
            case TransferStep() if event == "call.bridged":
                return self._handed_over(current, "the transfer was bridged")
            case ReferStep() if event == "call.refer.completed":
                return self._handed_over(current, "the refer completed")
            case ReferStep() if event == "call.refer.failed":
                return self._failed(flow, step, current, f"the refer failed ({payload.status or 'no reason'})")
        if far_leg:
            return ignored(f"{event} of the far leg does not move step {current.step!r}")
        match step:
            case AnswerStep() if event == "call.answered":
                return self._follow(flow, step, current, "the call was answered")
            case SpeakStep() if event == "call.speak.ended":
                return self._ended_prompt(flow, step, current, payload, "speaking")
            case PlayStep() if event == "call.playback.ended":
                return self._ended_prompt(flow, step, current, payload, "playback")
            case MenuStep() if event == "call.gather.ended":
                return self._menu(flow, step, current, payload)
            case GatherStep() if event == "call.gather.ended":
                return self._gather(flow, step, current, payload)
            case RecordStep() if event == "call.dtmf.received":
                return self._finish_key(step, current, payload.digit)
            case RecordStep() if event == "call.recording.saved":
                return self._follow(flow, step, current, f"recording {payload.recording_id} saved")
            case RecordStep() if event == "call.recording.error":
                reason = (payload.model_extra or {}).get("reason") or "no reason given"
                return self._failed(flow, step, current, f"the recording failed ({reason})")
        return ignored(f"step {current.step!r} ({step.type}) does not move on at {event}")

    # ------------------------------------------------------------------ outcomes of a step

    def _follow(self, flow: Flow, step: FlowStep, current: FlowState, why: str) -> Decision:
        following = step.following()
        if following is None:  # the flow rests here (a greeting while the call streams): no time limit runs
            if current.deadline is None:
                return ignored(f"{why}; step {current.step!r} has no next, the flow stays there")
            resting = current.model_copy(update={"deadline": None})
            return Decision(
                DecisionKind.ADVANCED,
                f"{why}; step {current.step!r} has no next, the flow rests there",
                resting,
                call_control_id=self.call_control_id,
                app=self.app,
            )
        return self.enter(flow, following, current, 1, DecisionKind.ADVANCED, why)

    def _failed(self, flow: Flow, step: FlowStep, current: FlowState, why: str) -> Decision:
        target = flow.failure_branch(step, current.step)
        return self.enter(flow, target, current, 1, DecisionKind.ADVANCED, f"{why}: on to {target!r}")

    def _handed_over(self, current: FlowState, why: str) -> Decision:
        state = current.model_copy(update={"status": FlowStatus.HANDED_OVER, "deadline": None, "rejected": None})
        return Decision(DecisionKind.HANDED_OVER, why, state, call_control_id=self.call_control_id, app=self.app)

    def _ended_prompt(
        self, flow: Flow, step: SpeakStep | PlayStep, current: FlowState, payload: CallPayload, what: str
    ) -> Decision:
        status = payload.status
        if status == CALLER_HUNG_UP:
            return self._caller_left(current, what)
        if status in INTERRUPTED:
            return ignored(f"{what} was cut short ({status})")
        if status is None or status in COMPLETED:
            return self._follow(flow, step, current, f"{what} ended ({status})")
        why = f"{what} failed ({status})"
        if step.on_error is None and flow.on_error is None:  # no branch given: the prompt is skipped
            return self._follow(flow, step, current, f"{why}; the prompt is skipped")
        return self._failed(flow, step, current, why)

    def _caller_left(self, current: FlowState, what: str) -> Decision:
        ended = current.model_copy(update={"status": FlowStatus.ENDED, "deadline": None})
        return Decision(DecisionKind.ENDED, f"the caller hung up during {what}", ended)

    def _menu(self, flow: Flow, step: MenuStep, current: FlowState, payload: CallPayload | None) -> Decision:
        status = payload.status if payload is not None else "timeout"
        digits = (payload.digits if payload is not None else None) or ""
        if status == CALLER_HUNG_UP:
            return self._caller_left(current, "the menu")
        if status in INTERRUPTED:
            return ignored(f"the gather was cut short ({status})")
        if status == "valid" and digits in step.branches:
            chosen = current.model_copy(update={"vars": {**current.vars, DIGITS_VAR: digits}})
            return self.enter(flow, step.branches[digits], chosen, 1, DecisionKind.ADVANCED, f"pressed {digits}")
        why = "no input" if status in ("timeout", None) or not digits else f"{digits!r} is not a choice"
        if payload is None:
            why = "no call.gather.ended before the step's time limit"
        if current.attempt < step.max_attempts:
            attempt = current.attempt + 1
            reason = f"{why}: menu again, attempt {attempt} of {step.max_attempts}"
            return self.enter(flow, current.step, current, attempt, DecisionKind.ADVANCED, reason)
        reason = f"{why} after {step.max_attempts} attempts"
        return self.enter(flow, step.on_exhausted, current, 1, DecisionKind.ADVANCED, reason)

    def _gather(self, flow: Flow, step: GatherStep, current: FlowState, payload: CallPayload) -> Decision:
        status, digits = payload.status, payload.digits or ""
        if status == CALLER_HUNG_UP:
            return self._caller_left(current, "the gather")
        if status in INTERRUPTED:
            return ignored(f"the gather was cut short ({status})")
        if not digits:
            target = step.on_no_input or step.next
            if target is None:
                return ignored(f"no input ({status}); step {current.step!r} has nowhere to go")
            return self.enter(flow, target, current, 1, DecisionKind.ADVANCED, f"no input ({status})")
        gathered = current.model_copy(update={"vars": {**current.vars, step.save_as: digits, DIGITS_VAR: digits}})
        target = step.branches.get(digits, step.next)
        if target is None:
            return ignored(f"gathered {digits!r}; step {current.step!r} has no next, the flow stays there")
        return self.enter(flow, target, gathered, 1, DecisionKind.ADVANCED, f"gathered {digits!r} ({status})")

    def _finish_key(self, step: RecordStep, current: FlowState, digit: str | None) -> Decision:
        if not digit or step.finish_on_key is None or digit not in step.finish_on_key:
            return ignored(f"{digit!r} does not finish the recording")
        if current.status is FlowStatus.FINISHING:
            return ignored("the recording is already being stopped")
        state = current.model_copy(update={"status": FlowStatus.FINISHING, "rejected": None})
        stop = PlannedCommand(current.step, step.stop_command())
        return Decision(
            DecisionKind.FINISHING,
            f"pressed {digit}: stop the recording",
            state,
            (stop,),
            self.call_control_id,
            self.app,
        )

    def _timed_out(self, flow: Flow, step: FlowStep, current: FlowState) -> Decision:
        limit = f"no answer within {step.timeout_secs_for()} s"
        on_timeout = getattr(step, "on_timeout", None)
        if isinstance(on_timeout, str):
            return self.enter(flow, on_timeout, current, 1, DecisionKind.ADVANCED, f"{limit}: on to {on_timeout!r}")
        if isinstance(step, MenuStep):
            return self._menu(flow, step, current, None)
        if isinstance(step, GatherStep) and (step.on_no_input or step.next):
            target = step.on_no_input or step.next
            assert target is not None
            return self.enter(flow, target, current, 1, DecisionKind.ADVANCED, f"{limit}: no input")
        if isinstance(step, AnswerStep):
            return self.enter(flow, HANGUP_STEP, current, 1, DecisionKind.ADVANCED, f"{limit}: hang up")
        return self._failed(flow, step, current, limit)

    # ------------------------------------------------------------------ entering steps

    def enter(
        self,
        flow: Flow,
        name: str,
        current: FlowState,
        attempt: int,
        kind: DecisionKind,
        reason: str,
        *,
        first: bool = False,
    ) -> Decision:
        """Enter step `name`, then every step that moves on at once after it; one command per step.

        A step whose params cannot be filled in (a `${vars.name}` not set, or a value the
        spec refuses) is not sent: the flow takes that step's failure branch instead.
        """
        seq = 0 if first else current.seq
        data: dict[str, JsonValue] = dict(current.data)
        variables: dict[str, JsonValue] = dict(current.vars)
        entered: list[tuple[str, FlowStep, CallCommand | None]] = []
        notes: list[str] = []
        invocations: list[InvokeRequest] = []
        while True:
            if len(entered) >= MAX_STEPS_PER_EVENT:
                notes.append(f"stopped after {MAX_STEPS_PER_EVENT} steps in one event")
                break
            step = flow.step(name)
            assert step is not None, f"flow {flow.name!r} was loaded with a reference to a missing step {name!r}"
            seq += 1
            following = step.following()
            command: CallCommand | None = None
            if isinstance(step, InvokeStep):
                request = self._invoke_request(flow, name, step, variables, current)
                invocations.append(request)
                result = self.invoker(request) if self.invoker is not None else InvokeResult(error="no invoker")
                problem = _result_problem(step, result)
                entered.append((name, step, None))
                if problem is None:
                    assert result.value is not None
                    variables.update(result.value)
                    following = step.choose(result.value)
                    notes.append(f"{name}: {step.function} answered")
                else:
                    following = flow.failure_branch(step, name)
                    notes.append(f"{name}: {step.function} failed ({problem}): on to {following!r}")
                if following is None:
                    break
                name, attempt = following, 1
                continue
            if isinstance(step, SetClientStateStep):
                data.update(step.values)
            else:
                try:
                    command = render(step.command(attempt, {}), variables)
                except (VariableError, InvalidCommandError) as exc:
                    target = flow.failure_branch(step, name)
                    notes.append(f"{name}: {exc}: on to {target!r}")
                    entered.append((name, step, None))
                    name, attempt = target, 1
                    continue
            entered.append((name, step, command))
            if step.kind is not StepKind.CONTINUES or following is None:
                break
            name, attempt = following, 1
        final = flow.step(name)
        limit = final.timeout_secs_for() if final is not None and final.kind is not StepKind.CONTINUES else None
        deadline = (self.now + timedelta(seconds=limit)).strftime("%Y-%m-%dT%H:%M:%SZ") if limit else None
        state = FlowState(
            flow=flow.name,
            step=name,
            attempt=attempt,
            seq=seq,
            data=data,
            vars=variables,
            parties=current.parties,
            deadline=deadline,
        )
        position = state.client_state()
        commands: list[PlannedCommand] = []
        for step_name, step, command in entered:
            if isinstance(step, SetClientStateStep):
                envelope = wrap(position, call=self.call_control_id, app=self.app)
                commands.append(PlannedCommand(step_name, step.command(1, envelope)))
            elif isinstance(step, TransferStep) and command is not None:
                leg = client_state.encode(wrap(position, call=self.call_control_id, app=None))
                commands.append(PlannedCommand(step_name, command.with_params(target_leg_client_state=leg)))
            elif command is not None:
                commands.append(PlannedCommand(step_name, command))
        why = "; ".join([reason, *notes])
        return Decision(kind, why, state, tuple(commands), self.call_control_id, self.app, tuple(invocations))

    def _invoke_request(
        self, flow: Flow, name: str, step: InvokeStep, variables: dict[str, JsonValue], current: FlowState
    ) -> InvokeRequest:
        """What the function is sent: the call, where the flow is, the digits gathered and the flow variables."""
        call: dict[str, JsonValue] = {"call_control_id": self.call_control_id, **current.parties}
        payload = self.data.payload
        for field, value in (("call_leg_id", payload.call_leg_id), ("call_session_id", payload.call_session_id)):
            if value:
                call[field] = value
        body: dict[str, JsonValue] = {
            "call": call,
            "flow": flow.name,
            "step": name,
            "event_type": self.data.event_type,
            "digits": variables.get(DIGITS_VAR),
            "vars": dict(variables),
            "input": dict(step.payload),
        }
        return InvokeRequest(name, step.function, body, step.timeout_millis)


def _result_problem(step: InvokeStep, result: InvokeResult) -> str | None:
    """Why a function's result cannot be used; None when it can."""
    if result.error is not None:
        return result.error
    if result.value is None:
        return "the result is not a JSON object"
    missing = [name for name in step.sets if name not in result.value]
    if missing:
        return f"the result has no {', '.join(missing)}"
    unstorable = unstorable_reason(result.value, VARS_LEVELS)
    return f"the result cannot be kept with the call: {unstorable}" if unstorable else None
