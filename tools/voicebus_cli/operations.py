"""`voicebus redrive` and `voicebus call`: operating a deployed stack, or the local one.

Where things are comes from one of three places, so the same commands work against
AWS and against `make local`:
  --stack NAME   the CloudFormation stack's outputs (your AWS credentials and region)
  --local        .voicebus/local.json, written by `make local` (moto endpoint and names)
  explicit flags --bus, --table, --queue-url
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from voicebus.calls.store import CallStore
from voicebus_cli.testkey import ROOT

LOCAL_STATE_FILE = ROOT / ".voicebus" / "local.json"


class TargetError(RuntimeError):
    """The command does not know which stack to talk to."""


@dataclass
class Target:
    """Names of a stack's resources, and the endpoint when it is the local stack."""

    bus_name: str | None = None
    table_name: str | None = None
    queue_urls: list[str] = field(default_factory=list)
    endpoint_url: str | None = None

    def apply(self) -> None:
        """Point default boto3 clients at the local stack when that is the target."""
        if self.endpoint_url:
            os.environ["AWS_ENDPOINT_URL"] = self.endpoint_url
            for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
                os.environ.setdefault(name, "testing")
            os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


def from_stack_outputs(outputs: dict[str, str]) -> Target:
    return Target(
        bus_name=outputs.get("EventBusName"),
        table_name=outputs.get("CallsTableName"),
        queue_urls=[outputs[key] for key in ("EventDeadLetterQueueUrl", "FailedInvocationQueueUrl") if key in outputs],
        endpoint_url=outputs.get("EndpointUrl"),
    )


def resolve_target(
    stack: str | None = None,
    local: bool = False,
    bus: str | None = None,
    table: str | None = None,
    queue_urls: list[str] | None = None,
    state_file: Path = LOCAL_STATE_FILE,
) -> Target:
    if local:
        if not state_file.exists():
            raise TargetError(f"{state_file} not found: start the local stack with `make local` first")
        target = from_stack_outputs(json.loads(state_file.read_text()))
    elif stack:
        described = boto3.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]
        outputs = {item["OutputKey"]: item["OutputValue"] for item in described.get("Outputs", [])}
        target = from_stack_outputs(outputs)
    else:
        target = Target()
    target.bus_name = bus or target.bus_name
    target.table_name = table or target.table_name
    target.queue_urls = queue_urls or target.queue_urls
    return target


# ---------------------------------------------------------------------------- redrive


@dataclass(frozen=True)
class DeadLetter:
    """One dead-lettered event and where it came from."""

    queue_url: str
    receipt_handle: str
    event: dict[str, Any]


def original_event(body: str) -> dict[str, Any] | None:
    """The EventBridge event inside a dead letter: a rule DLQ holds it as is, a Lambda
    on-failure destination wraps it as `requestPayload`."""
    try:
        message = json.loads(body)
    except json.JSONDecodeError:
        return None
    if not isinstance(message, dict):
        return None
    event = message.get("requestPayload", message)
    if isinstance(event, dict) and {"source", "detail-type", "detail"} <= set(event):
        return event
    return None


def dead_letters(queue_url: str, limit: int, visibility_seconds: int = 60) -> Iterator[DeadLetter]:
    """Messages from one queue, each hidden for `visibility_seconds` while it is handled."""
    sqs = boto3.client("sqs")
    seen = 0
    while seen < limit:
        batch = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=min(10, limit - seen),
            VisibilityTimeout=visibility_seconds,
            WaitTimeSeconds=0,
        ).get("Messages", [])
        if not batch:
            return
        for message in batch:
            seen += 1
            event = original_event(message["Body"])
            if event is None:
                print(f"skipped (not an EventBridge event): {message['MessageId']}")
                continue
            yield DeadLetter(queue_url, message["ReceiptHandle"], event)


@dataclass
class RedriveReport:
    redriven: int = 0
    would_redrive: int = 0
    failed: int = 0
    by_type: dict[str, int] = field(default_factory=dict)


def redrive(target: Target, *, dry_run: bool, limit: int = 1000) -> RedriveReport:
    """Put dead-lettered events back on the bus (same source, detail-type, detail), then delete them.

    Consumers are idempotent on the webhook's data.id, so an event redriven to a
    function that had already handled it changes nothing.
    """
    if not target.bus_name or not target.queue_urls:
        raise TargetError("redrive needs the bus and the dead-letter queues: --stack, --local, or --bus/--queue-url")
    sqs = boto3.client("sqs")
    events = boto3.client("events")
    report = RedriveReport()
    for queue_url in target.queue_urls:
        held: list[str] = []  # a dry run hides what it has seen until the scan ends, then shows it again
        for letter in dead_letters(queue_url, limit):
            detail_type = str(letter.event["detail-type"])
            report.by_type[detail_type] = report.by_type.get(detail_type, 0) + 1
            if dry_run:
                report.would_redrive += 1
                held.append(letter.receipt_handle)
                continue
            entry = {
                "EventBusName": target.bus_name,
                "Source": letter.event["source"],
                "DetailType": detail_type,
                "Detail": json.dumps(letter.event["detail"]),
            }
            response = events.put_events(Entries=[entry])  # type: ignore[list-item]
            if response.get("FailedEntryCount", 0):
                report.failed += 1  # left in the queue; it becomes visible again
                continue
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=letter.receipt_handle)
            report.redriven += 1
        for receipt_handle in held:
            sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=receipt_handle, VisibilityTimeout=0)
    return report


def print_redrive(report: RedriveReport, dry_run: bool) -> None:
    verb = "would redrive" if dry_run else "redrove"
    count = report.would_redrive if dry_run else report.redriven
    print(f"{verb} {count} event(s)" + (f", {report.failed} failed (left queued)" if report.failed else ""))
    for detail_type, number in sorted(report.by_type.items()):
        print(f"  {detail_type:<44} {number}")


# ---------------------------------------------------------------------------- call


def show_call(target: Target, call_control_id: str) -> int:
    """Print a call's state and timeline; 1 when the call is unknown."""
    if not target.table_name:
        raise TargetError("call needs the calls table: --stack, --local, or --table")
    store = CallStore(boto3.client("dynamodb"), target.table_name)
    record = store.get_call(call_control_id)
    if record is None:
        print(f"no call {call_control_id} in {target.table_name}")
        return 1
    print(json.dumps(record.model_dump(mode="json", exclude_none=True), indent=2))
    print("\ntimeline:")
    for entry in store.timeline(call_control_id):
        print(f"  {entry.occurred_at}  {entry.event_type:<40} {entry.event_id}")
    return 0
