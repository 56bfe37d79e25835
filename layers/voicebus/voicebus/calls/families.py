"""Which function records which Telnyx event type: each type belongs to exactly one family.

An event can reach a second function through a second rule (call control hears
call.speak.ended to advance an IVR flow, transcription hears call.hangup to write
the transcript), but only its family's function records it: two functions
writing the same lanes would make every second write look late. Each consumer
function is told its family by `EVENT_FAMILY`; template.yaml's primary rule of
each function lists exactly its family's types (tests/unit/test_routing.py), and
the timeline family records whatever no family claims.

Stdlib only: tests and tools read this without the layer's dependencies.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from enum import StrEnum

from voicebus.config import ConfigurationError, require

FAMILY_VARIABLE = "EVENT_FAMILY"


class EventFamily(StrEnum):
    CALL_CONTROL = "call_control"
    MEDIA = "media"
    RECORDING = "recording"
    FORK = "fork"
    STREAMING = "streaming"
    TRANSCRIPTION = "transcription"
    REFER = "refer"
    SIPREC = "siprec"
    # Every event type no other family claims (call.hold, call.machine.*, conference.*, ...).
    TIMELINE = "timeline"


FAMILY_EVENTS: Mapping[EventFamily, tuple[str, ...]] = {
    EventFamily.CALL_CONTROL: (
        "call.initiated",
        "call.answered",
        "call.bridged",
        "call.hangup",
        "call.gather.ended",
        "call.dtmf.received",
    ),
    EventFamily.MEDIA: ("call.playback.started", "call.playback.ended", "call.speak.started", "call.speak.ended"),
    EventFamily.RECORDING: ("call.recording.saved", "call.recording.error", "call.recording.transcription.saved"),
    EventFamily.FORK: ("call.fork.started", "call.fork.stopped"),
    EventFamily.STREAMING: ("streaming.started", "streaming.stopped", "streaming.failed"),
    EventFamily.TRANSCRIPTION: ("call.transcription",),
    EventFamily.REFER: ("call.refer.started", "call.refer.completed", "call.refer.failed"),
    EventFamily.SIPREC: ("siprec.started", "siprec.stopped", "siprec.failed"),
    EventFamily.TIMELINE: (),
}

# Event type -> the family that records it (absent: the timeline family).
EVENT_FAMILIES: Mapping[str, EventFamily] = {
    event_type: family for family, event_types in FAMILY_EVENTS.items() for event_type in event_types
}
CLAIMED_EVENT_TYPES: frozenset[str] = frozenset(EVENT_FAMILIES)


def family_of(event_type: str) -> EventFamily:
    """The family whose function records `event_type`."""
    return EVENT_FAMILIES.get(event_type, EventFamily.TIMELINE)


def family_from_env(environ: Mapping[str, str] | None = None) -> EventFamily:
    """The function's family from `EVENT_FAMILY`; a missing or unknown one fails the cold start."""
    value = require(FAMILY_VARIABLE, os.environ if environ is None else environ)
    try:
        return EventFamily(value)
    except ValueError:
        known = ", ".join(family.value for family in EventFamily)
        raise ConfigurationError(FAMILY_VARIABLE, f"must be one of {known}, got {value!r}") from None
