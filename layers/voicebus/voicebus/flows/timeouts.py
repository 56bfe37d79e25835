"""Step time limits: one EventBridge Scheduler one-shot schedule per deadline, deleted when the step moves on.

When a flow enters a step that waits (an answer, a prompt, a menu, a recording, a
transfer), the engine writes the step's deadline on the call's `flow` lane and the
runner creates a schedule `at(deadline)` in the stack's schedule group, targeting
the call-control function itself. Its input is a `flow.step.timeout` event shaped
like a webhook on the bus, whose client_state names the position it guards; so a
check that fires after the flow has moved on is stale and changes nothing, like any
late webhook, and a check that fires twice is one `data.id` to idempotency.

Scheduler's resolution is a minute, so a step ends at the earliest at its deadline
and at the latest about a minute later. moto keeps schedules but never runs
them: `fire_due` runs the due ones the way Scheduler would, for tests and for the
local stack's Scheduler loop (`voicebus_cli.local.schedules`).
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from botocore.exceptions import ClientError

from voicebus.calls import client_state
from voicebus.flows.envelope import wrap
from voicebus.flows.position import FlowState
from voicebus.flows.transitions import TIMEOUT_EVENT

GROUP_VARIABLE = "STEP_TIMEOUT_SCHEDULE_GROUP"
ROLE_VARIABLE = "STEP_TIMEOUT_ROLE_ARN"
TIMEOUT_SOURCE = "voicebus.flows"
_AT_FORMAT = "%Y-%m-%dT%H:%M:%S"
_MIN_LEAD = timedelta(seconds=60)
"""A deadline already past (a slow invocation) is scheduled a minute out: Scheduler runs nothing in the past."""


def schedule_name(call_control_id: str, seq: int) -> str:
    """A name Scheduler accepts (64 characters of [0-9A-Za-z_.-]) for one position of one call."""
    digest = hashlib.sha256(call_control_id.encode()).hexdigest()[:40]
    return f"step-{digest}-{seq}"


def timeout_event(call_control_id: str, state: FlowState, *, region: str, account: str) -> dict[str, Any]:
    """The event the schedule delivers: EventBridge's shape, a webhook-like detail naming the guarded position."""
    position = state.client_state()
    key = f"{call_control_id}/{state.flow}/{state.step}/{state.attempt}/{state.seq}"
    webhook = {
        "data": {
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"voicebus:{key}")),
            "event_type": TIMEOUT_EVENT,
            "occurred_at": state.deadline,
            "record_type": "event",
            "payload": {
                "call_control_id": call_control_id,
                "client_state": client_state.encode(wrap(position, call=call_control_id, app=None)),
            },
        }
    }
    return {
        "version": "0",
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"voicebus:schedule:{key}")),
        "detail-type": TIMEOUT_EVENT,
        "source": TIMEOUT_SOURCE,
        "account": account,
        "time": state.deadline,
        "region": region,
        "resources": [],
        "detail": webhook,
    }


class StepTimeouts:
    """Creates and deletes the one-shot schedules of step deadlines."""

    def __init__(
        self,
        scheduler: Any,
        group: str,
        role_arn: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """`scheduler`: a boto3 "scheduler" client (no type stubs installed for it), or None to
        create one on first use (a cold start that schedules nothing pays nothing)."""
        self._scheduler = scheduler
        self.group = group
        self.role_arn = role_arn
        self.clock = clock

    @property
    def scheduler(self) -> Any:
        if self._scheduler is None:
            self._scheduler = boto3.client("scheduler")
        return self._scheduler

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> StepTimeouts | None:
        """From STEP_TIMEOUT_SCHEDULE_GROUP and STEP_TIMEOUT_ROLE_ARN; None when not configured."""
        environ = os.environ if environ is None else environ
        group, role = environ.get(GROUP_VARIABLE, ""), environ.get(ROLE_VARIABLE, "")
        if not group or not role:
            return None
        return cls(None, group, role)

    def schedule(self, call_control_id: str, state: FlowState, target_arn: str) -> str | None:
        """Create the schedule guarding `state`'s deadline (once: a repeat is a no-op); its name, or None."""
        if state.deadline is None:
            return None
        deadline = datetime.fromisoformat(state.deadline.replace("Z", "+00:00"))
        at = max(deadline, self.clock() + _MIN_LEAD)
        arn_parts = target_arn.split(":")
        event = timeout_event(call_control_id, state, region=arn_parts[3], account=arn_parts[4])
        name = schedule_name(call_control_id, state.seq)
        try:
            self.scheduler.create_schedule(
                Name=name,
                GroupName=self.group,
                ScheduleExpression=f"at({at.astimezone(UTC).strftime(_AT_FORMAT)})",
                ScheduleExpressionTimezone="UTC",
                FlexibleTimeWindow={"Mode": "OFF"},
                ActionAfterCompletion="DELETE",
                Target={
                    "Arn": target_arn,
                    "RoleArn": self.role_arn,
                    "Input": json.dumps(event),
                    "RetryPolicy": {"MaximumRetryAttempts": 3, "MaximumEventAgeInSeconds": 300},
                },
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConflictException":
                raise
        return name

    def cancel(self, call_control_id: str, state: FlowState) -> None:
        """Delete the schedule of a position the flow has left; one already gone (fired, deleted) is fine."""
        if state.deadline is None:
            return
        try:
            self.scheduler.delete_schedule(Name=schedule_name(call_control_id, state.seq), GroupName=self.group)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                raise


def fire_due(
    scheduler: Any, group: str, deliver: Callable[[str, dict[str, Any]], object], now: datetime | None = None
) -> list[str]:
    """Run every schedule of `group` whose `at()` time has come, as Scheduler would, then delete it.

    `deliver(target_arn, event)` invokes the target (the local stack: the function's worker;
    tests: the loaded function). Returns the names fired. For local runs and tests only:
    in AWS, Scheduler does this itself.
    """
    now = now or datetime.now(UTC)
    fired: list[str] = []
    names: list[str] = []
    token: str | None = None
    while True:
        page = scheduler.list_schedules(GroupName=group, **({"NextToken": token} if token else {}))
        names.extend(entry["Name"] for entry in page.get("Schedules", []))
        token = page.get("NextToken")
        if not token:
            break
    for name in names:
        schedule = scheduler.get_schedule(Name=name, GroupName=group)
        expression = str(schedule.get("ScheduleExpression", ""))
        if not expression.startswith("at(") or not expression.endswith(")"):
            continue
        due = datetime.strptime(expression[3:-1], _AT_FORMAT).replace(tzinfo=UTC)
        if due > now:
            continue
        target = schedule["Target"]
        deliver(target["Arn"], json.loads(target["Input"]))
        if schedule.get("ActionAfterCompletion") == "DELETE":
            try:
                scheduler.delete_schedule(Name=name, GroupName=group)
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                    raise
        fired.append(name)
    return fired
