"""Scenarios played in process: the call-control function's flow runner, with memory where AWS and Telnyx are.

The runner (`voicebus.flows.runner.FlowRunner`) is the one the function runs; only
its seams are replaced: the `flow` lane lives in a dict (`MemoryFlowStates`, the
`FlowStateStore` protocol, compare-and-set included), Telnyx is a `CallControlClient`
that answers 200 and keeps each request body (`MemoryTelnyx`), EventBridge Scheduler
a dict of the step time limits a `timeout: true` event fires (`MemoryScheduler`, under
the real `StepTimeouts`), and your functions the scenario's `functions:` answers
(`MemoryInvoker`). The real `CommandSender` builds the bodies, so command_ids and
client_state are exactly what Telnyx would receive; a `data.id` already processed runs
nothing, as the consumer's idempotency does. No moto, no HTTP, no threads: a scenario
takes milliseconds.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from typing import TYPE_CHECKING, Any, cast

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from voicebus.calls.events import TelnyxWebhook
from voicebus.calls.items import EventRef
from voicebus.calls.recorder import RecordedEvent
from voicebus.commands.http import CallControlClient, HttpMethod, TelnyxResponse
from voicebus.commands.sender import CommandOutcome, CommandSender
from voicebus.commands.validation import CallCommand
from voicebus.flows.decision import InvokeRequest, InvokeResult
from voicebus.flows.engine import FlowEngine, flow_call_id
from voicebus.flows.invoke import function_name
from voicebus.flows.loader import FlowCatalog
from voicebus.flows.models import APOLOGY_STEP, HANGUP_STEP, Flow
from voicebus.flows.position import FlowState, StoredFlowState
from voicebus.flows.runner import FlowRunner
from voicebus.flows.store import CallFlowView, FlowStateStore
from voicebus.flows.timeouts import StepTimeouts
from voicebus_cli.local.functions import LocalContext
from voicebus_cli.scenario_call import ScenarioCall
from voicebus_cli.scenarios import DEFAULT_LEG, FunctionAnswer, LoadedScenario, ScenarioError, SentCommand, compare

if TYPE_CHECKING:
    import urllib3
    from aws_lambda_powertools.utilities.typing import LambdaContext

_OK = b'{"data":{"result":"ok"}}'


@dataclass(frozen=True)
class Received:
    """One request as the memory Telnyx took it, with the flow step that sent it."""

    call_control_id: str
    action: str
    body: dict[str, Any]
    step: str | None


class MemoryTelnyx(CallControlClient):
    """Telnyx's Call Control API as a list: every request accepted (200) and kept."""

    def __init__(self) -> None:
        super().__init__("KEY_scenario", base_url="http://telnyx.scenario.invalid")
        self.received: list[Received] = []
        self.step: str | None = None

    def send(
        self,
        method: HttpMethod,
        call_control_id: str,
        action: str,
        body: Mapping[str, Any],
        *,
        required: Collection[str] = (),
        timeout: urllib3.Timeout | None = None,
    ) -> TelnyxResponse:
        self.received.append(Received(call_control_id, action, dict(body), self.step))
        return TelnyxResponse(200, {"content-type": "application/json"}, _OK)


class StepNotingSender(CommandSender):
    """The real sender; it tells the memory Telnyx which flow step each command belongs to."""

    def __init__(self, telnyx: MemoryTelnyx) -> None:
        super().__init__(telnyx, sleep=lambda _: None)
        self.telnyx = telnyx

    def send(
        self,
        call_control_id: str,
        command: CallCommand,
        *,
        webhook_id: str,
        client_state: Any = None,
        discriminator: str = "",
        remaining_ms: Callable[[], int] | None = None,
    ) -> CommandOutcome:
        self.telnyx.step = discriminator or None
        return super().send(
            call_control_id,
            command,
            webhook_id=webhook_id,
            client_state=client_state,
            discriminator=discriminator,
            remaining_ms=remaining_ms,
        )


