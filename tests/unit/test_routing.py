"""Every rule pattern in template.yaml routes each event type to exactly its intended function.

The patterns are evaluated with moto's own EventBridge pattern matcher, in-process
(moto server does not implement TestEventPattern).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.routing import rule_patterns, targets
from voicebus_cli.webhooks import raw_body, webhook_event_files

INTENDED = {
    "CallControlFunction": [
        "call.initiated", "call.answered", "call.hangup", "call.bridged", "call.gather.ended", "call.dtmf.received",
    ],
    "MediaFunction": ["call.playback.started", "call.playback.ended", "call.speak.started", "call.speak.ended"],
    "RecordingFunction": ["call.recording.saved", "call.recording.error", "call.recording.transcription.saved"],
    "ForkFunction": ["call.fork.started", "call.fork.stopped"],
    "StreamingFunction": ["streaming.started", "streaming.stopped", "streaming.failed"],
    "TranscriptionFunction": ["call.transcription"],
    "ReferFunction": ["call.refer.started", "call.refer.completed", "call.refer.failed"],
    "SiprecFunction": ["siprec.started", "siprec.stopped", "siprec.failed"],
}  # fmt: skip
# Events a second function also hears: call control advances IVR flows on these, and the
# transcription function writes the whole live transcript when the call hangs up.
ALSO = {
    "call.speak.ended": {"CallControlFunction"},
    "call.playback.ended": {"CallControlFunction"},
    "call.recording.saved": {"CallControlFunction"},
    "call.hangup": {"TranscriptionFunction"},
}
UNCLAIMED = [
    "call.hold", "call.unhold", "call.enqueued", "call.dequeued", "call.machine.detection.ended",
    "call.machine.greeting.ended", "call.machine.premium.detection.ended", "call.ai_gather.ended", "call.cost",
    "call.conversation.ended", "conference.created", "conference.participant.joined", "conference.ended",
    "call.some.future.event",
]  # fmt: skip
SAMPLE_TYPES = sorted(
    {json.loads(raw_body(json.loads(path.read_text())))["data"]["event_type"] for path in webhook_event_files()}
)


def _bus_event(detail_type: str, source: str = "telnyx") -> dict[str, Any]:
    return {
        "version": "0",
        "id": "x",
        "detail-type": detail_type,
        "source": source,
        "account": "123456789012",
        "time": "2026-11-21T10:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {"data": {"event_type": detail_type}},
    }


def _targets(detail_type: str, source: str = "telnyx") -> set[str]:
    return targets(_bus_event(detail_type, source))


@pytest.mark.parametrize(
    ("detail_type", "function"),
    [(detail_type, function) for function, types in INTENDED.items() for detail_type in types],
)
def test_each_family_event_lands_on_its_function_only(detail_type: str, function: str) -> None:
    assert _targets(detail_type) == {function} | ALSO.get(detail_type, set())


@pytest.mark.parametrize("detail_type", UNCLAIMED)
def test_unclaimed_event_types_land_on_the_timeline_only(detail_type: str) -> None:
    assert _targets(detail_type) == {"TimelineFunction"}


@pytest.mark.parametrize("detail_type", SAMPLE_TYPES)
def test_every_sample_event_type_lands_on_exactly_one_family_function(detail_type: str) -> None:
    assert len(_targets(detail_type) - ALSO.get(detail_type, set())) == 1


def test_events_from_other_sources_reach_no_telnyx_function() -> None:
    assert _targets("call.answered", source="somebody.else") == set()


def test_every_family_function_has_a_rule() -> None:
    assert set(INTENDED) | {"TimelineFunction"} <= set(rule_patterns())
