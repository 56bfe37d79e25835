"""Dead letters as SQS holds them, in the two shapes AWS writes (and the parked shape).

- A rule's dead-letter queue (EventBridge could not deliver): the body is the event as
  the rule matched it; message attributes `RULE_ARN`, `TARGET_ARN`, `ERROR_CODE` and
  `ERROR_MESSAGE` say which rule, which target and why.
- Lambda's on-failure destination (after its retries): the body is `{"requestContext":
  {"functionArn", "condition", ...}, "requestPayload": <event>, "responsePayload":
  {"errorMessage", "errorType"}}`.
- The parking queue (`voicebus redrive` gave up): the rule dead-letter shape, with
  `ERROR_CODE` REDRIVES_EXHAUSTED, the last error as `ERROR_MESSAGE` and `REDRIVES`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3

from voicebus_cli.redrive_counts import shown

# ERROR_CODE of a parked event; its ERROR_MESSAGE is the last error, REDRIVES how many it had.
PARKED_ERROR_CODE = "REDRIVES_EXHAUSTED"


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
        """`<detail-type> <data.id>`, escaped and cut: a poison id may be 2,000 characters or a lone surrogate."""
        detail = self.event.get("detail")
        data = detail.get("data") if isinstance(detail, dict) else None
        event_id = data.get("id") if isinstance(data, dict) else self.event.get("id")
        return f"{shown(self.event.get('detail-type', '?'), 80)} {shown(event_id, 80)}"


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
    codes = ("ERROR_MESSAGE",) if attributes.get("ERROR_CODE") == PARKED_ERROR_CODE else ("ERROR_CODE", "ERROR_MESSAGE")
    error = ": ".join(str(attributes[name]) for name in codes if attributes.get(name))
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
