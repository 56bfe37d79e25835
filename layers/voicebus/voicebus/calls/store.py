"""Per-call state in DynamoDB, correct under duplicate and out-of-order delivery.

One table, keyed `pk` / `sk` (see the README's "Call state" section):

    pk = CALL#<call_control_id>   sk = STATE                    the call's current state
                                  sk = EVENT#<occurred_at>#<id>  its timeline, one item per event
                                  sk = RECORDING#<recording_id>  one item per recording
                                  sk = TRANSCRIPT#<occurred_at>#<id>  live transcript segments
                                  sk = COMMAND#<occurred_at>#<command_id>  commands sent, and the answers

    pk = CONFERENCE#<id> / SESSION#<id>     sk = EVENT#...   timelines of events with no call id
    pk = UNATTRIBUTED#<yyyy-mm-ddThh>#<0-7> sk = EVENT#...   events with no id at all, spread (unattributed_pk)

Every facet of a call that events change (its status, its client_state, each media
feature) is a *lane*: a map holding the facet's value and the (occurred_at, rank,
event id) of the event that set it. All of an event's lanes and its set-once identity
facts go in one UpdateItem on the STATE item, conditional on the event being newer
than each lane; when it is not newer for all of them, DynamoDB returns the item as it
stands and the lanes it is still newer for are written next (`advance_lanes`). So a
late or repeated event never moves state backwards, an in-order event costs one write,
and no write reads first.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from voicebus import config
from voicebus.calls.commands_log import COMMAND_SK_PREFIX, CommandEntry
from voicebus.calls.items import (
    STATE_SK,
    UNATTRIBUTED_PREFIX,
    UNATTRIBUTED_SHARDS,
    EventRef,
    call_pk,
    from_item,
    to_attribute,
)
from voicebus.calls.records import CallRecord, TimelineEntry, call_from_items, recording_from_item
from voicebus.errors import RetryableError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

DEFAULT_RETENTION_DAYS = 30


def _newer(lane: Any, ref: EventRef, rank: int) -> bool:
    """The lane's order condition, on the lane as DynamoDB returned it (Python compares str as DynamoDB does)."""
    if not isinstance(lane, dict):
        return True
    held = (str(lane.get("at", "")), int(lane.get("rank", 0)), str(lane.get("event_id", "")))
    return held < (ref.occurred_at, rank, ref.event_id)


class LaneWriteError(RetryableError):
    """A lane write kept losing to concurrent writes (a bug: lanes only move forward, so it cannot loop)."""


@dataclass(frozen=True)
class LaneWrite:
    """One lane an event sets, and its rank among events of the same instant."""

    lane: str
    fields: dict[str, Any]
    rank: int = 0


