"""The local stack fires step time-limit schedules on its own, as EventBridge Scheduler does in AWS."""

from __future__ import annotations

import contextlib
import json
import os
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from tests.support.calls import CallScript
from voicebus.flows.transitions import TIMEOUT_EVENT
from voicebus.ingress.signature import sign
from voicebus_cli.demo import post
from voicebus_cli.local.journal import Journal
from voicebus_cli.local.moto_server import MotoServer
from voicebus_cli.local.schedules import EVENT_NAME
from voicebus_cli.local.stack import LocalStack
from voicebus_cli.testkey import TestKeyPair
from voicebus_cli.webhooks import compact

pytestmark = pytest.mark.integration

FUNCTION = "CallControlFunction"


@pytest.fixture
def local_stack(moto_server: MotoServer) -> Iterator[LocalStack]:
    with LocalStack(moto=moto_server, journal=Journal()) as stack:
        stack.start(dict(os.environ))
        yield stack


def group_schedules(stack: LocalStack) -> list[dict[str, Any]]:
    scheduler = boto3.client("scheduler")
    group = stack.ref("FlowTimeoutSchedules")
    names = [entry["Name"] for entry in scheduler.list_schedules(GroupName=group)["Schedules"]]
    return [dict(scheduler.get_schedule(Name=name, GroupName=group)) for name in names]


def make_due_now(stack: LocalStack, schedule: dict[str, Any]) -> None:
    """The schedule again, with its time a minute ago (the engine never schedules less than a minute out)."""
    scheduler = boto3.client("scheduler")
    group = stack.ref("FlowTimeoutSchedules")
    with contextlib.suppress(scheduler.exceptions.ResourceNotFoundException):
        scheduler.delete_schedule(Name=schedule["Name"], GroupName=group)
    past = (datetime.now(UTC) - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S")
    scheduler.create_schedule(
        Name=schedule["Name"],
        GroupName=group,
        ScheduleExpression=f"at({past})",
        ScheduleExpressionTimezone="UTC",
        FlexibleTimeWindow={"Mode": "OFF"},
        ActionAfterCompletion="DELETE",
        Target=schedule["Target"],
    )


def unanswered_call(stack: LocalStack, key: TestKeyPair) -> tuple[CallScript, dict[str, Any]]:
    """A call answered by the flow, whose call.answered never comes: the answer step's schedule."""
    assert stack.telnyx_api is not None
    script = CallScript()
    body = compact(script.event("call.initiated", state="parked", direction="incoming"))
    status, _ = post(stack.webhook_url, body, sign(body, key.signing_key, int(time.time())))
    assert status == 200
    assert stack.wait_until_idle(timeout=60)
    [answer] = [r for r in stack.telnyx_api.requests() if r.call_control_id == script.call_control_id]
    assert answer.action == "answer"
    [schedule] = group_schedules(stack)
    return script, schedule


def hung_up(stack: LocalStack, script: CallScript) -> list[str]:
    """The call's commands once a hangup came (bounded, not timed: the Scheduler loop looks every second)."""
    assert stack.telnyx_api is not None
    deadline = time.monotonic() + 60
    sent: list[str] = []
    while time.monotonic() < deadline and "hangup" not in sent:
        time.sleep(0.2)
        sent = [str(r.action) for r in stack.telnyx_api.requests() if r.call_control_id == script.call_control_id]
    assert stack.wait_until_idle(timeout=60)
    return sent


def test_a_due_step_time_limit_fires_without_anyone_asking(local_stack: LocalStack, test_key: TestKeyPair) -> None:
    stack = local_stack
    script, schedule = unanswered_call(stack, test_key)

    # A due schedule for a function nobody runs: reported and dropped, it holds back nothing.
    poison = {**schedule["Target"], "Arn": "arn:aws:lambda:us-east-1:123456789012:function:NoSuchFunction"}
    make_due_now(stack, {"Name": "step-nobody-1", "Target": {**poison, "Input": json.dumps({"detail": {}})}})
    make_due_now(stack, schedule)

    assert hung_up(stack, script) == ["answer", "hangup"]  # a call never answered is hung up at its time limit
    assert group_schedules(stack) == []  # fired, then deleted (ActionAfterCompletion DELETE)
    [run] = [r for r in stack.ledger.runs if r.function == FUNCTION and r.event["detail-type"] == TIMEOUT_EVENT]
    assert (run.error, run.processed) == (None, True)
    assert stack.rule_queues[f"{FUNCTION}/{EVENT_NAME}"]  # delivered as Lambda's async invoke: its own queue
    assert any("NoSuchFunction" in fault.error for fault in stack.ledger.faults)
    assert stack.schedules is not None and stack.schedules.alive


def test_schedules_fire_again_after_moto_lost_its_state(monkeypatch: pytest.MonkeyPatch, test_key: TestKeyPair) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "restored-after-the-test")  # the stack points the process at its moto
    with LocalStack(journal=Journal()) as stack:  # a moto of its own, wiped below
        stack.start(os.environ)
        assert stack.moto is not None
        reset = urllib.request.Request(f"{stack.moto.endpoint_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(reset, timeout=10):  # the stack's own moto
            pass
        deadline = time.monotonic() + 60
        while stack.recoveries < 1 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert stack.recoveries >= 1  # provisioned again: group, rule queues, and the schedule queue

        script, schedule = unanswered_call(stack, test_key)
        make_due_now(stack, schedule)
        assert hung_up(stack, script) == ["answer", "hangup"]
        assert stack.schedules is not None and stack.schedules.alive
        assert all(worker.alive for worker in stack.workers)
