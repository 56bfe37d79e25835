"""`voicebus redrive`: dead-lettered events back to the target that failed them, after a fix.

Dead letters come from a rule's dead-letter queue (EventBridge could not deliver) and
from Lambda's on-failure destination (the function failed every attempt), in AWS's own
shapes (`dead_letter_reader`). Each event goes back to its own target only, as it was
(its bus `id` and `time` too, which order it and key its timeline item when the webhook
has no occurred_at): against AWS `lambda.invoke` (asynchronous, so Lambda's retries and
on-failure destination apply again); against the local stack a message on one of that
function's rule queues, which its worker polls. Putting it back on the bus instead
(`--to-bus`) keeps its `time` but gets a new `id`, and runs every matching rule again;
the consumers dedupe on the webhook id, a user's own function may not.

Redrives are counted per event and target across runs (`redrive_counts`, in the calls
table). An event back in a dead-letter queue after a redrive failed again; one back
after `max_redrives` is parked (moved to the parking queue with its last error) rather
than redriven forever. A dead letter is deleted only once it has been handed on or parked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import boto3

from voicebus_cli.cli_errors import CliError, UsageError
from voicebus_cli.dead_letter_reader import PARKED_ERROR_CODE, DeadLetter, original_event, parse_dead_letter, receive
from voicebus_cli.operations import Target, TargetError
from voicebus_cli.redrive_counts import RedriveCounts, RedriveKey, event_digest, shown

__all__ = ["DeadLetter", "RedriveReport", "Redriver", "Selection", "original_event", "print_redrive", "redrive"]

DEFAULT_MAX_REDRIVES = 3


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

    def target_of(self, letter: DeadLetter) -> str:
        """Where the letter goes, as its redrives are counted: per function, or the bus as one target."""
        if self._to_bus:
            return f"bus:{self._target.bus_name}"
        return letter.function_name or letter.target_arn or "unknown"

    def park(self, letter: DeadLetter, redrives: int) -> str:
        """The event, as EventBridge's dead-letter shape, in the parking queue with its last error."""
        queue_url = self._target.parking_queue_url
        if not queue_url:
            raise TargetError("no parking queue known: --stack, --local or --parking-queue-url")
        values = {
            "RULE_ARN": letter.rule_arn,
            "TARGET_ARN": letter.target_arn,
            "ERROR_CODE": PARKED_ERROR_CODE,
            "ERROR_MESSAGE": shown(letter.error or "-", 1000),
            "REDRIVES": str(redrives),
        }
        attributes = {name: {"DataType": "String", "StringValue": v} for name, v in values.items() if v}
        if self._sqs is None:
            self._sqs = boto3.client("sqs")
        self._sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(letter.event), MessageAttributes=attributes)
        return queue_url

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
        entry: dict[str, Any] = {
            "EventBusName": self._target.bus_name,
            "Source": letter.event["source"],
            "DetailType": letter.event["detail-type"],
            "Detail": json.dumps(letter.event["detail"]),
            "Resources": list(letter.event.get("resources") or []),
        }
        # Its original time, which consumers order by (and key the timeline on when the webhook
        # has no occurred_at); EventBridge gives every put a new `id` whatever is asked.
        moment = _event_time(letter.event)
        if moment is not None:
            entry["Time"] = moment
        response = self._events.put_events(Entries=[entry])
        if response.get("FailedEntryCount", 0):
            raise CliError(f"PutEvents refused it: {response['Entries'][0].get('ErrorMessage', '?')}")
        return f"bus {self._target.bus_name}"


def _event_time(event: dict[str, Any]) -> datetime | None:
    try:
        return datetime.fromisoformat(str(event.get("time", "")).replace("Z", "+00:00"))
    except ValueError:
        return None


