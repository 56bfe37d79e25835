"""Per-call state in DynamoDB, correct under duplicate and out-of-order delivery.

One table, keyed `pk` / `sk` (see the README's "Call state" section):

    pk = CALL#<call_control_id>   sk = STATE                    the call's current state
                                  sk = EVENT#<occurred_at>#<id>  its timeline, one item per event
                                  sk = RECORDING#<recording_id>  one item per recording
                                  sk = TRANSCRIPT#<occurred_at>#<id>  live transcript segments
                                  sk = COMMAND#<occurred_at>#<command_id>  commands sent, and the answers

Every facet of a call that events change (its status, its client_state, each media
feature) is a *lane*: a map holding the facet's value and the (occurred_at, rank,
event id) of the event that set it. A lane is written by one conditional UpdateItem
that succeeds only when the event is newer than what the lane holds, so a late or
repeated event never moves state backwards, and no write reads first.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from voicebus import config
from voicebus.calls.commands_log import COMMAND_SK_PREFIX, CommandEntry
from voicebus.calls.records import CallRecord, Feature, TimelineEntry

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

STATE_SK = "STATE"
DEFAULT_RETENTION_DAYS = 30
_SERIALIZER = TypeSerializer()
_DESERIALIZER = TypeDeserializer()


@dataclass(frozen=True)
class EventRef:
    """Which event a write comes from: its order among the call's events."""

    event_id: str
    event_type: str
    occurred_at: str  # events.occurred_key(): fixed-width UTC, compares as text


def call_pk(call_control_id: str) -> str:
    return f"CALL#{call_control_id}"


def _attribute(value: Any) -> dict[str, Any]:
    """DynamoDB's typed form; floats become Decimal as DynamoDB requires."""
    serialized: dict[str, Any] = _SERIALIZER.serialize(_decimals(value))  # type: ignore[assignment]
    return serialized


