"""Every rule pattern in template.yaml routes each event type to its intended functions, and
exactly one of them records it.

The patterns are evaluated with moto's own EventBridge pattern matcher, in-process
(moto server does not implement TestEventPattern); which of the reached functions
records an event follows their EVENT_FAMILY, as voicebus.calls.consumer decides.
"""

from __future__ import annotations

import json

import pytest

from tests.support.routing import (
    IVR_FUNCTION,
    IVR_RETRY_POLICY,
    RETRY_POLICY,
    bundle,
    bus_event,
    check_every_rule_retries_for_an_hour_then_dead_letters_on_the_bus,
    check_reaches_its_recorder_and_only_what_acts_on_it,
    check_recorded_by_exactly_one_function,
    families,
    rules,
    targets,
)
from voicebus.calls.families import CLAIMED_EVENT_TYPES, FAMILY_EVENTS, EventFamily, family_from_env
from voicebus.calls.recorder import EVENT_EFFECTS
from voicebus.config import ConfigurationError
from voicebus_cli.webhooks import raw_body, webhook_event_files

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


@pytest.mark.parametrize("detail_type", EVERY_TYPE)
def test_every_event_type_is_recorded_by_exactly_one_function(detail_type: str) -> None:
    check_recorded_by_exactly_one_function(bundle(), detail_type)


@pytest.mark.parametrize("detail_type", EVERY_TYPE)
def test_every_event_type_reaches_its_recorder_and_only_the_functions_that_act_on_it(detail_type: str) -> None:
    check_reaches_its_recorder_and_only_what_acts_on_it(bundle(), detail_type)


def test_the_bundle_has_no_user_function_but_the_command_function() -> None:
    """Every bundle function but the command function records a family; user functions are added ones."""
    assert bundle().user_functions == {"CommandFunction"}


@pytest.mark.parametrize("detail_type", UNCLAIMED)
def test_unclaimed_event_types_land_on_the_timeline_only(detail_type: str) -> None:
    reached = targets(bus_event(detail_type)) - bundle().user_functions
    assert reached == {FUNCTION_OF_FAMILY[EventFamily.TIMELINE]}


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
    check_every_rule_retries_for_an_hour_then_dead_letters_on_the_bus(bundle())


def test_only_the_ivr_rules_drop_events_older_than_a_minute() -> None:
    """The exception stated once: the rules that drive IVR flows, and no record-only rule."""
    ages = {
        f"{function}.{name}": event["Properties"]["RetryPolicy"]["MaximumEventAgeInSeconds"]
        for function, properties in bundle().functions.items()
        for name, event in properties.get("Events", {}).items()
        if event["Type"] == "EventBridgeRule"
    }
    assert {rule for rule, age in ages.items() if age == IVR_RETRY_POLICY["MaximumEventAgeInSeconds"]} == {
        f"{IVR_FUNCTION}.Telnyx",
        f"{IVR_FUNCTION}.FlowTransitions",
    }
    assert {age for rule, age in ages.items() if not rule.startswith(f"{IVR_FUNCTION}.")} == {
        RETRY_POLICY["MaximumEventAgeInSeconds"]
    }


def test_lambdas_own_retries_give_up_on_ivr_events_as_the_ivr_rules_do() -> None:
    """Lambda retries a failed asynchronous invocation too: for call control, no longer than its rules."""
    ages = {
        function: properties["EventInvokeConfig"]["MaximumEventAgeInSeconds"]
        for function, properties in bundle().functions.items()
        if "EventInvokeConfig" in properties
    }
    assert ages.pop(IVR_FUNCTION) == IVR_RETRY_POLICY["MaximumEventAgeInSeconds"]
    assert set(ages.values()) == {RETRY_POLICY["MaximumEventAgeInSeconds"]}


def test_events_from_other_sources_reach_no_telnyx_function() -> None:
    assert targets(bus_event("call.answered", source="somebody.else")) == set()


@pytest.mark.parametrize("environ", [{}, {"EVENT_FAMILY": "calls"}])
def test_a_function_without_a_known_family_fails_its_cold_start(environ: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError, match="EVENT_FAMILY"):
        family_from_env(environ)
