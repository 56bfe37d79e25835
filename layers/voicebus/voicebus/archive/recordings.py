"""Archiving a call's recordings and their transcripts to the user's S3 bucket.

`call.recording.saved` links last 10 minutes: each configured format is streamed
into S3 at once (`voicebus.archive.writer`), a link that has expired is swapped for a fresh
one from `GET /recordings/{id}` (telnyx SDK, imported only then), and `s3://` /
`gs://` locations (Telnyx custom storage) are recorded as they are. The call's
recording item lists where each format went, or, for a link that cannot lead to the
recording (not https, not audio, too large: `RecordingRefusedError`), that the format
`failed` and why; that is final, never retried. The downloads must end before the
invocation does (`transfer_deadline`); one that does not fails the invocation, retried.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from voicebus import config
from voicebus.archive.audio import RecordingRefusedError
from voicebus.archive.download import RecordingSource, is_external_location
from voicebus.archive.keys import recording_key, recording_metadata, transcript_key
from voicebus.archive.recording_links import fresh_download_url
from voicebus.archive.writer import ArchivedObject, ArchiveWriter
from voicebus.calls.events import CallPayload, TelnyxWebhook
from voicebus.calls.recorder import RecordedEvent
from voicebus.calls.store import CallStore

CONTENT_TYPES = {"mp3": "audio/mpeg", "wav": "audio/wav"}
DEFAULT_FORMATS = ("mp3", "wav")
# Kept back from the invocation's remaining time for what follows the download: finishing or
# aborting the upload and writing the recording item. A tenth of it, at most this much.
DEADLINE_MARGIN_SECONDS = 30.0


def configured_formats(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """ARCHIVE_FORMATS: which of Telnyx's formats to keep, e.g. "mp3" or "mp3,wav"."""
    text = (os.environ if environ is None else environ).get("ARCHIVE_FORMATS", "").strip()
    formats = tuple(part.strip() for part in text.split(",") if part.strip()) or DEFAULT_FORMATS
    unknown = set(formats) - set(CONTENT_TYPES)
    if unknown:
        raise config.ConfigurationError("ARCHIVE_FORMATS", f"names unknown formats {sorted(unknown)}")
    return formats


@dataclass
class RecordingArchive:
    """The recording function's work beyond recording the event: the `act` of its handler."""

    writer: ArchiveWriter
    store: CallStore
    formats: tuple[str, ...]
    logger: Logger
    metrics: Metrics

    def on_event(self, webhook: TelnyxWebhook, recorded: RecordedEvent, context: LambdaContext) -> dict[str, Any]:
        data = webhook.data
        payload = data.payload
        if data.event_type == "call.recording.error":  # the spec's has no recording_id: counted all the same
            reason = (payload.model_extra or {}).get("reason")
            self.metrics.add_metric(name="RecordingErrors", unit=MetricUnit.Count, value=1)
            self.logger.warning(
                "Telnyx could not save a recording", extra={"reason": reason, "recording_id": payload.recording_id}
            )
            return {"recording_error": reason}
        if not payload.call_control_id or not payload.recording_id:
            return {}
        if data.event_type == "call.recording.saved":
            return self._archive_recording(payload, data.occurred, transfer_deadline(context))
        if data.event_type == "call.recording.transcription.saved":
            return self._archive_transcript(payload, data.occurred)
        return {}

    def _archive_recording(self, payload: CallPayload, occurred: datetime, deadline: float) -> dict[str, Any]:
        call_control_id, recording_id = _ids(payload)
        started = payload.recording_started_at or occurred
        session = payload.call_session_id or call_control_id
        locations: dict[str, dict[str, Any]] = {}
        for fmt in self.formats:
            url = (payload.recording_urls or {}).get(fmt)
            if not url:
                continue
            if is_external_location(url):
                locations[fmt] = {"external": url}  # Telnyx custom storage: already where the user keeps it
                continue
            source = RecordingSource(
                url=url,
                key=recording_key(started, session, recording_id, fmt),
                content_type=CONTENT_TYPES[fmt],
                metadata=recording_metadata(
                    call_control_id=call_control_id,
                    call_session_id=session,
                    recording_id=recording_id,
                    started_at=started,
                    ended_at=payload.recording_ended_at or occurred,
                    channels=payload.channels or "single",
                    fmt=fmt,
                ),
                refresh=lambda fmt=fmt: fresh_download_url(recording_id, fmt),  # type: ignore[misc]
            )
            try:
                archived = self.writer.archive(source, deadline)
            except RecordingRefusedError as error:
                # The same link would be refused the same way on every retry: say so on the recording.
                locations[fmt] = {"status": "failed", "reason": str(error)}
                self.metrics.add_metric(name="RecordingsRefused", unit=MetricUnit.Count, value=1)
                self.logger.warning("recording not archived", extra={"format": fmt, "reason": str(error)})
                continue
            locations[fmt] = _location(archived)
            if archived.uploaded:
                self.metrics.add_metric(name="ArchivedBytes", unit=MetricUnit.Bytes, value=archived.size)
        if locations:
            self.store.update_recording(call_control_id, recording_id, {"archive": locations})
        self.logger.info("recording archived", extra={"recording_id": recording_id, "formats": sorted(locations)})
        return {"archived": locations}

    def _archive_transcript(self, payload: CallPayload, occurred: datetime) -> dict[str, Any]:
        call_control_id, recording_id = _ids(payload)
        text = str((payload.model_extra or {}).get("transcription_text") or "")
        session = payload.call_session_id or call_control_id
        # Next to its recording: the recording's own start date, when call.recording.saved came first.
        known = self.store.recording(call_control_id, recording_id) or {}
        started = _parse_time(known.get("recording_started_at")) or occurred
        key = transcript_key(started, session, recording_id=recording_id, fmt="txt")
        archived = self.writer.archive_text(key, text, "text/plain; charset=utf-8", {"recording-id": recording_id})
        self.metrics.add_metric(name="ArchivedBytes", unit=MetricUnit.Bytes, value=archived.size)
        link = {"transcript": _location(archived), "transcript_chars": len(text)}
        self.store.update_recording(call_control_id, recording_id, link)
        return {"transcript": link["transcript"]}


def transfer_deadline(context: LambdaContext, now: float | None = None) -> float:
    """The `time.monotonic()` by which the downloads must end: the invocation's time left, less a margin."""
    left = context.get_remaining_time_in_millis() / 1000
    start = time.monotonic() if now is None else now
    return start + left - min(DEADLINE_MARGIN_SECONDS, left / 10)


def _ids(payload: CallPayload) -> tuple[str, str]:
    """on_event only calls on with both ids present."""
    if not payload.call_control_id or not payload.recording_id:
        raise ValueError("a recording event without call_control_id or recording_id")
    return payload.call_control_id, payload.recording_id


def _location(archived: ArchivedObject) -> dict[str, Any]:
    return {
        "s3_uri": archived.s3_uri,
        "version_id": archived.version_id,
        "size": archived.size,
        "sha256": archived.sha256,
    }


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
