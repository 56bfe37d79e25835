"""The call's `flow` lane in DynamoDB: read with the call's status, written in event order.

Writes go through `CallStore.advance_lane`, so a lane written by a later event is
never overwritten by an earlier one. The read is a projection of the call's
STATE item (`flow` and `status` only, strongly consistent): `CallStore.get_call`
would also query the call's recordings, and its record does not keep raw lanes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer

from voicebus import settings
from voicebus.flows.position import FlowState, StoredFlowState
from voicebus.state import STATE_SK, CallStatus, CallStore, EventRef, call_pk

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

FLOW_LANE = "flow"
REJECTION_RANK = 1
"""A refused command is added to the lane by the same event that wrote it: a higher rank lets it through."""

_DESERIALIZER = TypeDeserializer()


@dataclass(frozen=True)
class CallFlowView:
    """What the engine needs to know about a call before deciding."""

    state: StoredFlowState | None
    hung_up: bool


class FlowStateStore:
    """Reads and order-safe writes of the `flow` lane; one per container."""

    def __init__(self, calls: CallStore, client: DynamoDBClient, table_name: str) -> None:
        self._calls = calls
        self._client = client
        self._table = table_name

    @classmethod
    def from_env(cls, client: DynamoDBClient, environ: Mapping[str, str] | None = None) -> FlowStateStore:
        environ = os.environ if environ is None else environ
        return cls(CallStore.from_env(client, environ), client, settings.require("CALLS_TABLE_NAME", environ))

    def read(self, call_control_id: str) -> CallFlowView:
        response = self._client.get_item(
            TableName=self._table,
            Key={"pk": {"S": call_pk(call_control_id)}, "sk": {"S": STATE_SK}},
            ProjectionExpression="#flow, #status",
            ExpressionAttributeNames={"#flow": FLOW_LANE, "#status": "status"},
            ConsistentRead=True,
        )
        item = response.get("Item", {})
        lane = _plain(_DESERIALIZER.deserialize(item[FLOW_LANE])) if FLOW_LANE in item else None
        status = _plain(_DESERIALIZER.deserialize(item["status"])) if "status" in item else None
        hung_up = isinstance(status, dict) and status.get("value") == CallStatus.HUNG_UP.value
        return CallFlowView(StoredFlowState.model_validate(lane) if lane is not None else None, hung_up)

    def write(self, call_control_id: str, state: FlowState, ref: EventRef, *, rank: int = 0) -> bool:
        """Set the lane to `state` unless a later event already moved it; False when this event is too late."""
        return self._calls.advance_lane(call_control_id, FLOW_LANE, state.lane_fields(), ref, rank)


def _plain(value: Any) -> Any:
    """DynamoDB numbers back to int or float."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | set):
        return [_plain(item) for item in value]
    return value