@dataclass(frozen=True)
class LaneOutcome:
    """Which lanes the event set, and which a later event had already set (stale)."""

    written: list[str]
    stale: list[str]


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
                "pk": to_attribute(pk),
                "sk": to_attribute(f"EVENT#{ref.occurred_at}#{ref.event_id}"),
                "event_id": to_attribute(ref.event_id),
                "event_type": to_attribute(ref.event_type),
                "occurred_at": to_attribute(ref.occurred_at),
                "expires_at": to_attribute(self._expires_at()),
            },
        )

    def advance_lanes(
        self,
        call_control_id: str,
        lanes: Sequence[LaneWrite],
        ref: EventRef,
        identity: Mapping[str, str | None] | None = None,
    ) -> LaneOutcome:
        """Set each lane unless a later event already did, with the set-once `identity` facts, in one write.

        One conditional UpdateItem on the call's STATE item sets every lane the event is
        newer for (the condition is the AND of each lane's order condition) and, with
        `if_not_exists`, the identity facts: the first value written stays. When the
        condition fails, DynamoDB returns the item as it stands; the lanes this event is
        still newer for are written in another attempt (lanes only move forward, so a lane
        found newer stays newer), and when none is, only identity facts not yet there.
        """
        facts = {name: value for name, value in (identity or {}).items() if value}
        values = {
            write.lane: {
                **write.fields,
                "at": ref.occurred_at,
                "event_id": ref.event_id,
                "event_type": ref.event_type,
                "rank": write.rank,
            }
            for write in lanes
        }
        ranks = {write.lane: write.rank for write in lanes}
        always = {"call_control_id": call_control_id}
        return self._advance(self._state_key(call_control_id), values, ranks, ref, facts, always)

    def advance_lane(
        self, call_control_id: str, lane: str, fields: Mapping[str, Any], ref: EventRef, rank: int = 0
    ) -> bool:
        """Set `lane` to `fields` unless a later event already did; False when this one is stale."""
        outcome = self.advance_lanes(call_control_id, [LaneWrite(lane, dict(fields), rank)], ref)
        return lane in outcome.written

    def swap_lane(
        self,
        call_control_id: str,
        lane: str,
        fields: Mapping[str, Any],
        ref: EventRef,
        expected: Mapping[str, Any] | None,
    ) -> bool:
        """Compare-and-set: set `lane` only if it still holds `expected` (absent, when None); False otherwise.

        For a lane one state machine moves step by step (the IVR's `flow`): of two writers that
        read the same value, exactly one wins, and the other must read again (not "newer wins").
        """
        names = {"#lane": lane}
        value = {**fields, "at": ref.occurred_at, "event_id": ref.event_id, "event_type": ref.event_type, "rank": 0}
        attributes: dict[str, Any] = {
            ":v": to_attribute(value),
            ":exp": to_attribute(self._expires_at()),
            ":cid": to_attribute(call_control_id),
        }
        if expected is None:
            condition = "attribute_not_exists(#lane)"
        else:
            checks = []
            for index, (name, held) in enumerate(expected.items()):
                names[f"#e{index}"] = name
                attributes[f":e{index}"] = to_attribute(held)
                checks.append(f"#lane.#e{index} = :e{index}")
            condition = " AND ".join(checks) or "attribute_exists(#lane)"
        try:
            self._client.update_item(
                TableName=self._table,
                Key=self._state_key(call_control_id),
                UpdateExpression="SET #lane = :v, expires_at = :exp, call_control_id = :cid",
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=attributes,
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def put_recording(self, call_control_id: str, recording_id: str, fields: Mapping[str, Any], ref: EventRef) -> bool:
        """A recording's own item, updated in event order like a lane."""
        key = {"pk": to_attribute(call_pk(call_control_id)), "sk": to_attribute(f"RECORDING#{recording_id}")}
        value = {**fields, "recording_id": recording_id, "at": ref.occurred_at, "event_id": ref.event_id}
        value.update({"event_type": ref.event_type, "rank": 0})
        return "recording" in self._advance(key, {"recording": value}, {"recording": 0}, ref, {}, {}).written

    def update_recording(self, call_control_id: str, recording_id: str, fields: Mapping[str, Any]) -> None:
        """Add facts to a recording that do not depend on event order (where it was archived, its transcript).

        Creates the item if its call.recording.saved has not been recorded yet: events arrive in any order.
        """
        names = {f"#f{index}": name for index, name in enumerate(fields)}
        values = {f":f{index}": to_attribute(value) for index, value in enumerate(fields.values())}
        assignments = [f"{alias} = :f{index}" for index, alias in enumerate(names)]
        self._client.update_item(
            TableName=self._table,
            Key={"pk": to_attribute(call_pk(call_control_id)), "sk": to_attribute(f"RECORDING#{recording_id}")},
            UpdateExpression="SET " + ", ".join([*assignments, "expires_at = :exp"]),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={**values, ":exp": to_attribute(self._expires_at())},
        )

    def recording(self, call_control_id: str, recording_id: str) -> dict[str, Any] | None:
        """One recording as `CallRecord.recordings` shows it, or None."""
        response = self._client.get_item(
            TableName=self._table,
            Key={"pk": to_attribute(call_pk(call_control_id)), "sk": to_attribute(f"RECORDING#{recording_id}")},
            ConsistentRead=True,
        )
        return recording_from_item(from_item(response["Item"])) if "Item" in response else None

    def append_transcript_segment(self, call_control_id: str, ref: EventRef, segment: Mapping[str, Any]) -> None:
        """A final live-transcription segment, keyed by its event: in order, and a duplicate rewrites itself."""
        self._client.put_item(
            TableName=self._table,
            Item={
                "pk": to_attribute(call_pk(call_control_id)),
                "sk": to_attribute(f"TRANSCRIPT#{ref.occurred_at}#{ref.event_id}"),
                "occurred_at": to_attribute(ref.occurred_at),
                "event_id": to_attribute(ref.event_id),
                **{name: to_attribute(value) for name, value in segment.items()},
                "expires_at": to_attribute(self._expires_at()),
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
                "pk": to_attribute(call_pk(call_control_id)),
                "sk": to_attribute(entry.sort_key),
                **{name: to_attribute(value) for name, value in entry.attributes().items()},
                "expires_at": to_attribute(self._expires_at()),
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
            ExpressionAttributeValues={":value": to_attribute(dict(value)), ":exp": to_attribute(self._expires_at())},
        )

    def _state_key(self, call_control_id: str) -> dict[str, Any]:
        return {"pk": to_attribute(call_pk(call_control_id)), "sk": to_attribute(STATE_SK)}

    def _advance(
        self,
        key: dict[str, Any],
        values: Mapping[str, Mapping[str, Any]],
        ranks: Mapping[str, int],
        ref: EventRef,
        facts: Mapping[str, str],
        always: Mapping[str, str],
    ) -> LaneOutcome:
        pending = list(values)
        stale: list[str] = []
        current: dict[str, Any] | None = None
        for _ in range(len(values) + 2):  # each failed attempt drops at least one lane, or ends
            if current is not None:
                newer = [lane for lane in pending if _newer(current.get(lane), ref, ranks[lane])]
                stale += [lane for lane in pending if lane not in newer]
                pending = newer
                missing = {name: value for name, value in facts.items() if name not in current}
                if not pending and not missing:
                    return LaneOutcome([], stale)  # nothing left this event would change
                facts = missing if not pending else facts
            failed = self._try_advance(key, {lane: values[lane] for lane in pending}, ranks, ref, facts, always)
            if failed is None:
                return LaneOutcome(pending, stale)
            current = failed
        raise LaneWriteError(f"lanes {pending} of {key} kept changing under the write")

    def _try_advance(
        self,
        key: dict[str, Any],
        values: Mapping[str, Mapping[str, Any]],
        ranks: Mapping[str, int],
        ref: EventRef,
        facts: Mapping[str, str],
        always: Mapping[str, str],
    ) -> dict[str, Any] | None:
        """One UpdateItem; None when it was written, else the item as it stands (the condition failed)."""
        names: dict[str, str] = {}
        attributes: dict[str, Any] = {":exp": to_attribute(self._expires_at())}
        assignments = ["expires_at = :exp"]
        conditions = []
        for index, (lane, value) in enumerate(values.items()):
            alias, rank = f"#l{index}", f":r{index}"
            names[alias] = lane
            attributes[f":v{index}"] = to_attribute(dict(value))
            attributes[rank] = to_attribute(ranks[lane])
            assignments.append(f"{alias} = :v{index}")
            # Newer wins by (occurred_at, rank, event id): a total order, so any shuffle of the
            # same events converges to the same state, and a duplicate never writes.
            conditions.append(
                f"(attribute_not_exists({alias}) OR {alias}.#at < :at OR ({alias}.#at = :at AND"
                f" ({alias}.#rank < {rank} OR ({alias}.#rank = {rank} AND {alias}.#eid < :eid))))"
            )
        if conditions:
            names.update({"#at": "at", "#rank": "rank", "#eid": "event_id"})
            attributes.update({":at": to_attribute(ref.occurred_at), ":eid": to_attribute(ref.event_id)})
        for index, (name, fact) in enumerate(facts.items()):
            names[f"#f{index}"] = name
            attributes[f":f{index}"] = to_attribute(fact)
            assignments.append(f"#f{index} = if_not_exists(#f{index}, :f{index})")
        for index, (name, fact) in enumerate(always.items()):
            names[f"#a{index}"] = name
            attributes[f":a{index}"] = to_attribute(fact)
            assignments.append(f"#a{index} = :a{index}")
        request: dict[str, Any] = {
            "TableName": self._table,
            "Key": key,
            "UpdateExpression": "SET " + ", ".join(assignments),
            "ExpressionAttributeValues": attributes,
        }
        if names:
            request["ExpressionAttributeNames"] = names
        if conditions:
            request["ConditionExpression"] = " AND ".join(conditions)
            request["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        try:
            self._client.update_item(**request)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return from_item(error.response.get("Item", {}))  # type: ignore[arg-type]
            raise
        return None

    # ------------------------------------------------------------------ reads

    def get_call(self, call_control_id: str) -> CallRecord | None:
        """The call's current state with its recordings, or None when unknown."""
        response = self._client.get_item(
            TableName=self._table, Key=self._state_key(call_control_id), ConsistentRead=True
        )
        if "Item" not in response:
            return None
        return call_from_items(from_item(response["Item"]), self._recordings(call_control_id))

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
        return from_item(response.get("Item", {}))

    def timeline(self, call_control_id: str) -> list[TimelineEntry]:
        """Every event recorded for the call, in `occurred_at` order."""
        return [TimelineEntry.model_validate(item) for item in self._query(call_pk(call_control_id), "EVENT#")]

    def unattributed_timeline(self, hour: str) -> list[TimelineEntry]:
        """Events with no call, conference or session id that occurred in `hour` (2026-11-21T10), in order.

        One query per shard (`unattributed_pk`), merged.
        """
        entries = [
            TimelineEntry.model_validate(item)
            for shard in range(UNATTRIBUTED_SHARDS)
            for item in self._query(f"{UNATTRIBUTED_PREFIX}{hour[:13]}#{shard}", "EVENT#")
        ]
        return sorted(entries, key=lambda entry: (entry.occurred_at, entry.event_id))

    def calls_in_session(self, call_session_id: str) -> list[CallRecord]:
        """Every leg of a call session: the by_call_session index names them, each is then read whole.

        The index projects keys only (KEYS_ONLY): projecting every attribute made each write
        to a call's STATE item cost as much again on the index; legs per session are few.
        """
        legs: list[str] = []
        paginator = self._client.get_paginator("query")
        pages = paginator.paginate(
            TableName=self._table,
            IndexName="by_call_session",
            KeyConditionExpression="call_session_id = :sid",
            ExpressionAttributeValues={":sid": to_attribute(call_session_id)},
        )
        for page in pages:
            for raw in page.get("Items", []):
                item = from_item(raw)
                if item.get("sk") == STATE_SK:
                    legs.append(item["pk"].removeprefix("CALL#"))
        records = [self.get_call(leg) for leg in legs]
        return [record for record in records if record is not None]

    def _recordings(self, call_control_id: str) -> list[dict[str, Any]]:
        return [recording_from_item(item) for item in self._query(call_pk(call_control_id), "RECORDING#")]

    def _query(self, pk: str, prefix: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        paginator = self._client.get_paginator("query")
        pages = paginator.paginate(
            TableName=self._table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={":pk": to_attribute(pk), ":prefix": to_attribute(prefix)},
            ConsistentRead=True,
        )
        for page in pages:
            items.extend(from_item(raw) for raw in page.get("Items", []))
        return items