@dataclass
class RedriveReport:
    redriven: int = 0
    would_redrive: int = 0
    failed: int = 0  # could not be handed on: left queued
    failed_again: int = 0  # handed on before by a redrive, and back in a dead-letter queue
    parked: int = 0  # failed again after --max-redrives redrives: moved to the parking queue
    dropped: int = 0  # a second dead letter of an event handed on (or parked) in this run
    skipped: int = 0  # not selected by --rule / --function, or not an EventBridge event
    uncounted: bool = False  # no calls table known: redrives not counted, nothing parked
    lines: list[str] = field(default_factory=list)
    handed_on: dict[str, str] = field(default_factory=dict)  # event digest -> description, for --wait

    @property
    def succeeded(self) -> bool:
        """False when anything failed: not handed on, failed again after a redrive, or parked."""
        return not (self.failed or self.failed_again or self.parked)


@dataclass(frozen=True)
class _Run:
    """What one `redrive` call needs for every letter."""

    deliver: Redriver
    counts: RedriveCounts | None
    max_redrives: int
    sqs: Any
    report: RedriveReport
    done: set[RedriveKey] = field(default_factory=set)  # handed on or parked in this run


def redrive(
    target: Target,
    *,
    dry_run: bool,
    selection: Selection | None = None,
    limit: int = 1000,
    deliver: Redriver | None = None,
    to_bus: bool = False,
    max_redrives: int = DEFAULT_MAX_REDRIVES,
    counts: RedriveCounts | None = None,
    wait_seconds: float = 0,
    watch_queue_urls: list[str] | None = None,
) -> RedriveReport:
    """Hand each selected dead letter to its target (or park it), then delete it; the rest are shown again at once.

    Each event's redrives to each target are counted (`redrive_counts`): one that is back
    after a redrive failed again; one back after `max_redrives` goes to the parking queue
    with its last error instead. Letters read from the parking queue itself start afresh.
    `wait_seconds`: then watch the dead-letter queues (`watch_queue_urls`, else the ones
    read) that long for what was handed on.
    """
    if not target.queue_urls:
        raise TargetError("redrive needs the dead-letter queues: --stack, --local, or --queue-url")
    if max_redrives < 1:
        raise UsageError("--max-redrives must be 1 or more")
    selection = selection or Selection()
    deliver = deliver or Redriver(target, to_bus=to_bus)
    if counts is None and target.table_name:
        counts = RedriveCounts(target.table_name)
    run = _Run(deliver, counts, max_redrives, boto3.client("sqs"), RedriveReport(uncounted=counts is None))
    for queue_url in target.queue_urls:
        held: list[str] = []  # seen but left alone: visible again once the scan of this queue ends
        fresh = queue_url == target.parking_queue_url
        for message in receive(queue_url, limit):
            letter = parse_dead_letter(queue_url, message)
            if letter is None:
                run.report.skipped += 1
                run.report.lines.append(f"  skipped {message['MessageId']}: not an EventBridge event")
                held.append(message["ReceiptHandle"])
            elif not selection.matches(letter, deliver.function_ids):
                run.report.skipped += 1
                held.append(letter.receipt_handle)
            elif dry_run:
                _list(run, letter)
                held.append(letter.receipt_handle)
            elif not _hand_on(run, letter, fresh=fresh):
                held.append(letter.receipt_handle)
        for receipt_handle in held:
            run.sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=receipt_handle, VisibilityTimeout=0)
    if wait_seconds > 0 and run.report.handed_on and not dry_run:
        from voicebus_cli.redrive_watch import watch_for_returns

        watched = watch_queue_urls or [url for url in target.queue_urls if url != target.parking_queue_url]
        back, lines = watch_for_returns(watched, run.report.handed_on, wait_seconds)
        run.report.failed_again += back
        run.report.lines.extend(lines)
    return run.report


def _origin(letter: DeadLetter) -> str:
    parts = (f"rule {letter.rule_name}" if letter.rule_name else "", letter.function_name or "")
    return " ".join(part for part in parts if part) or "target unknown"


