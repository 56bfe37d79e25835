"""What a recording must look like to be archived as mp3 or wav: its content type and its first bytes.

A link that answers 200 with an HTML error page, or with another format, is not the
recording: Telnyx records mp3 and wav only, so each is recognised by the header
every such file starts with (an ID3 tag or an MPEG audio frame; RIFF/WAVE).
"""

from __future__ import annotations

from dataclasses import dataclass

from voicebus.errors import PermanentError

# Enough bytes for every check below.
MAGIC_BYTES = 12
# What storage serves when the uploader gave no type (S3's defaults): decided by the magic bytes alone.
GENERIC_CONTENT_TYPES = frozenset({"application/octet-stream", "binary/octet-stream"})


class RecordingRefusedError(PermanentError):
    """The link does not lead to a recording this archive takes: recorded as failed, never retried."""


class NotAudioError(RecordingRefusedError):
    """The body is not the format asked for (an HTML error page, another format)."""


@dataclass(frozen=True)
class AudioFormat:
    """One of Telnyx's recording formats: the type it is stored with and what it may be served as."""

    name: str
    content_type: str
    served_as: frozenset[str]

    def check_content_type(self, header: str | None, key: str) -> None:
        """A missing or generic type is left to the magic bytes; any other must be this format's."""
        media_type = (header or "").split(";", 1)[0].strip().lower()
        if media_type and media_type not in self.served_as | GENERIC_CONTENT_TYPES:
            raise NotAudioError(f"{key}: served as {media_type!r}, not {self.name} audio")

    def check_magic(self, head: bytes, key: str) -> None:
        if not _MAGIC[self.name](head[:MAGIC_BYTES]):
            raise NotAudioError(f"{key}: the body does not start like {self.name} audio (first bytes {head[:8]!r})")


def _is_mp3(head: bytes) -> bool:
    """An ID3v2 tag, or an MPEG audio frame header: 11 sync bits, then a valid version, layer, bitrate and rate."""
    if head.startswith(b"ID3"):
        return True
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return False
    version, layer = (head[1] >> 3) & 0b11, (head[1] >> 1) & 0b11
    bitrate, rate = head[2] >> 4, (head[2] >> 2) & 0b11
    return version != 0b01 and layer != 0b00 and bitrate != 0b1111 and rate != 0b11


def _is_wav(head: bytes) -> bool:
    """RIFF (or RF64, past 4 GiB) with the WAVE form type."""
    return head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE"


_MAGIC = {"mp3": _is_mp3, "wav": _is_wav}

FORMATS = {
    "mp3": AudioFormat("mp3", "audio/mpeg", frozenset({"audio/mpeg", "audio/mp3", "audio/mpeg3", "audio/x-mpeg-3"})),
    "wav": AudioFormat("wav", "audio/wav", frozenset({"audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave"})),
}


def format_for(content_type: str) -> AudioFormat:
    """The format a recording is archived as, from the content type it is stored with."""
    for audio in FORMATS.values():
        if content_type == audio.content_type:
            return audio
    raise ValueError(
        f"content_type must be one of {sorted(a.content_type for a in FORMATS.values())}, got {content_type!r}"
    )
