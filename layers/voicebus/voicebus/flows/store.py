"""The call's `flow` lane in DynamoDB: read with the call's status, written in event order.

Writes go through `CallStore.advance_lane`, so a lane written by a later event is
never overwritten by an earlier one. Reads take only the `flow` and `status` lanes
(`CallStore.lanes`): `CallStore.get_call` would also query the call's recordings.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from voicebus.calls.items import EventRef
from voicebus.calls.records import CallStatus
from voicebus.calls.store import CallStore
from voicebus.flows.position import FlowState, StoredFlowState

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

FLOW_LANE = "flow"
REJECTION_RANK = 1
"""A refused command is added to the lane by the same event that wrote it: a higher rank lets it through."""


@dataclass(frozen=True)
class CallFlowView:
    """What the engine needs to know about a call before deciding."""

    state: StoredFlowState | None
    hung_up: bool


class FlowStateStore:
    """Reads and order-safe writes of the `flow` lane; one per container."""

    def __init__(self, calls: CallStore) -> None:
        self._calls = calls

    @classmethod
    def from_env(cls, client: DynamoDBClient, environ: Mapping[str, str] | None = None) -> FlowStateStore:
        return cls(CallStore.from_env(client, os.environ if environ is None else environ))

    def read(self, call_control_id: str) -> CallFlowView:
        lanes = self._calls.lanes(call_control_id, FLOW_LANE, "status")
        status = lanes.get("status")
        hung_up = isinstance(status, dict) and status.get("value") == CallStatus.HUNG_UP.value
        lane = lanes.get(FLOW_LANE)
        return CallFlowView(StoredFlowState.model_validate(lane) if lane is not None else None, hung_up)

    def record_feature(self, call_control_id: str, lane: str, fields: Mapping[str, Any], ref: EventRef) -> None:
        """A feature an accepted command changed without a webhook to say so (noise suppression, ...)."""
        self._calls.advance_lane(call_control_id, lane, fields, ref)

    def write(self, call_control_id: str, state: FlowState, ref: EventRef, *, rank: int = 0) -> bool:
        """Set the lane to `state` unless a later event already moved it; False when this event is too late."""
        return self._calls.advance_lane(call_control_id, FLOW_LANE, state.lane_fields(), ref, rank)
