"""Every rule pattern in template.yaml routes each event type to its intended functions, and
exactly one of them records it.

The patterns are evaluated with moto's own EventBridge pattern matcher, in-process
(moto server does not implement TestEventPattern); which of the reached functions
records an event follows their EVENT_FAMILY, as voicebus.calls.consumer decides.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.routing import families, recorders, rules, targets
from voicebus.calls.families import CLAIMED_EVENT_TYPES, FAMILY_EVENTS, EventFamily, family_from_env, family_of
from voicebus.calls.recorder import EVENT_EFFECTS
from voicebus.config import ConfigurationError
from voicebus_cli.local.template import load_template
from voicebus_cli.webhooks import raw_body, webhook_event_files

# The event types a function hears through a second rule, to act on (never to record).
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
EVERY_TYPE = sorted(CLAIMED_EVENT_TYPES | set(UNCLAIMED) | set(SAMPLE_TYPES))
FUNCTION_OF_FAMILY = {family: function for function, family in families().items()}


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


@pytest.mark.parametrize("detail_type", EVERY_TYPE)
def test_every_event_type_is_recorded_by_exactly_one_function(detail_type: str) -> None:
    assert recorders(_bus_event(detail_type)) == {FUNCTION_OF_FAMILY[family_of(detail_type)]}


@pytest.mark.parametrize("detail_type", EVERY_TYPE)
def test_every_event_type_reaches_its_recorder_and_only_the_functions_that_act_on_it(detail_type: str) -> None:
    recorder = FUNCTION_OF_FAMILY[family_of(detail_type)]
    assert targets(_bus_event(detail_type)) == {recorder} | ALSO.get(detail_type, set())


@pytest.mark.parametrize("detail_type", UNCLAIMED)
def test_unclaimed_event_types_land_on_the_timeline_only(detail_type: str) -> None:
    assert targets(_bus_event(detail_type)) == {FUNCTION_OF_FAMILY[EventFamily.TIMELINE]}


def test_every_family_has_exactly_one_function() -> None:
    assert sorted(families().values()) == sorted(EventFamily)


@pytest.mark.parametrize("function", sorted(families()))
def test_each_function_family_is_its_primary_rule_list(function: str) -> None:
    pattern = rules()[function]["Telnyx"]
    assert pattern["source"] == ["telnyx"]
    family = families()[function]
    if family is EventFamily.TIMELINE:
        [negation] = pattern["detail-type"]
        assert sorted(negation["anything-but"]) == sorted(CLAIMED_EVENT_TYPES)
    else:
        assert sorted(pattern["detail-type"]) == sorted(FAMILY_EVENTS[family])


def test_lane_effects_cover_exactly_the_claimed_event_types() -> None:
    assert set(EVENT_EFFECTS) == CLAIMED_EVENT_TYPES


def test_each_event_type_has_one_family() -> None:
    claimed = [event_type for event_types in FAMILY_EVENTS.values() for event_type in event_types]
    assert len(claimed) == len(set(claimed))


def test_every_rule_retries_for_an_hour_then_dead_letters() -> None:
    """What SAM cannot put in Globals is repeated per rule: the same on every one."""
    checked = 0
    for name, resource in load_template()["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        for event_name, event in resource["Properties"].get("Events", {}).items():
            if event["Type"] != "EventBridgeRule":
                continue
            rule = event["Properties"]
            where = f"{name}.{event_name}"
            assert rule["RetryPolicy"] == {"MaximumRetryAttempts": 8, "MaximumEventAgeInSeconds": 3600}, where
            assert rule["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["EventDeadLetterQueue", "Arn"]}}, where
            checked += 1
    assert checked == sum(len(events) for events in rules().values())


def test_events_from_other_sources_reach_no_telnyx_function() -> None:
    assert targets(_bus_event("call.answered", source="somebody.else")) == set()


@pytest.mark.parametrize("environ", [{}, {"EVENT_FAMILY": "calls"}])
def test_a_function_without_a_known_family_fails_its_cold_start(environ: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError, match="EVENT_FAMILY"):
        family_from_env(environ)
