"""Which function a bus event reaches, and which one records it, by a template's own rules.

Patterns are evaluated with moto's EventBridge pattern matcher; a function records
what reaches it only when its EVENT_FAMILY claims it (voicebus.calls.handler). A
function with its own rule on the bus and no EVENT_FAMILY is a *user function*
(yours, or the bundle's command function): it acts on what it hears and records nothing.
The module-level functions read template.yaml; `Routing(template)` reads any other
(a copy of it with your function added, for instance).
"""

from __future__ import annotations

import json
from functools import cache, cached_property
from typing import Any

from moto.events.models import EventPattern

from voicebus.calls.families import FAMILY_VARIABLE, EventFamily, family_of
from voicebus_cli.local.template import load_template, resources_with_globals


class Routing:
    """The routing a template declares: its functions' rules and families."""

    def __init__(self, template: dict[str, Any]) -> None:
        self.template = template

    @cached_property
    def functions(self) -> dict[str, dict[str, Any]]:
        """Function logical id -> its properties, Globals applied."""
        return {
            name: resource["Properties"]
            for name, resource in resources_with_globals(self.template).items()
            if resource["Type"] == "AWS::Serverless::Function"
        }

    @cached_property
    def rules(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Function logical id -> its EventBridgeRule events: event name -> pattern."""
        found: dict[str, dict[str, dict[str, Any]]] = {}
        for name, properties in self.functions.items():
            for event_name, event in properties.get("Events", {}).items():
                if event["Type"] == "EventBridgeRule":
                    found.setdefault(name, {})[event_name] = event["Properties"]["Pattern"]
        return found

    @cached_property
    def families(self) -> dict[str, EventFamily]:
        """Function logical id -> the family its environment gives it (the recorders only)."""
        return {
            name: EventFamily(variables[FAMILY_VARIABLE])
            for name, properties in self.functions.items()
            if FAMILY_VARIABLE in (variables := properties.get("Environment", {}).get("Variables", {}))
        }

    @cached_property
    def user_functions(self) -> frozenset[str]:
        """Functions with a rule on the bus and no EVENT_FAMILY: they act, never record."""
        return frozenset(name for name in self.rules if name not in self.families)

    @cached_property
    def _patterns(self) -> dict[str, tuple[EventPattern, ...]]:
        return {
            name: tuple(EventPattern.load(json.dumps(pattern)) for pattern in events.values())
            for name, events in self.rules.items()
        }

    def targets(self, event: dict[str, Any]) -> set[str]:
        """Every function some rule delivers `event` to."""
        return {
            function
            for function, patterns in self._patterns.items()
            if any(pattern.matches_event(event) for pattern in patterns)  # type: ignore[arg-type]
        }

    def recorders(self, event: dict[str, Any]) -> set[str]:
        """The functions `event` reaches that also record it (the rest only act on it)."""
        family = family_of(str(event["detail-type"]))
        return {function for function in self.targets(event) if self.families.get(function) is family}


@cache
def bundle() -> Routing:
    """template.yaml's routing."""
    return Routing(load_template())


def rules() -> dict[str, dict[str, dict[str, Any]]]:
    return bundle().rules


def families() -> dict[str, EventFamily]:
    return bundle().families


def targets(event: dict[str, Any]) -> set[str]:
    return bundle().targets(event)


def recorders(event: dict[str, Any]) -> set[str]:
    return bundle().recorders(event)


# ---------------------------------------------------------------- checks any template must pass
# The event types a recorder also hears through a second rule, to act on (never to record).
ALSO = {
    "call.speak.ended": {"CallControlFunction"},
    "call.playback.ended": {"CallControlFunction"},
    "call.recording.saved": {"CallControlFunction"},
    "call.recording.error": {"CallControlFunction"},
    "call.refer.completed": {"CallControlFunction"},
    "call.refer.failed": {"CallControlFunction"},
    "call.hangup": {"TranscriptionFunction"},
}
BUS = {"Fn::If": ["CreateEventBus", {"Ref": "EventBus"}, {"Ref": "ExistingEventBusName"}]}
RETRY_POLICY = {"MaximumRetryAttempts": 8, "MaximumEventAgeInSeconds": 3600}
# The one exception: the call-control function's rules drive IVR flows, and a menu prompt a
# minute late is worse than none, so their events stop being retried after 60 s (dead-lettered).
IVR_FUNCTION = "CallControlFunction"
IVR_RETRY_POLICY = {"MaximumRetryAttempts": 8, "MaximumEventAgeInSeconds": 60}
DEAD_LETTERS = {"Arn": {"Fn::GetAtt": ["EventDeadLetterQueue", "Arn"]}}


def bus_event(detail_type: str, source: str = "telnyx") -> dict[str, Any]:
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


def check_recorded_by_exactly_one_function(routing: Routing, detail_type: str) -> None:
    recorder = {function: family for function, family in routing.families.items()}
    expected = {name for name, family in recorder.items() if family is family_of(detail_type)}
    assert len(expected) == 1, f"{detail_type}: the family {family_of(detail_type)} has functions {expected}"
    assert routing.recorders(bus_event(detail_type)) == expected


def check_reaches_its_recorder_and_only_what_acts_on_it(routing: Routing, detail_type: str) -> None:
    """Beyond its recorder, an event reaches the bundle's second rules (ALSO) and user functions only."""
    [recorder] = [name for name, family in routing.families.items() if family is family_of(detail_type)]
    bundle_targets = routing.targets(bus_event(detail_type)) - routing.user_functions
    assert bundle_targets == {recorder} | ALSO.get(detail_type, set())


def check_every_rule_retries_for_an_hour_then_dead_letters_on_the_bus(routing: Routing) -> None:
    """What SAM cannot put in Globals is repeated per rule: the same on every one, yours too,
    except the IVR function's rules, which give up after a minute (IVR_RETRY_POLICY)."""
    checked = 0
    for name, properties in routing.functions.items():
        for event_name, event in properties.get("Events", {}).items():
            if event["Type"] != "EventBridgeRule":
                continue
            rule = event["Properties"]
            where = f"{name}.{event_name}"
            assert rule["RetryPolicy"] == (IVR_RETRY_POLICY if name == IVR_FUNCTION else RETRY_POLICY), where
            assert rule["DeadLetterConfig"] == DEAD_LETTERS, where
            assert rule["EventBusName"] == BUS, f"{where}: not on the chosen bus"
            checked += 1
    assert checked == sum(len(events) for events in routing.rules.values())
