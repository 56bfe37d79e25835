"""`voicebus redrive`: dead-lettered events back to the target that failed them, after a fix.

Two queues hold dead letters, in two shapes:

- EventDeadLetterQueue (a rule could not deliver): the body is the event as the rule
  matched it; EventBridge's message attributes `RULE_ARN`, `TARGET_ARN`, `ERROR_CODE`
  and `ERROR_MESSAGE` say which rule, which target and why.
- FailedInvocationQueue (Lambda's on-failure destination, after its retries): the body
  is `{"requestContext": {"functionArn", "condition", ...}, "requestPayload": <event>,
  "responsePayload": {"errorMessage", "errorType"}}`.

Each event goes back to its own target only: against AWS `lambda.invoke` (asynchronous,
so Lambda's retries and on-failure destination apply again); against the local stack a
message on one of that function's rule queues, which its worker polls. Putting the event
back on the bus instead (`--to-bus`) runs every rule that matches it again, so every
function hears it twice; the consumers dedupe on the webhook id, a user's own function
may not. A dead letter is deleted only once it has been handed on.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3

from voicebus_cli.cli_errors import CliError
from voicebus_cli.operations import Target, TargetError


@dataclass(frozen=True)
class DeadLetter:
    """One dead-lettered event, where it failed and why."""

    queue_url: str
    message_id: str
    receipt_handle: str
    event: dict[str, Any]
    rule_arn: str | None = None
    target_arn: str | None = None  # the function (or other target) that failed it
    error: str | None = None

    @property
    def rule_name(self) -> str | None:
        """`arn:aws:events:REGION:ACCOUNT:rule/[BUS/]NAME` -> NAME."""
        return self.rule_arn.rsplit("/", 1)[-1] if self.rule_arn else None

    @property
    def function_arn(self) -> str | None:
        return self.target_arn if self.target_arn and ":lambda:" in self.target_arn else None

    @property
    def function_name(self) -> str | None:
        """`arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]` -> NAME."""
        parts = (self.function_arn or "").split(":")
        return parts[6] if len(parts) > 6 else None

    def describe(self) -> str:
        data = self.event.get("detail", {}).get("data")
        event_id = data.get("id") if isinstance(data, dict) else self.event.get("id")
        return f"{self.event.get('detail-type', '?')} {event_id}"


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


def parse_dead_letter(queue_url: str, message: dict[str, Any]) -> DeadLetter | None:
    """A received SQS message as a DeadLetter; None when it holds no EventBridge event."""
    event = original_event(message["Body"])
    if event is None:
        return None
    attributes = {name: value.get("StringValue") for name, value in message.get("MessageAttributes", {}).items()}
    body = json.loads(message["Body"])
    common = {"queue_url": queue_url, "message_id": message["MessageId"], "receipt_handle": message["ReceiptHandle"]}
    if "requestPayload" in body:  # Lambda's on-failure destination
        context = body.get("requestContext") or {}
        response = body.get("responsePayload") or {}
        reason = response.get("errorMessage") if isinstance(response, dict) else None
        kind = response.get("errorType") if isinstance(response, dict) else None
        condition = context.get("condition") if isinstance(context, dict) else None
        error = ": ".join(str(part) for part in (kind, reason) if part) or condition
        return DeadLetter(**common, event=event, target_arn=context.get("functionArn"), error=error)
    error = ": ".join(str(attributes[name]) for name in ("ERROR_CODE", "ERROR_MESSAGE") if attributes.get(name))
    return DeadLetter(
        **common,
        event=event,
        rule_arn=attributes.get("RULE_ARN"),
        target_arn=attributes.get("TARGET_ARN"),
        error=error or None,
    )


def receive(queue_url: str, limit: int, visibility_seconds: int = 60) -> Iterator[dict[str, Any]]:
    """Messages from one queue, each hidden for `visibility_seconds` while it is handled."""
    sqs = boto3.client("sqs")
    seen = 0
    while seen < limit:
        batch = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=min(10, limit - seen),
            VisibilityTimeout=visibility_seconds,
            WaitTimeSeconds=0,
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not batch:
            return
        for message in batch:
            seen += 1
            yield dict(message)


@dataclass(frozen=True)
class Selection:
    """Which dead letters to redrive: `--rule` and `--function` match part of a name."""

    rule: str | None = None
    function: str | None = None

    def matches(self, letter: DeadLetter, function_ids: dict[str, str]) -> bool:
        if self.rule and self.rule not in (letter.rule_name or ""):
            return False
        if self.function:
            names = {letter.function_name or "", function_ids.get(_unqualified(letter.function_arn), "")}
            return any(self.function in name for name in names if name)
        return True


def _unqualified(arn: str | None) -> str:
    """A function ARN without its version or alias."""
    return ":".join((arn or "").split(":")[:7])


@dataclass
class RedriveReport:
    redriven: int = 0
    would_redrive: int = 0
    failed: int = 0
    skipped: int = 0  # not selected by --rule / --function, or not an EventBridge event
    lines: list[str] = field(default_factory=list)


class Redriver:
    """Delivers dead letters to their targets: Lambda against AWS, rule queues locally, or the bus."""

    def __init__(self, target: Target, *, to_bus: bool = False, lambda_client: Any = None) -> None:
        self._target = target
        self._to_bus = to_bus
        self._lambda = lambda_client
        self._sqs: Any = None
        self._events: Any = None
        # Local stack: unqualified function ARN -> logical id.
        self.function_ids = {_unqualified(arn): logical for logical, arn in target.function_arns.items()}

    def __call__(self, letter: DeadLetter) -> str:
        if self._to_bus:
            return self._put_on_bus(letter)
        if not letter.function_arn:
            raise CliError("its target is not a Lambda function (or unknown): --to-bus puts it back on the bus")
        if self._target.local:
            return self._send_to_rule_queue(letter)
        if self._lambda is None:
            self._lambda = boto3.client("lambda")
        response = self._lambda.invoke(
            FunctionName=letter.function_arn, InvocationType="Event", Payload=json.dumps(letter.event).encode()
        )
        if response.get("FunctionError") or int(response.get("StatusCode", 202)) >= 300:
            raise CliError(f"Lambda refused the invocation ({response.get('StatusCode')})")
        return f"function {letter.function_name}"

    def _send_to_rule_queue(self, letter: DeadLetter) -> str:
        logical = self.function_ids.get(_unqualified(letter.function_arn))
        if logical is None:
            raise CliError(f"the local stack lists no function {letter.function_arn} (FunctionArns in local.json)")
        queues = sorted((key, url) for key, url in self._target.rule_queues.items() if key.split("/")[0] == logical)
        if not queues:
            raise CliError(f"the local stack lists no rule queue of {logical} (RuleQueues in local.json)")
        rule = letter.rule_name or ""
        key, url = next(((k, u) for k, u in queues if k.replace("/", "-") in rule), queues[0])
        if self._sqs is None:
            self._sqs = boto3.client("sqs")
        self._sqs.send_message(QueueUrl=url, MessageBody=json.dumps(letter.event))
        return f"function {logical} (via {key})"

    def _put_on_bus(self, letter: DeadLetter) -> str:
        if not self._target.bus_name:
            raise TargetError("--to-bus needs the bus: --stack, --local or --bus")
        if self._events is None:
            self._events = boto3.client("events")
        entry = {
            "EventBusName": self._target.bus_name,
            "Source": letter.event["source"],
            "DetailType": letter.event["detail-type"],
            "Detail": json.dumps(letter.event["detail"]),
        }
        response = self._events.put_events(Entries=[entry])
        if response.get("FailedEntryCount", 0):
            raise CliError(f"PutEvents refused it: {response['Entries'][0].get('ErrorMessage', '?')}")
        return f"bus {self._target.bus_name}"


def redrive(
    target: Target,
    *,
    dry_run: bool,
    selection: Selection | None = None,
    limit: int = 1000,
    deliver: Redriver | None = None,
    to_bus: bool = False,
) -> RedriveReport:
    """Hand each selected dead letter to its target, then delete it; the rest are shown again at once."""
    if not target.queue_urls:
        raise TargetError("redrive needs the dead-letter queues: --stack, --local, or --queue-url")
    selection = selection or Selection()
    deliver = deliver or Redriver(target, to_bus=to_bus)
    sqs = boto3.client("sqs")
    report = RedriveReport()
    for queue_url in target.queue_urls:
        held: list[str] = []  # seen but left alone: visible again once the scan of this queue ends
        for message in receive(queue_url, limit):
            letter = parse_dead_letter(queue_url, message)
            if letter is None:
                report.skipped += 1
                report.lines.append(f"  skipped {message['MessageId']}: not an EventBridge event")
                held.append(message["ReceiptHandle"])
                continue
            if not selection.matches(letter, deliver.function_ids):
                report.skipped += 1
                held.append(letter.receipt_handle)
                continue
            origin = " ".join(
                part for part in (f"rule {letter.rule_name}" if letter.rule_name else "", letter.function_name) if part
            )
            why = f"  failed: {letter.error}" if letter.error else ""
            if dry_run:
                report.would_redrive += 1
                report.lines.append(f"  {letter.describe()}  [{origin or 'target unknown'}]{why}")
                held.append(letter.receipt_handle)
                continue
            try:
                where = deliver(letter)
            except CliError as error:
                report.failed += 1  # left in the queue
                report.lines.append(f"  NOT redriven {letter.describe()}: {error}{why}")
                held.append(letter.receipt_handle)
                continue
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=letter.receipt_handle)
            report.redriven += 1
            report.lines.append(f"  {letter.describe()} -> {where}{why}")
        for receipt_handle in held:
            sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=receipt_handle, VisibilityTimeout=0)
    return report


def print_redrive(report: RedriveReport, dry_run: bool) -> None:
    verb = "would redrive" if dry_run else "redrove"
    count = report.would_redrive if dry_run else report.redriven
    tail = f", {report.failed} failed (left queued)" if report.failed else ""
    tail += f", {report.skipped} left alone" if report.skipped else ""
    print(f"{verb} {count} event(s){tail}")
    for line in report.lines:
        print(line)