def _decimals(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {key: _decimals(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_decimals(item) for item in value]
    return value


def _plain(value: Any) -> Any:
    """Back from DynamoDB: Decimals to int or float."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | set):
        return [_plain(item) for item in value]
    return value


def _item(raw: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _plain(_DESERIALIZER.deserialize(value)) for key, value in raw.items()}


def _recording(item: dict[str, Any]) -> dict[str, Any]:
    """The recording lane (order-safe facts) merged with its order-free attributes (archive, transcript)."""
    recording_id = item["sk"].removeprefix("RECORDING#")
    lane = item.get("recording") or {"recording_id": recording_id, "status": "pending", "at": ""}
    extra = {name: value for name, value in item.items() if name not in {"pk", "sk", "recording", "expires_at"}}
    return {**lane, **extra}


class CallStore:
    """Reads and order-safe writes of call records; one per container."""

    def __init__(
        self,
        client: DynamoDBClient,
        table_name: str,
        retention_seconds: int = DEFAULT_RETENTION_DAYS * 86400,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._table = table_name
        self._retention = retention_seconds
        self._clock = clock

    @classmethod
    def from_env(cls, client: DynamoDBClient, environ: Mapping[str, str] | None = None) -> CallStore:
        environ = os.environ if environ is None else environ
        days = config.integer(
            "CALL_RECORD_RETENTION_DAYS", DEFAULT_RETENTION_DAYS, minimum=1, maximum=3650, environ=environ
        )
        return cls(client, config.require("CALLS_TABLE_NAME", environ), days * 86400)

    def _expires_at(self) -> int:
        return int(self._clock()) + self._retention

    # ------------------------------------------------------------------ writes

    def append_timeline(self, pk: str, ref: EventRef) -> None:
        """One item per event; a duplicate rewrites the same item with the same values."""
        self._client.put_item(
            TableName=self._table,
            Item={
                "pk": _attribute(pk),
                "sk": _attribute(f"EVENT#{ref.occurred_at}#{ref.event_id}"),
                "event_id": _attribute(ref.event_id),
                "event_type": _attribute(ref.event_type),
                "occurred_at": _attribute(ref.occurred_at),
                "expires_at": _attribute(self._expires_at()),
            },
        )

    def record_identity(self, call_control_id: str, facts: Mapping[str, str | None]) -> None:
        """Set-once facts (ids, parties, lifecycle times): the first value written stays."""
        present = {name: value for name, value in facts.items() if value}
        names = {f"#f{index}": name for index, name in enumerate(present)}
        values = {f":f{index}": _attribute(value) for index, value in enumerate(present.values())}
        assignments = [f"{alias} = if_not_exists({alias}, :f{index})" for index, alias in enumerate(names)]
        self._client.update_item(
            TableName=self._table,
            Key=self._state_key(call_control_id),
            UpdateExpression="SET " + ", ".join([*assignments, "call_control_id = :id", "expires_at = :exp"]),
            ExpressionAttributeNames=names or None,  # type: ignore[arg-type]
            ExpressionAttributeValues={
                **values,
                ":id": _attribute(call_control_id),
                ":exp": _attribute(self._expires_at()),
            },
        )

    def advance_lane(
        self, call_control_id: str, lane: str, fields: Mapping[str, Any], ref: EventRef, rank: int = 0
    ) -> bool:
        """Set `lane` to `fields` unless a later event already did; False when this one is stale."""
        value = {**fields, "at": ref.occurred_at, "event_id": ref.event_id, "event_type": ref.event_type, "rank": rank}
        return self._conditional_lane_write(self._state_key(call_control_id), lane, value, ref, rank)

    def put_recording(self, call_control_id: str, recording_id: str, fields: Mapping[str, Any], ref: EventRef) -> bool:
        """A recording's own item, updated in event order like a lane."""
        key = {"pk": _attribute(call_pk(call_control_id)), "sk": _attribute(f"RECORDING#{recording_id}")}
        value = {**fields, "recording_id": recording_id, "at": ref.occurred_at, "event_id": ref.event_id}
        value.update({"event_type": ref.event_type, "rank": 0})
        return self._conditional_lane_write(key, "recording", value, ref, 0)

    def update_recording(self, call_control_id: str, recording_id: str, fields: Mapping[str, Any]) -> None:
        """Add facts to a recording that do not depend on event order (where it was archived, its transcript).

        Creates the item if its call.recording.saved has not been recorded yet: events arrive in any order.
        """
        names = {f"#f{index}": name for index, name in enumerate(fields)}
        values = {f":f{index}": _attribute(value) for index, value in enumerate(fields.values())}
        assignments = [f"{alias} = :f{index}" for index, alias in enumerate(names)]
        self._client.update_item(
            TableName=self._table,
            Key={"pk": _attribute(call_pk(call_control_id)), "sk": _attribute(f"RECORDING#{recording_id}")},
            UpdateExpression="SET " + ", ".join([*assignments, "expires_at = :exp"]),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={**values, ":exp": _attribute(self._expires_at())},
        )

    def recording(self, call_control_id: str, recording_id: str) -> dict[str, Any] | None:
        """One recording as `CallRecord.recordings` shows it, or None."""
        response = self._client.get_item(
            TableName=self._table,
            Key={"pk": _attribute(call_pk(call_control_id)), "sk": _attribute(f"RECORDING#{recording_id}")},
            ConsistentRead=True,
        )
        return _recording(_item(response["Item"])) if "Item" in response else None

    def append_transcript_segment(self, call_control_id: str, ref: EventRef, segment: Mapping[str, Any]) -> None:
        """A final live-transcription segment, keyed by its event: in order, and a duplicate rewrites itself."""
        self._client.put_item(
            TableName=self._table,
            Item={
                "pk": _attribute(call_pk(call_control_id)),
                "sk": _attribute(f"TRANSCRIPT#{ref.occurred_at}#{ref.event_id}"),
                "occurred_at": _attribute(ref.occurred_at),
                "event_id": _attribute(ref.event_id),
                **{name: _attribute(value) for name, value in segment.items()},
                "expires_at": _attribute(self._expires_at()),
            },
        )

    def transcript_segments(self, call_control_id: str) -> list[dict[str, Any]]:
        """The call's final live-transcription segments, in `occurred_at` order."""
        return self._query(call_pk(call_control_id), "TRANSCRIPT#")

    def record_command(self, call_control_id: str, entry: CommandEntry) -> None:
        """One item per command sent, secrets redacted; a redelivery rewrites the same item (no read)."""
        self._client.put_item(
            TableName=self._table,
            Item={
                "pk": _attribute(call_pk(call_control_id)),
                "sk": _attribute(entry.sort_key),
                **{name: _attribute(value) for name, value in entry.attributes().items()},
                "expires_at": _attribute(self._expires_at()),
            },
        )

    def commands(self, call_control_id: str) -> list[dict[str, Any]]:
        """The commands sent to the call and Telnyx's answers, in the order of the events that caused them."""
        items = self._query(call_pk(call_control_id), COMMAND_SK_PREFIX)
        items.sort(key=lambda item: (item["occurred_at"], item.get("seq", 0)))
        hidden = {"pk", "sk", "expires_at"}
        return [{name: value for name, value in item.items() if name not in hidden} for item in items]

    def link(self, call_control_id: str, name: str, value: Mapping[str, Any]) -> None:
        """Record where something derived from the call lives (an archived transcript, say).

        Not order-sensitive: the same input always produces the same link.
        """
        self._client.update_item(
            TableName=self._table,
            Key=self._state_key(call_control_id),
            UpdateExpression="SET #name = :value, expires_at = :exp",
            ExpressionAttributeNames={"#name": name},
            ExpressionAttributeValues={":value": _attribute(dict(value)), ":exp": _attribute(self._expires_at())},
        )

    def _state_key(self, call_control_id: str) -> dict[str, Any]:
        return {"pk": _attribute(call_pk(call_control_id)), "sk": _attribute(STATE_SK)}

    def _conditional_lane_write(
        self, key: dict[str, Any], lane: str, value: Mapping[str, Any], ref: EventRef, rank: int
    ) -> bool:
        # Newer wins by (occurred_at, rank, event id): a total order, so any shuffle of the
        # same events converges to the same state, and a duplicate never writes.
        condition = (
            "attribute_not_exists(#lane) OR #lane.#at < :at"
            " OR (#lane.#at = :at AND (#lane.#rank < :rank OR (#lane.#rank = :rank AND #lane.#eid < :eid)))"
        )
        try:
            self._client.update_item(
                TableName=self._table,
                Key=key,
                UpdateExpression="SET #lane = :value, expires_at = :exp",
                ConditionExpression=condition,
                ExpressionAttributeNames={"#lane": lane, "#at": "at", "#rank": "rank", "#eid": "event_id"},
                ExpressionAttributeValues={
                    ":value": _attribute(dict(value)),
                    ":at": _attribute(ref.occurred_at),
                    ":rank": _attribute(rank),
                    ":eid": _attribute(ref.event_id),
                    ":exp": _attribute(self._expires_at()),
                },
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    # ------------------------------------------------------------------ reads

    def get_call(self, call_control_id: str) -> CallRecord | None:
        """The call's current state with its recordings, or None when unknown."""
        response = self._client.get_item(
            TableName=self._table, Key=self._state_key(call_control_id), ConsistentRead=True
        )
        if "Item" not in response:
            return None
        return self._record(_item(response["Item"]), self._recordings(call_control_id))

    def lanes(self, call_control_id: str, *names: str) -> dict[str, Any]:
        """Some lanes of the call as stored (a projected, consistent read of its STATE item).

        For code that acts on one facet (the IVR's `flow` lane) without reading the whole record.
        """
        response = self._client.get_item(
            TableName=self._table,
            Key=self._state_key(call_control_id),
            ProjectionExpression=", ".join(f"#l{index}" for index in range(len(names))),
            ExpressionAttributeNames={f"#l{index}": name for index, name in enumerate(names)},
            ConsistentRead=True,
        )
        return _item(response.get("Item", {}))

    def timeline(self, call_control_id: str) -> list[TimelineEntry]:
        """Every event recorded for the call, in `occurred_at` order."""
        return [TimelineEntry.model_validate(item) for item in self._query(call_pk(call_control_id), "EVENT#")]

    def calls_in_session(self, call_session_id: str) -> list[CallRecord]:
        """Every leg of a call session (the by_call_session index)."""
        records = []
        paginator = self._client.get_paginator("query")
        pages = paginator.paginate(
            TableName=self._table,
            IndexName="by_call_session",
            KeyConditionExpression="call_session_id = :sid",
            ExpressionAttributeValues={":sid": _attribute(call_session_id)},
        )
        for page in pages:
            for raw in page.get("Items", []):
                item = _item(raw)
                if item.get("sk") == STATE_SK:
                    records.append(self._record(item, self._recordings(item["call_control_id"])))
        return records

    def _recordings(self, call_control_id: str) -> list[dict[str, Any]]:
        return [_recording(item) for item in self._query(call_pk(call_control_id), "RECORDING#")]

    def _query(self, pk: str, prefix: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        paginator = self._client.get_paginator("query")
        pages = paginator.paginate(
            TableName=self._table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={":pk": _attribute(pk), ":prefix": _attribute(prefix)},
            ConsistentRead=True,
        )
        for page in pages:
            items.extend(_item(raw) for raw in page.get("Items", []))
        return items

    @staticmethod
    def _record(item: dict[str, Any], recordings: list[dict[str, Any]]) -> CallRecord:
        features = {feature: item[feature.value] for feature in Feature if feature.value in item}
        return CallRecord.model_validate(
            {
                # A command may write a lane before any webhook of the call: the key still says whose it is.
                "call_control_id": item["pk"].removeprefix("CALL#"),
                **item,
                "status": item.get("status"),
                "features": features,
                "recordings": recordings,
            }
        )
