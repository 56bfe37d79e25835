"""What a call record holds, as your own code reads it: status, lanes, recordings, timeline.

`voicebus.calls.store.CallStore` writes these facts in event order and reads them
back as these models, built here from the items it read; nothing here calls DynamoDB.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class CallStatus(StrEnum):
    INITIATED = "initiated"
    ANSWERED = "answered"
    BRIDGED = "bridged"
    HUNG_UP = "hung_up"


# Within one timestamp, a call only moves forward through these.
STATUS_RANK = {CallStatus.INITIATED: 1, CallStatus.ANSWERED: 2, CallStatus.BRIDGED: 3, CallStatus.HUNG_UP: 4}


class Feature(StrEnum):
    """The media features and controls whose status a call record keeps."""

    PLAYBACK = "playback"
    SPEAK = "speak"
    RECORDING = "recording"
    FORK = "fork"
    STREAMING = "streaming"
    TRANSCRIPTION = "transcription"
    REFER = "refer"
    SIPREC = "siprec"
    NOISE_SUPPRESSION = "noise_suppression"
    SUPERVISOR_ROLE = "supervisor_role"
    GATHER = "gather"
    DTMF = "dtmf"


class Lane(BaseModel):
    """A facet's latest value and the event that set it."""

    model_config = {"extra": "allow"}

    at: str
    event_id: str
    event_type: str
    rank: int = 0


class ClientStateLane(Lane):
    raw: str
    kind: str
    value: Any = None
    unstorable: str | None = None  # why `value` was not stored (DynamoDB could not hold it)


class StatusLane(Lane):
    value: CallStatus
    hangup_cause: str | None = None
    hangup_source: str | None = None
    sip_hangup_cause: str | None = None


class TimelineEntry(BaseModel):
    event_id: str
    event_type: str
    occurred_at: str


class RecordingRecord(BaseModel):
    model_config = {"extra": "allow"}

    recording_id: str
    status: str
    at: str


class CallRecord(BaseModel):
    """A call as the user's own code reads it."""

    call_control_id: str
    call_session_id: str | None = None
    call_leg_id: str | None = None
    connection_id: str | None = None
    from_number: str | None = None
    to_number: str | None = None
    direction: str | None = None
    initiated_at: str | None = None
    answered_at: str | None = None
    ended_at: str | None = None
    status: StatusLane | None = None
    client_state: ClientStateLane | None = None
    features: dict[Feature, Lane] = Field(default_factory=dict)
    recordings: list[RecordingRecord] = Field(default_factory=list)
    transcript: dict[str, Any] | None = None  # where the live transcript was archived, once the call ended


def recording_from_item(item: dict[str, Any]) -> dict[str, Any]:
    """The recording lane (order-safe facts) merged with its order-free attributes (archive, transcript)."""
    recording_id = item["sk"].removeprefix("RECORDING#")
    lane = item.get("recording") or {"recording_id": recording_id, "status": "pending", "at": ""}
    extra = {name: value for name, value in item.items() if name not in {"pk", "sk", "recording", "expires_at"}}
    return {**lane, **extra}


def call_from_items(item: dict[str, Any], recordings: list[dict[str, Any]]) -> CallRecord:
    """The call as `CallStore.get_call` returns it: its STATE item, with its recordings."""
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
