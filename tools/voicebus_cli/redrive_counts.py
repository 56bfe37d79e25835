"""How often `voicebus redrive` has handed each event to each target, kept across runs.

A dead letter is written by Lambda or EventBridge, not by voicebus, so nothing on the
message can carry a count from one redrive to the next. The count lives in the calls
table instead, one item per event and target, keyed by a digest of what identifies the
event whichever way it comes back (its source, detail-type and detail: the bus id
changes when an event is put on the bus again, and a poison id may be no valid key):

    pk = REDRIVE#<sha256 of the event>   sk = TARGET#<function name, or bus:NAME>

One conditional UpdateItem both counts a redrive and refuses the one past the limit,
so two operators redriving at once cannot exceed it. Items expire (TTL `expires_at`)
REDRIVE_MEMORY_DAYS after the last redrive, longer than SQS keeps any dead letter.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

import boto3

REDRIVE_MEMORY_DAYS = 30
# Shown text (ids, errors) is escaped to ASCII and cut: poison values are what redrive handles.
SHOWN_CHARACTERS = 300
NAMES = {"#count": "redrives", "#event": "event", "#error": "last_error", "#expires": "expires_at"}


def shown(value: object, limit: int = SHOWN_CHARACTERS) -> str:
    """Printable, storable text for any value: lone surrogates and control characters escaped."""
    text = json.dumps(str(value))[1:-1]
    return text if len(text) <= limit else text[: limit - 3] + "..."


def event_digest(event: dict[str, Any]) -> str:
    """The event's identity across redrives: not its bus `id` or `time`, which `--to-bus` may renew."""
    identity = [event.get("source"), event.get("detail-type"), event.get("detail")]
    canonical = json.dumps(identity, sort_keys=True, ensure_ascii=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class RedriveKey:
    """One event at one target."""

    digest: str
    target: str  # the function's name, or `bus:<name>` for --to-bus

    def item_key(self) -> dict[str, Any]:
        return {"pk": {"S": f"REDRIVE#{self.digest}"}, "sk": {"S": f"TARGET#{self.target}"}}


class RedriveCounts:
    """Redrives per event and target, in the calls table."""

    def __init__(self, table_name: str, client: Any = None) -> None:
        self._table = table_name
        self._client = client or boto3.client("dynamodb")

    def count(self, key: RedriveKey) -> int:
        """Redrives so far (0 for an event never redriven)."""
        item = self._client.get_item(TableName=self._table, Key=key.item_key(), ConsistentRead=True).get("Item")
        return int(item["redrives"]["N"]) if item and "redrives" in item else 0

    def claim(self, key: RedriveKey, limit: int, *, shown_event: str, error: str | None) -> int | None:
        """Count one more redrive and return the new count; None when `limit` redrives were made already."""
        values: dict[str, Any] = {
            ":one": {"N": "1"},
            ":limit": {"N": str(limit)},
            ":event": {"S": shown_event},
            ":error": {"S": shown(error or "-", 1000)},
            ":expires": {"N": str(int(time.time()) + REDRIVE_MEMORY_DAYS * 86400)},
        }
        try:
            answer = self._client.update_item(
                TableName=self._table,
                Key=key.item_key(),
                UpdateExpression="ADD #count :one SET #event = :event, #error = :error, #expires = :expires",
                ConditionExpression="attribute_not_exists(#count) OR #count < :limit",
                ExpressionAttributeNames=NAMES,
                ExpressionAttributeValues=values,
                ReturnValues="UPDATED_NEW",
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return None
        return int(answer["Attributes"]["redrives"]["N"])

    def release(self, key: RedriveKey) -> None:
        """Take back a counted redrive whose hand-on failed: the event never reached its target."""
        with contextlib.suppress(self._client.exceptions.ConditionalCheckFailedException):
            self._client.update_item(
                TableName=self._table,
                Key=key.item_key(),
                UpdateExpression="ADD #count :minus",
                ConditionExpression="#count > :zero",
                ExpressionAttributeNames={"#count": "redrives"},
                ExpressionAttributeValues={":minus": {"N": "-1"}, ":zero": {"N": "0"}},
            )

    def forget(self, key: RedriveKey) -> None:
        """Start counting afresh: a parked event redriven after a fix gets its full allowance again."""
        self._client.delete_item(TableName=self._table, Key=key.item_key())