def _why(letter: DeadLetter) -> str:
    return f"  failed: {shown(letter.error)}" if letter.error else ""


def _list(run: _Run, letter: DeadLetter) -> None:
    """--dry-run: the letter, where it goes, why it failed, and its redrives so far."""
    run.report.would_redrive += 1
    so_far = ""
    if run.counts is not None:
        made = run.counts.count(RedriveKey(event_digest(letter.event), run.deliver.target_of(letter)))
        so_far = f" (redriven {made} of {run.max_redrives} times)" if made else ""
    run.report.lines.append(f"  {letter.describe()}  [{_origin(letter)}]{so_far}{_why(letter)}")


def _hand_on(run: _Run, letter: DeadLetter, *, fresh: bool) -> bool:
    """Deliver or park one letter and delete it; False when it stays in its queue."""
    report = run.report
    key = RedriveKey(event_digest(letter.event), run.deliver.target_of(letter))
    if key in run.done:
        run.sqs.delete_message(QueueUrl=letter.queue_url, ReceiptHandle=letter.receipt_handle)
        report.dropped += 1
        report.lines.append(f"  dropped {letter.describe()}: a second dead letter of an event handled above")
        return True
    made: int | None = None
    if run.counts is not None:
        if fresh:
            run.counts.forget(key)
        made = run.counts.claim(key, run.max_redrives, shown_event=letter.describe(), error=letter.error)
        if made is None:
            return _park(run, letter, key)
    try:
        where = run.deliver(letter)
    except CliError as error:
        if made is not None and run.counts is not None:
            run.counts.release(key)
        report.failed += 1
        report.lines.append(f"  NOT redriven {letter.describe()}: {error}{_why(letter)}")
        return False
    run.sqs.delete_message(QueueUrl=letter.queue_url, ReceiptHandle=letter.receipt_handle)
    run.done.add(key)
    report.handed_on[key.digest] = letter.describe()
    report.redriven += 1
    count = ""
    if made is not None:
        count = f" (redrive {made} of {run.max_redrives})"
        if made > 1:
            report.failed_again += 1
            count = f" (FAILED AGAIN after {made - 1} redrive(s); redrive {made} of {run.max_redrives})"
    report.lines.append(f"  {letter.describe()} -> {where}{count}{_why(letter)}")
    return True


def _park(run: _Run, letter: DeadLetter, key: RedriveKey) -> bool:
    try:
        queue_url = run.deliver.park(letter, run.max_redrives)
    except CliError as error:
        run.report.failed += 1
        run.report.lines.append(f"  NOT parked {letter.describe()}: {error}{_why(letter)}")
        return False
    run.sqs.delete_message(QueueUrl=letter.queue_url, ReceiptHandle=letter.receipt_handle)
    run.done.add(key)
    run.report.parked += 1
    last = shown(letter.error) if letter.error else "unknown"
    run.report.lines.append(
        f"  PARKED {letter.describe()} [{_origin(letter)}] after {run.max_redrives} redrive(s), "
        f"in {queue_url.rsplit('/', 1)[-1]}; last error: {last}"
    )
    return True


def print_redrive(report: RedriveReport, dry_run: bool) -> None:
    verb = "would redrive" if dry_run else "redrove"
    count = report.would_redrive if dry_run else report.redriven
    tail = f", {report.failed_again} failed again" if report.failed_again else ""
    tail += f", {report.parked} parked" if report.parked else ""
    tail += f", {report.failed} failed (left queued)" if report.failed else ""
    tail += f", {report.dropped} duplicate(s) dropped" if report.dropped else ""
    tail += f", {report.skipped} left alone" if report.skipped else ""
    print(f"{verb} {count} event(s){tail}")
    for line in report.lines:
        print(line)
    if report.uncounted and not dry_run:
        print("  (redrives not counted and nothing parked: no calls table known; --stack, --local or --table)")
