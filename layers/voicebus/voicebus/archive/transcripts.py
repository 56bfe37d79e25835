"""Live transcription (`call.transcription`): final segments kept in order, the whole transcript archived at hang-up.

Each final segment is its own item keyed by `occurred_at` and event id, so
segments read back in order and a duplicate rewrites itself. When the call hangs
up the transcript is written to S3 as JSON and as plain text; a segment that
arrives after the hang-up (delivery order is not guaranteed) writes it again.
Each segment keeps which side spoke (`transcription_track`: `inbound` for the leg
that started the transcription, `outbound` for the other; Telnyx sends it with
engine `B`), and the text archive prefixes each line with it when known.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from voicebus.archive.keys import transcript_key
from voicebus.archive.writer import ArchiveWriter
from voicebus.calls.events import TelnyxWebhook, occurred_key
from voicebus.calls.items import EventRef
from voicebus.calls.recorder import RecordedEvent
from voicebus.calls.records import CallStatus
from voicebus.calls.store import CallStore


@dataclass
class LiveTranscripts:
    """The transcription function's work beyond recording the event: the `act` of its handler."""

    writer: ArchiveWriter
    store: CallStore
    logger: Logger
    metrics: Metrics

    def on_event(self, webhook: TelnyxWebhook, recorded: RecordedEvent, context: LambdaContext) -> dict[str, Any]:
        data = webhook.data
        call_control_id = data.payload.call_control_id
        if not call_control_id:
            return {}
        if data.event_type == "call.transcription":
            segment = (data.payload.model_extra or {}).get("transcription_data") or {}
            if not segment.get("is_final"):
                return {"segment": "interim, not kept"}
            ref = EventRef(data.id, data.event_type, occurred_key(data.occurred))
            fields = {
                "text": str(segment.get("transcript", "")),
                "confidence": segment.get("confidence"),
                "track": segment.get("transcription_track"),
            }
            self.store.append_transcript_segment(
                call_control_id, ref, {k: v for k, v in fields.items() if v is not None}
            )
            status = self.store.lanes(call_control_id, "status").get("status") or {}
            ended = status.get("value") == CallStatus.HUNG_UP.value
            return self.finalize(call_control_id) if ended else {"segment": "kept"}
        if data.event_type == "call.hangup":
            return self.finalize(call_control_id)
        return {}

    def finalize(self, call_control_id: str) -> dict[str, Any]:
        """Write the whole transcript to S3 (JSON and text) and link it on the call."""
        segments = self.store.transcript_segments(call_control_id)
        if not segments:
            return {}
        record = self.store.get_call(call_control_id)
        session = (record.call_session_id if record else None) or call_control_id
        started = _parse(record.initiated_at if record else None) or _parse(segments[0]["occurred_at"])
        assert started is not None
        document = {
            "call_control_id": call_control_id,
            "call_session_id": session,
            "segments": [
                {
                    "occurred_at": item["occurred_at"],
                    "text": item["text"],
                    "confidence": item.get("confidence"),
                    "track": item.get("track"),
                }
                for item in segments
            ],
        }
        metadata = {"call-control-id": call_control_id, "segments": str(len(segments))}
        as_json = self.writer.archive_text(
            transcript_key(started, session, call_control_id=call_control_id, fmt="json"),
            json.dumps(document, ensure_ascii=False, indent=2),
            "application/json",
            metadata,
        )
        as_text = self.writer.archive_text(
            transcript_key(started, session, call_control_id=call_control_id, fmt="txt"),
            "\n".join(_line(item) for item in segments) + "\n",
            "text/plain; charset=utf-8",
            metadata,
        )
        for archived in (as_json, as_text):
            if archived.uploaded:
                self.metrics.add_metric(name="ArchivedBytes", unit=MetricUnit.Bytes, value=archived.size)
        link = {"json": as_json.s3_uri, "text": as_text.s3_uri, "segments": len(segments), "sha256": as_json.sha256}
        self.store.link(call_control_id, "transcript", link)
        self.logger.info("live transcript archived", extra={"segments": len(segments)})
        return {"transcript": link}


def _line(segment: dict[str, Any]) -> str:
    """One segment of the text archive: `inbound: hello` when the side is known, else the text alone."""
    track = segment.get("track")
    return f"{track}: {segment['text']}" if track else str(segment["text"])


def _parse(value: str | None) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
