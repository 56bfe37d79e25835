"""Where archived objects go and what they carry: S3 keys and metadata, safe from hostile ids.

Ids come from webhooks, so every key component is sanitised (no `/`, never `.` or
`..`), dates are UTC, and metadata is checked against S3's header rules before
any request is made.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime

from voicebus.errors import PermanentError

TRANSCRIPT_FORMATS = frozenset({"json", "txt"})
# The recording's SHA-256 (hex): metadata of a one-request object, tag of a multipart one.
SHA256_METADATA_KEY = "sha256"

# S3 counts user metadata keys and values together against a 2 KB limit.
_MAX_METADATA_BYTES = 2048
_MAX_KEY_BYTES = 1024
_MAX_COMPONENT_CHARS = 200
_METADATA_KEY = re.compile(r"[a-z0-9][a-z0-9-]*")
_METADATA_VALUE = re.compile(r"[\x20-\x7e]*")
_UNSAFE_COMPONENT_CHARS = re.compile(r"[^A-Za-z0-9._-]")
_FORMAT = re.compile(r"[a-z0-9]{1,10}")


class KeyComponentError(PermanentError, ValueError):
    """An id cannot be made into one safe component of an S3 key."""


def safe_component(value: str) -> str:
    """One key component: characters outside `A-Za-z0-9._-` become `_`, so no `/`, and never `.` or `..`."""
    if not value:
        raise KeyComponentError("is empty")
    if len(value) > _MAX_COMPONENT_CHARS:
        raise KeyComponentError(f"has {len(value)} characters, at most {_MAX_COMPONENT_CHARS} are kept in a key")
    component = _UNSAFE_COMPONENT_CHARS.sub("_", value)
    if not component.strip("."):
        raise KeyComponentError(f"{value!r} is only dots")
    return component


def recording_key(started_at: datetime, call_session_id: str, recording_id: str, fmt: str) -> str:
    """`recordings/YYYY/MM/DD/<call_session_id>/<recording_id>.<fmt>`, dated by the recording's start in UTC."""
    return f"{_dated('recordings', started_at, call_session_id)}/{safe_component(recording_id)}.{_format(fmt)}"


def transcript_key(
    started_at: datetime,
    call_session_id: str,
    *,
    recording_id: str | None = None,
    call_control_id: str | None = None,
    fmt: str = "json",
) -> str:
    """Where a transcript goes: next to its recording, or under `transcripts/` for a live call.

    With `recording_id`: `recordings/YYYY/MM/DD/<session>/<recording_id>.transcript.<fmt>`.
    With `call_control_id`: `transcripts/YYYY/MM/DD/<session>/<call_control_id>.<fmt>`.
    `fmt` is `json` or `txt`; `started_at` is the recording's or the call's start.
    """
    if fmt not in TRANSCRIPT_FORMATS:
        raise ValueError(f"transcript format must be one of {sorted(TRANSCRIPT_FORMATS)}, got {fmt!r}")
    if recording_id is not None and call_control_id is None:
        return f"{_dated('recordings', started_at, call_session_id)}/{safe_component(recording_id)}.transcript.{fmt}"
    if call_control_id is not None and recording_id is None:
        return f"{_dated('transcripts', started_at, call_session_id)}/{safe_component(call_control_id)}.{fmt}"
    raise ValueError("give exactly one of recording_id and call_control_id")


def recording_metadata(
    *,
    call_control_id: str,
    call_session_id: str,
    recording_id: str,
    started_at: datetime,
    ended_at: datetime,
    channels: str,
    fmt: str,
) -> dict[str, str]:
    """The metadata every archived recording carries, with the same keys and UTC ISO timestamps everywhere."""
    return {
        "call-control-id": _ascii(call_control_id),
        "call-session-id": _ascii(call_session_id),
        "recording-id": _ascii(recording_id),
        "recording-started-at": _utc(started_at).isoformat().replace("+00:00", "Z"),
        "recording-ended-at": _utc(ended_at).isoformat().replace("+00:00", "Z"),
        "channels": _ascii(channels),
        "format": _format(fmt),
    }


def check_key(key: str) -> None:
    if not key or key.startswith("/") or len(key.encode("utf-8")) > _MAX_KEY_BYTES:
        raise ValueError(f"an S3 key must be 1 to {_MAX_KEY_BYTES} bytes and not start with '/', got {key!r}")


def check_metadata(metadata: Mapping[str, str]) -> None:
    """S3 sends metadata as HTTP headers: lower-case names, printable ASCII values, 2 KB in all."""
    total = len(SHA256_METADATA_KEY) + 64
    for name, value in metadata.items():
        if name == SHA256_METADATA_KEY:
            raise ValueError(f"metadata {SHA256_METADATA_KEY!r} is computed by the archiver, not given")
        if not _METADATA_KEY.fullmatch(name):
            raise ValueError(f"metadata name {name!r} must be lower-case letters, digits and '-'")
        if not _METADATA_VALUE.fullmatch(value):
            raise ValueError(f"metadata {name!r} must be printable ASCII")
        total += len(name) + len(value)
    if total > _MAX_METADATA_BYTES:
        raise ValueError(f"metadata takes {total} bytes with the sha256, S3 allows {_MAX_METADATA_BYTES}")


def _dated(prefix: str, started_at: datetime, call_session_id: str) -> str:
    day = _utc(started_at)
    return f"{prefix}/{day:%Y/%m/%d}/{safe_component(call_session_id)}"


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("a naive datetime has no date in UTC; give a timezone-aware one")
    return moment.astimezone(UTC)


def _format(fmt: str) -> str:
    normalized = fmt.strip().lower().lstrip(".")
    if not _FORMAT.fullmatch(normalized):
        raise ValueError(f"format must be a short extension such as 'mp3' or 'wav', got {fmt!r}")
    return normalized


def _ascii(value: str) -> str:
    if not _METADATA_VALUE.fullmatch(value):
        raise ValueError(f"{value!r} is not printable ASCII")
    return value
