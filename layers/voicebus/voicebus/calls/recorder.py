"""What each Telnyx event means for the call record: which lanes it moves, to what.

This is the one table to read to know what voicebus remembers of an event. Events
no family claims (call.hold, call.machine.*, conference.*, ...) still land on the
timeline; everything with a call_control_id also updates the call's identity and
its client_state. Which function records an event is voicebus.calls.families'
business: EVENT_EFFECTS has an entry for exactly the event types a family claims.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from voicebus.calls import client_state
from voicebus.calls.events import CallPayload, WebhookData, occurred_key
from voicebus.calls.items import EventRef, call_pk, unattributed_pk
from voicebus.calls.records import STATUS_RANK, CallStatus, Feature
from voicebus.calls.store import CallStore, LaneWrite

# What an event sets on one lane (the store's LaneWrite: lane, fields, rank).
LaneUpdate = LaneWrite


@dataclass(frozen=True)
class RecordedEvent:
    """What recording one event changed: useful to logs, tests and the functions that act next.

    `recorded` is False when the event reached a function of another family (through
    its second rule): that function acts on it, and the event's own family records it.
    """

    event_id: str
    event_type: str
    subject: str
    lanes_written: list[str] = field(default_factory=list)
    lanes_stale: list[str] = field(default_factory=list)
    recorded: bool = True

    @classmethod
    def unrecorded(cls, data: WebhookData) -> RecordedEvent:
        """An event this function acts on but leaves to its own family to record."""
        return cls(data.id, data.event_type, subject_key(data), recorded=False)


def _status(status: CallStatus, *detail_fields: str) -> Callable[[CallPayload], list[LaneUpdate]]:
    def effect(payload: CallPayload) -> list[LaneUpdate]:
        fields: dict[str, Any] = {"value": status.value}
        fields.update({name: getattr(payload, name) for name in detail_fields if getattr(payload, name)})
        return [LaneUpdate("status", fields, STATUS_RANK[status])]

    return effect


def _feature(feature: Feature, state: str, *detail_fields: str) -> Callable[[CallPayload], list[LaneUpdate]]:
    def effect(payload: CallPayload) -> list[LaneUpdate]:
        fields: dict[str, Any] = {"state": state}
        extra = payload.model_dump(by_alias=True, exclude_none=True)
        fields.update({name: extra[name] for name in detail_fields if name in extra})
        return [LaneUpdate(feature.value, fields)]

    return effect


# In voicebus.calls.families' order: call control, media, recording, fork, streaming,
# live transcription, refer, SIPREC.
EVENT_EFFECTS: dict[str, Callable[[CallPayload], list[LaneUpdate]]] = {
    "call.initiated": _status(CallStatus.INITIATED),
    "call.answered": _status(CallStatus.ANSWERED),
    "call.bridged": _status(CallStatus.BRIDGED),
    "call.hangup": _status(CallStatus.HUNG_UP, "hangup_cause", "hangup_source", "sip_hangup_cause"),
    "call.gather.ended": _feature(Feature.GATHER, "ended", "status", "digits"),
    "call.dtmf.received": _feature(Feature.DTMF, "received", "digit"),
    "call.playback.started": _feature(Feature.PLAYBACK, "started", "media_url", "media_name"),
    "call.playback.ended": _feature(Feature.PLAYBACK, "ended", "status", "media_url", "media_name"),
    "call.speak.started": _feature(Feature.SPEAK, "started"),
    "call.speak.ended": _feature(Feature.SPEAK, "ended", "status"),
    "call.recording.saved": _feature(Feature.RECORDING, "saved", "recording_id", "channels"),
    # The spec's call.recording.error has no recording_id (Telnyx may add one): the lane says what failed.
    "call.recording.error": _feature(Feature.RECORDING, "error", "reason", "recording_id"),
    "call.recording.transcription.saved": _feature(
        Feature.TRANSCRIPTION, "recording_transcript_saved", "recording_id", "recording_transcription_id", "status"
    ),
    "call.fork.started": _feature(Feature.FORK, "started", "stream_type"),
    "call.fork.stopped": _feature(Feature.FORK, "stopped", "stream_type"),
    "streaming.started": _feature(Feature.STREAMING, "started", "stream_id", "stream_url", "stream_type"),
    "streaming.stopped": _feature(Feature.STREAMING, "stopped", "stream_id", "stream_url", "stream_type"),
    "streaming.failed": _feature(
        Feature.STREAMING, "failed", "stream_id", "stream_url", "stream_type", "failure_reason", "stream_params"
    ),
    "call.transcription": _feature(Feature.TRANSCRIPTION, "receiving"),
    "call.refer.started": _feature(Feature.REFER, "started", "sip_notify_response", "to"),
    "call.refer.completed": _feature(Feature.REFER, "completed", "sip_notify_response", "to"),
    "call.refer.failed": _feature(Feature.REFER, "failed", "sip_notify_response", "to"),
    "siprec.started": _feature(Feature.SIPREC, "started"),
    "siprec.stopped": _feature(Feature.SIPREC, "stopped", "hangup_cause"),
    "siprec.failed": _feature(Feature.SIPREC, "failed", "failure_cause", "failure_reason"),
}


def _timeline_only(payload: CallPayload) -> list[LaneUpdate]:
    return []


def subject_key(data: WebhookData) -> str:
    """Whose timeline an event joins: the call, else its conference, else its session.

    Each of those is one entity's partition. Events with none of them share no key:
    they are spread by hour and by a hash of their id (`unattributed_pk`), and read back
    an hour at a time with `CallStore.unattributed_timeline`.
    """
    payload = data.payload
    if payload.call_control_id:
        return call_pk(payload.call_control_id)
    if payload.conference_id:
        return f"CONFERENCE#{payload.conference_id}"
    if payload.call_session_id:
        return f"SESSION#{payload.call_session_id}"
    return unattributed_pk(occurred_key(data.occurred), data.id)


class CallEventRecorder:
    """Writes one event's meaning to the call store: timeline, identity, client_state, lanes."""

    def __init__(self, store: CallStore) -> None:
        self.store = store

    def record(self, data: WebhookData) -> RecordedEvent:
        payload = data.payload
        ref = EventRef(data.id, data.event_type, occurred_key(data.occurred))
        subject = subject_key(data)
        self.store.append_timeline(subject, ref)
        result = RecordedEvent(data.id, data.event_type, subject)
        call_control_id = payload.call_control_id
        if not call_control_id:
            return result

        effect = EVENT_EFFECTS.get(data.event_type, _timeline_only)
        updates = effect(payload)
        if payload.client_state is not None:
            # Raw always, the decoded value only when DynamoDB can hold it: never fails the event.
            updates.append(LaneUpdate("client_state", client_state.decode(payload.client_state).lane_fields()))
        # One write on the STATE item for all of the event's lanes and its identity facts.
        outcome = self.store.advance_lanes(call_control_id, updates, ref, _identity(data, ref))
        result.lanes_written.extend(outcome.written)
        result.lanes_stale.extend(outcome.stale)
        if data.event_type.startswith("call.recording.") and payload.recording_id:
            self._record_recording(call_control_id, payload, ref)
        return result

    def _record_recording(self, call_control_id: str, payload: CallPayload, ref: EventRef) -> None:
        assert payload.recording_id is not None
        status = {"call.recording.saved": "saved", "call.recording.error": "error"}.get(ref.event_type)
        if status is None:
            return  # transcription.saved: the archive adds the transcript to the existing item
        fields: dict[str, Any] = {"status": status}
        extra = payload.model_dump(by_alias=True, exclude_none=True, mode="json")
        for name in ("channels", "recording_started_at", "recording_ended_at", "reason", "format"):
            if name in extra:
                fields[name] = extra[name]
        if payload.recording_urls:
            fields["formats"] = sorted(name for name, url in payload.recording_urls.items() if url)
        self.store.put_recording(call_control_id, payload.recording_id, fields, ref)


def _identity(data: WebhookData, ref: EventRef) -> dict[str, str | None]:
    payload = data.payload
    facts: dict[str, str | None] = {
        "call_session_id": payload.call_session_id,
        "call_leg_id": payload.call_leg_id,
        "connection_id": payload.connection_id,
        "from_number": payload.from_,
        "to_number": payload.to,
        "direction": payload.direction,
    }
    lifecycle = {"call.initiated": "initiated_at", "call.answered": "answered_at", "call.hangup": "ended_at"}
    if data.event_type in lifecycle:
        facts[lifecycle[data.event_type]] = ref.occurred_at
    return facts