class MemoryFlowStates(FlowStateStore):
    """The calls table's `flow` lane (and the status lane's hang-up) in a dict, moved by compare-and-set."""

    def __init__(self) -> None:  # no CallStore: nothing here reaches DynamoDB
        self.lanes: dict[str, StoredFlowState] = {}
        self.hung_up: set[str] = set()
        self.features: dict[tuple[str, str], dict[str, Any]] = {}

    def read(self, call_control_id: str) -> CallFlowView:
        return CallFlowView(self.lanes.get(call_control_id), call_control_id in self.hung_up)

    def record_feature(self, call_control_id: str, lane: str, fields: Mapping[str, Any], ref: EventRef) -> None:
        self.features[(call_control_id, lane)] = dict(fields)

    def write(self, call_control_id: str, state: FlowState, ref: EventRef, *, read: FlowState | None) -> bool:
        """Like `CallStore.swap_lane`: set only if the lane still holds the `seq` and `status` that were read."""
        current = self.lanes.get(call_control_id)
        held = None if current is None else (current.seq, current.status)
        if held != (None if read is None else (read.seq, read.status)):
            return False
        self.lanes[call_control_id] = StoredFlowState.model_validate({**state.lane_fields(), "event_id": ref.event_id})
        return True

    def mark_hung_up(self, call_control_id: str) -> None:
        """What the call-state recorder writes on call.hangup: the engine reads it as `hung_up`."""
        self.hung_up.add(call_control_id)


class MemoryScheduler:
    """EventBridge Scheduler's create and delete, kept in a dict: the step time limits a scenario can fire."""

    def __init__(self) -> None:
        self.schedules: dict[str, dict[str, Any]] = {}  # name -> the event its target gets
        self.created: list[str] = []

    def create_schedule(self, *, Name: str, Target: Mapping[str, Any], **_: Any) -> dict[str, Any]:
        if Name in self.schedules:
            raise ClientError({"Error": {"Code": "ConflictException", "Message": Name}}, "CreateSchedule")
        self.schedules[Name] = json.loads(Target["Input"])
        self.created.append(Name)
        return {"ScheduleArn": f"arn:aws:scheduler:us-east-1:123456789012:schedule/scenario/{Name}"}

    def delete_schedule(self, *, Name: str, **_: Any) -> dict[str, Any]:
        if self.schedules.pop(Name, None) is None:
            raise ClientError({"Error": {"Code": "ResourceNotFoundException", "Message": Name}}, "DeleteSchedule")
        return {}

    def fire(self, call_control_id: str) -> dict[str, Any]:
        """The webhook of the call's pending time limit (the latest scheduled), as Scheduler would deliver it."""
        pending = [
            name
            for name in reversed(self.created)
            if name in self.schedules
            and self.schedules[name]["detail"]["data"]["payload"].get("call_control_id") == call_control_id
        ]
        if not pending:
            raise ScenarioError("no step time limit is pending on the call (the step has none, or it moved on)")
        detail: dict[str, Any] = self.schedules.pop(pending[0])["detail"]
        return detail


class MemoryInvoker:
    """Your functions as the scenario's `functions:` answers; the engine's `invoke` steps call this."""

    def __init__(self, answers: Mapping[str, FunctionAnswer]) -> None:
        self.answers = answers
        self.requests: list[InvokeRequest] = []

    def __call__(self, request: InvokeRequest) -> InvokeResult:
        self.requests.append(request)
        answer = self.answers.get(function_name(request.function))
        if answer is None:
            return InvokeResult(error=f"the scenario gives no answer for function {request.function!r}")
        return InvokeResult(value=answer.result, error=answer.error)


@dataclass(frozen=True)
class Transition:
    """A flow moved from `source` to `target` (a step entered), on one webhook."""

    flow: str
    source: str
    target: str
    event_type: str


@dataclass
class ScenarioResult:
    scenario: LoadedScenario
    failures: list[str] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)
    webhooks: int = 0
    commands: int = 0

    @property
    def ok(self) -> bool:
        return not self.failures


