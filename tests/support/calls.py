"""Webhook sequences of whole calls, and EventBridge events carrying them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from voicebus.calls.client_state import encode
from voicebus.calls.events import TelnyxBusEvent
from voicebus.calls.recorder import CallEventRecorder
from voicebus.calls.store import CallStore
from voicebus_cli.webhooks import bus_event, compact, envelope

BASE_TIME = datetime(2026, 11, 21, 10, 0, 0, tzinfo=UTC)


class CallScript:
    """Builds the webhooks of one call, each `occurred_at` a little after the last."""

    def __init__(self, call_control_id: str | None = None, session: str | None = None) -> None:
        self.call_control_id = call_control_id or f"v3:{uuid.uuid4()}"
        self.session = session or str(uuid.uuid4())
        self.clock = BASE_TIME
        self.webhooks: list[dict[str, Any]] = []

    def event(self, event_type: str, *, after_ms: int = 250, **payload: Any) -> dict[str, Any]:
        self.clock += timedelta(milliseconds=after_ms)
        webhook = envelope(
            event_type,
            {
                "call_control_id": self.call_control_id,
                "call_leg_id": f"leg-{self.call_control_id}",
                "call_session_id": self.session,
                "connection_id": "1494404757140276705",
                **payload,
            },
            occurred_at=self.clock,
        )
        self.webhooks.append(webhook)
        return webhook

    def basic_call(self, recording_url: str | None = None) -> list[dict[str, Any]]:
        """initiated -> answered -> speak -> gather -> playback -> recording -> hangup.

        The recording sits in the customer's own bucket (Telnyx custom storage) unless
        `recording_url` says where to download it from.
        """
        parties: dict[str, Any] = {"from": "+15550001111", "to": "+15550002222", "direction": "incoming"}
        self.event("call.initiated", state="parked", **parties)
        self.event("call.answered", **parties)
        self.event("call.speak.started", client_state=encode({"step": "menu"}))
        self.event("call.speak.ended", status="completed", client_state=encode({"step": "menu"}))
        self.event("call.gather.ended", digits="2", status="valid", client_state=encode({"step": "menu"}))
        self.event("call.playback.started", media_url="https://example.test/beep.mp3")
        self.event("call.playback.ended", media_url="https://example.test/beep.mp3", status="completed")
        self.event(
            "call.recording.saved",
            recording_id="rec-1",
            channels="single",
            recording_started_at=self.clock.isoformat(),
            recording_ended_at=(self.clock + timedelta(seconds=30)).isoformat(),
            recording_urls={"mp3": recording_url or "s3://customer-bucket/recordings/rec-1.mp3", "wav": None},
            client_state=encode({"step": "voicemail"}),
        )
        self.event("call.hangup", hangup_cause="normal_clearing", hangup_source="caller", sip_hangup_cause="200")
        return self.webhooks


def as_bus_event(webhook: dict[str, Any]) -> dict[str, Any]:
    return bus_event(compact(webhook))


def recorded_state(store: CallStore, call_control_id: str) -> dict[str, Any]:
    """What recording alone decides about a call: its record less the key, recordings' archive
    facts and the transcript link (written by `act` work, not by recording), and its timeline."""
    record = store.get_call(call_control_id)
    assert record is not None, call_control_id
    state = record.model_dump(mode="json", exclude={"call_control_id", "recordings", "transcript"})
    timeline = [entry.model_dump() for entry in store.timeline(call_control_id)]
    return {"state": state, "timeline": timeline}


def in_order_state(store: CallStore, webhooks: list[dict[str, Any]]) -> dict[str, Any]:
    """`recorded_state` of the same call recorded once, in order, under a fresh call id (the oracle)."""
    call_control_id = f"v3:in-order-{uuid.uuid4()}"
    recorder = CallEventRecorder(store)
    for webhook in webhooks:
        event = TelnyxBusEvent.model_validate(as_bus_event(webhook))
        event.detail.data.payload.call_control_id = call_control_id
        recorder.record(event.detail.data)
    return recorded_state(store, call_control_id)
