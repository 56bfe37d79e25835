"""Dead letters in the shapes AWS writes them, so `voicebus redrive` reads local ones as deployed ones.

Two paths, as in AWS: a function that failed every attempt goes to its on-failure
destination as Lambda's invocation record; an event the rule could not deliver at
all goes to the rule's dead-letter queue as the event itself, with EventBridge's
message attributes saying which rule, which target and why.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3

# What EventBridge puts in ERROR_CODE when the call to the target itself failed.
DELIVERY_ERROR_CODE = "SDK_CLIENT_ERROR"
# SQS message attribute values are limited in size; EventBridge truncates its message too.
MAX_ERROR_MESSAGE = 1000


@dataclass(frozen=True)
class RuleTarget:
    """One rule delivering to one function: what both dead-letter paths name."""

    function: str  # logical id
    event_name: str  # the function's Events key, e.g. Telnyx
    rule_arn: str
    target_arn: str  # the function ARN the rule targets (the alias ARN with AutoPublishAlias)
    function_arn: str  # unqualified
    region: str
    retries: int  # EventInvokeConfig.MaximumRetryAttempts
    failure_queue_url: str | None  # EventInvokeConfig's OnFailure destination
    dead_letter_queue_url: str | None  # the rule's DeadLetterConfig

    @property
    def key(self) -> str:
        return f"{self.function}/{self.event_name}"


def function_arn(region: str, account: str, physical_name: str) -> str:
    return f"arn:aws:lambda:{region}:{account}:function:{physical_name}"


def invocation_record(
    target: RuleTarget, event: dict[str, Any], attempts: int, error_type: str, error_message: str
) -> dict[str, Any]:
    """Lambda's on-failure destination record for an asynchronous invocation whose retries ran out."""
    return {
        "version": "1.0",
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "functionArn": f"{target.function_arn}:$LATEST",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": attempts,
        },
        "requestPayload": event,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {"errorMessage": error_message, "errorType": error_type},
    }


def rule_attributes(target: RuleTarget, error_code: str, error_message: str) -> dict[str, Any]:
    """EventBridge's message attributes on a rule dead letter."""
    values = {
        "RULE_ARN": target.rule_arn,
        "TARGET_ARN": target.target_arn,
        "ERROR_CODE": error_code,
        "ERROR_MESSAGE": error_message[:MAX_ERROR_MESSAGE] or "-",
    }
    return {name: {"DataType": "String", "StringValue": value} for name, value in values.items()}


def send_failed_invocation(
    target: RuleTarget, event: dict[str, Any], attempts: int, error_type: str, error_message: str
) -> str | None:
    """Lambda's path; returns the queue URL written to (None when the function has no destination)."""
    if target.failure_queue_url is None:
        return None
    record = invocation_record(target, event, attempts, error_type, error_message)
    boto3.client("sqs").send_message(QueueUrl=target.failure_queue_url, MessageBody=json.dumps(record))
    return target.failure_queue_url


def send_undelivered(target: RuleTarget, body: str, error_message: str, error_code: str = DELIVERY_ERROR_CODE) -> str:
    """EventBridge's path: the event as it was (`body`), with the rule's attributes; returns the queue URL."""
    if target.dead_letter_queue_url is None:
        raise DeadLetterError(f"{target.key} has no DeadLetterConfig; the event is lost: {error_message}")
    boto3.client("sqs").send_message(
        QueueUrl=target.dead_letter_queue_url,
        MessageBody=body,
        MessageAttributes=rule_attributes(target, error_code, error_message),
    )
    return target.dead_letter_queue_url


class DeadLetterError(RuntimeError):
    """A dead letter could not be written anywhere."""