class InProcessFlows:
    """The flow runner with memory seams, for one scenario at a time."""

    def __init__(self, catalog: FlowCatalog) -> None:
        self.catalog = catalog

    def run(self, loaded: LoadedScenario) -> ScenarioResult:
        scenario = loaded.scenario
        telnyx = MemoryTelnyx()
        states = MemoryFlowStates()
        logger = Logger(service="scenario", level="ERROR")
        scheduler = MemoryScheduler()
        timeouts = StepTimeouts(scheduler, "scenario", "arn:aws:iam::123456789012:role/scenario-scheduler")
        invoker = MemoryInvoker(scenario.functions)
        engine = FlowEngine(self.catalog, invoker)
        runner = FlowRunner(engine, states, StepNotingSender(telnyx), logger, timeouts=timeouts)
        call = ScenarioCall(scenario, f"scenario-{uuid.uuid4().hex[:8]}")
        context = cast("LambdaContext", LocalContext("CallControlFunction", timeout_ms=30_000))
        result = ScenarioResult(loaded)
        processed: set[str] = set()  # the consumer's idempotency on data.id: a duplicate runs nothing
        for index, event in enumerate(scenario.events, 1):
            try:
                if event.timeout:
                    body = scheduler.fire(call.call_control_id(DEFAULT_LEG))
                    call.delivered_elsewhere(event, body)
                else:
                    body = call.webhook(event)
            except ScenarioError as error:
                result.failures.append(f"event {index} ({event.describe()}): {error}")
                break
            webhook = TelnyxWebhook.model_validate(body)
            data = webhook.data
            ccid = flow_call_id(data) or ""
            before = states.read(ccid).state
            start, invoked = len(telnyx.received), len(invoker.requests)
            outcome: dict[str, Any] | None = {"flow": {"decision": "skipped", "reason": "a duplicate data.id"}}
            if data.id not in processed:
                try:
                    outcome = runner.on_event(webhook, RecordedEvent.unrecorded(data), context)
                except Exception as error:  # reported as this scenario's failure; the next scenario still runs
                    result.failures.append(f"event {index} ({event.describe()}): the runner raised {error!r}")
                    break
                processed.add(data.id)
            if data.event_type == "call.hangup" and data.payload.call_control_id:
                states.mark_hung_up(data.payload.call_control_id)  # the hung-up leg, as the call-state recorder
            new = telnyx.received[start:]
            sent = [SentCommand(call.leg_of(item.call_control_id), item.action, item.body, item.step) for item in new]
            call.record(sent)
            result.webhooks += 1
            result.commands += len(sent)
            entered = [c.step for c in sent if c.step] + [r.step for r in invoker.requests[invoked:]]
            after = states.read(ccid).state
            flow = self.catalog.get(after.flow) if after is not None else None
            result.transitions.extend(_transitions(flow, before, after, entered, data.event_type))
            diff = compare(event.expect, sent)
            if diff:
                why = _decision(outcome)
                result.failures.append(f"event {index} ({event.describe()}): {why}\n" + "\n".join(diff))
        return result


def _decision(outcome: dict[str, Any] | None) -> str:
    """What the runner said it did, for a mismatch's headline."""
    flow = (outcome or {}).get("flow")
    if not isinstance(flow, dict):
        return "the flow did not hear it"
    return f"the flow {flow.get('decision')}: {flow.get('reason')}"


def _transitions(
    flow: Flow | None, before: StoredFlowState | None, after: StoredFlowState | None, entered: list[str], event: str
) -> list[Transition]:
    """The steps entered on one webhook, in order: from where the flow was, through each step entered.

    `entered` names each step that sent a command or invoked a function, in no particular
    order across the two; the order is the walk through the flow's graph that enters them all.
    """
    if flow is None or after is None or (before is not None and before.event_id == after.event_id):
        return []
    if before is None or before.flow != after.flow:
        start, remaining = (entered[0] if entered else after.step), [*entered[1:], after.step]
    else:
        start, remaining = before.step, [*entered, after.step]
    path = [start]
    if start == after.step and (before is None or before.seq != after.seq) and remaining.count(start) > 1:
        path.append(start)  # the step entered again: a menu's retry
    pending = [name for name in dict.fromkeys(remaining) if name not in path]
    while pending:
        leads = [target for target in _leads_to(flow, path[-1]) if target in pending]
        following = leads[0] if leads else pending[0]
        pending.remove(following)
        path.append(following)
    return [Transition(after.flow, source, target, event) for source, target in pairwise(path)]


def _leads_to(flow: Flow, name: str) -> list[str]:
    """Where a step can lead: its branches, then its failure branch (the flow's, the built-in apology's)."""
    step = flow.step(name)
    if step is None:
        return []
    targets = [target for _, target in step.targets()]
    if name == APOLOGY_STEP:
        targets.append(HANGUP_STEP)
    return [*targets, flow.failure_branch(step), HANGUP_STEP]
