"""The call's `flow` lane in DynamoDB: read with the call's status, moved by compare-and-set.

A flow's position moves one step at a time, so its lane is written only if it still
holds what the writer read (`seq` and `status`, `CallStore.swap_lane`): of two
events that answer the same position at the same instant, one moves the flow and
the other finds the lane changed, reads again, and (now stale) sends nothing.
Reads take only the `flow` and `status` lanes (`CallStore.lanes`).
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


@dataclass(frozen=True)
class CallFlowView:
    """What the engine needs to know about a call before deciding."""

    state: StoredFlowState | None
    hung_up: bool


def _claim(state: FlowState | None) -> dict[str, Any] | None:
    """What a write expects the lane to still hold: the position's seq and the flow's status."""
    return None if state is None else {"seq": state.seq, "status": state.status.value}


class FlowStateStore:
    """Reads and compare-and-set writes of the `flow` lane; one per container."""

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

    def write(self, call_control_id: str, state: FlowState, ref: EventRef, *, read: FlowState | None) -> bool:
        """Set the lane to `state` if it still holds what was `read` (None: no flow yet); False when it moved."""
        return self._calls.swap_lane(call_control_id, FLOW_LANE, state.lane_fields(), ref, _claim(read))
