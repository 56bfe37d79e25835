"""EventBridge Scheduler for the local stack: step time-limit schedules fire when they are due.

moto keeps the schedules the flow engine creates but never runs them. Here a loop
looks every second for due ones (`voicebus.flows.timeouts.fire_due`) and hands each
event to its target function the way Scheduler does in AWS: an asynchronous invoke.
Locally that is a queue per function, polled by a `RuleWorker` like every rule's, so
the run gets Lambda's retries, the function's on-failure destination, the ledger and
the journal; and `voicebus play` (another process) delivers a time limit it fires
early through the same queue (`RuleQueues["<Function>/StepTimeouts"]` in local.json).
The loop survives moto going away: it reports, backs off and tries again.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import boto3

from voicebus.flows.timeouts import GROUP_VARIABLE, fire_due, schedule_name
from voicebus_cli.local.dead_letters import RuleTarget
from voicebus_cli.local.ledger import WorkerFault
from voicebus_cli.local.template import ACCOUNT_ID
from voicebus_cli.local.workers import DEFAULT_ASYNC_RETRIES, WORKER_AWS_CONFIG, Backoff, RuleWorker, WorkerCallbacks

if TYPE_CHECKING:
    from voicebus_cli.local.stack import LocalStack

# The key of a function's schedule queue in RuleQueues: "<FunctionLogicalId>/StepTimeouts".
EVENT_NAME = "StepTimeouts"
# How often due schedules are looked for (Scheduler's own resolution is a minute).
FIRE_EVERY_SECONDS = 1.0
_AT = "%Y-%m-%dT%H:%M:%S"


class ScheduleTargetError(RuntimeError):
    """A schedule targets a function this stack does not run (or one without a schedule queue)."""


class ScheduleDelivery:
    """`deliver(target_arn, event)` for `fire_due`: the event onto the target function's schedule queue.

    `function_arns` (logical id -> ARN) and `queues` (RuleQueues) come from the stack, or
    from local.json in another process. The target's name (`arn.split(":")[6]`) is the
    function's physical name or, as the local context reports it, its logical id.
    """

    def __init__(self, function_arns: Mapping[str, str], queues: Mapping[str, str], sqs: Any = None) -> None:
        self.function_arns = function_arns
        self.queues = queues
        self._sqs = sqs

    def queue_url(self, target_arn: str) -> str:
        parts = target_arn.split(":")
        name = parts[6] if len(parts) > 6 else ""
        logical = name if name in self.function_arns else None
        logical = logical or next((key for key, arn in self.function_arns.items() if arn.split(":")[6] == name), None)
        url = self.queues.get(f"{logical}/{EVENT_NAME}") if logical is not None else None
        if url is None:
            raise ScheduleTargetError(f"no local function takes schedules for {target_arn}")
        return url

    def __call__(self, target_arn: str, event: dict[str, Any]) -> None:
        if self._sqs is None:
            self._sqs = boto3.client("sqs", config=WORKER_AWS_CONFIG)
        self._sqs.send_message(QueueUrl=self.queue_url(target_arn), MessageBody=json.dumps(event))


class ScheduleWorker(RuleWorker):
    """A RuleWorker for what a schedule invoked: with no dead-letter queue on the schedule, Scheduler
    drops what it cannot deliver (reported as a fault) instead of keeping it forever."""

    def _undeliverable(self, body: str, event: dict[str, Any] | None, reason: str) -> bool:
        if self.target.dead_letter_queue_url is not None:
            return super()._undeliverable(body, event, reason)
        self._fault("dead-letter", ScheduleTargetError(f"dropped (the schedule has no dead-letter queue): {reason}"))
        return True


class ScheduleFirer:
    """The stack's Scheduler: fires the due schedules of every function's group, every second, never dying."""

    def __init__(self, stack: LocalStack, callbacks: WorkerCallbacks) -> None:
        self.stack = stack
        self.callbacks = callbacks
        self.groups: dict[str, str] = {}  # schedule group -> the logical id of the function it invokes
        self.queues: dict[str, str] = {}  # "<logical>/StepTimeouts" -> queue URL
        self.targets: dict[str, RuleTarget] = {}  # logical id -> its worker's target
        self.fired: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="scheduler")
        self._scheduler: Any = None
        self._delivery: ScheduleDelivery | None = None

    def start(self) -> ScheduleFirer:
        """A queue and a worker for each function the template gives a schedule group (STEP_TIMEOUT_SCHEDULE_GROUP)."""
        assert self.stack.provisioned is not None
        for logical, function in self.stack.provisioned.functions.items():
            group = function.environment.get(GROUP_VARIABLE)
            if group and logical in self.stack.functions:
                self.groups[group] = logical
                self.queues[f"{logical}/{EVENT_NAME}"] = self._create_queue(logical)
        for key, url in self.queues.items():
            logical = key.split("/")[0]
            self.targets[logical] = self._target(logical)
            worker = ScheduleWorker(self.stack.functions[logical], self.targets[logical], url, self.callbacks)
            self.stack.workers.append(worker.start())  # stopped, waited for and listed with the rule workers
        if self.groups:  # boto3 clients made here: making them is not thread-safe
            self._scheduler = boto3.client("scheduler", config=WORKER_AWS_CONFIG)
            sqs = boto3.client("sqs", config=WORKER_AWS_CONFIG)
            self._delivery = ScheduleDelivery(self.stack.function_arns(), self.queues, sqs)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _queue_name(self, logical: str) -> str:
        return f"{self.stack.name}-{logical}-schedules"[:80]

    def _create_queue(self, logical: str) -> str:
        return str(boto3.client("sqs").create_queue(QueueName=self._queue_name(logical))["QueueUrl"])

    def create_queues(self) -> None:
        """The queues again, after moto lost its state (the stack's recovery calls this); idempotent."""
        for key in self.queues:
            self._create_queue(key.split("/")[0])

    def _target(self, logical: str) -> RuleTarget:
        """Lambda's asynchronous-invoke settings of the function (EventInvokeConfig), as a rule's target has."""
        assert self.stack.provisioned is not None
        stack = self.stack.provisioned.stack
        config = stack.resources[logical].get("Properties", {}).get("EventInvokeConfig", {})
        destination = config.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
        failure_url = None
        if destination is not None:
            arn = str(stack.resolve(destination))
            failure_url = next(
                (a["QueueUrl"] for a in stack.attributes.values() if a.get("Arn") == arn and "QueueUrl" in a), None
            )
        arn = self.stack.function_arns()[logical]
        group = next(name for name, target in self.groups.items() if target == logical)
        return RuleTarget(
            function=logical,
            event_name=EVENT_NAME,
            rule_arn=f"arn:aws:scheduler:{stack.region}:{ACCOUNT_ID}:schedule-group/{group}",
            target_arn=arn,
            function_arn=arn,
            region=stack.region,
            retries=int(config.get("MaximumRetryAttempts", DEFAULT_ASYNC_RETRIES)),
            failure_queue_url=failure_url,
            dead_letter_queue_url=None,
        )

    def _run(self) -> None:
        backoff = Backoff()
        while not self._stop.wait(FIRE_EVERY_SECONDS):
            try:
                for group in self.groups:
                    self.fired.extend(fire_due(self._scheduler, group, self._deliver))
            except Exception as exc:  # moto away or restarting: report, wait, look again (a due one stays due)
                self._fault(exc)
                self._stop.wait(backoff.next())
            else:
                backoff.reset()

    def _deliver(self, target_arn: str, event: dict[str, Any]) -> None:
        """A target no local function answers is reported and dropped (Scheduler drops it when its retries are
        spent and the schedule has no dead-letter queue), so it cannot hold back every other schedule."""
        try:
            assert self._delivery is not None
            self._delivery(target_arn, event)
        except ScheduleTargetError as error:
            self._fault(error)

    def _fault(self, error: BaseException) -> None:
        target = next(iter(self.targets.values()))
        detail = "".join(traceback.format_exception(error))
        fault = WorkerFault(target, "poll", f"{type(error).__name__}: {error}", detail, time.time())
        with contextlib.suppress(Exception):  # the last resort has nowhere left to report to
            self.callbacks.on_fault(fault)


def fire_call_now(
    scheduler: Any, group: str, call_control_id: str, deliver: Callable[[str, dict[str, Any]], object]
) -> str | None:
    """Fire the call's pending step time limit now, not at its time: `voicebus play`'s `timeout: true`.

    The pending one is the call's latest (highest position `seq`), as the in-process runner
    fires it; it runs through `fire_due` with `now` at its own time, on a view of the group
    holding only that schedule, so no other call's schedule fires early. Its name, or None.
    """
    prefix = schedule_name(call_control_id, 0).rsplit("-", 1)[0] + "-"
    names = [entry["Name"] for entry in scheduler.list_schedules(GroupName=group, NamePrefix=prefix)["Schedules"]]
    names = [name for name in names if name.startswith(prefix)]
    if not names:
        return None
    latest = max(names, key=lambda name: int(name.rsplit("-", 1)[1]))
    expression = str(scheduler.get_schedule(Name=latest, GroupName=group)["ScheduleExpression"])
    due = datetime.strptime(expression.removeprefix("at(").removesuffix(")"), _AT).replace(tzinfo=UTC)
    fired = fire_due(_OneSchedule(scheduler, latest), group, deliver, now=due)
    return fired[0] if fired else None


class _OneSchedule:
    """A scheduler client whose group lists one schedule: `fire_due` on exactly that one."""

    def __init__(self, scheduler: Any, name: str) -> None:
        self._scheduler = scheduler
        self._name = name

    def list_schedules(self, **_: Any) -> dict[str, Any]:
        return {"Schedules": [{"Name": self._name}]}

    def get_schedule(self, **kwargs: Any) -> Any:
        return self._scheduler.get_schedule(**kwargs)

    def delete_schedule(self, **kwargs: Any) -> Any:
        return self._scheduler.delete_schedule(**kwargs)
