"""Which function a bus event reaches, and which one records it, by template.yaml's own rules.

Patterns are evaluated with moto's EventBridge pattern matcher; a function records
what reaches it only when its EVENT_FAMILY claims it (voicebus.calls.consumer).
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from moto.events.models import EventPattern

from voicebus.calls.families import FAMILY_VARIABLE, EventFamily, family_of
from voicebus_cli.local.template import load_template, resources_with_globals


@cache
def _functions() -> dict[str, dict[str, Any]]:
    return {
        name: resource["Properties"]
        for name, resource in resources_with_globals(load_template()).items()
        if resource["Type"] == "AWS::Serverless::Function"
    }


@cache
def rules() -> dict[str, dict[str, dict[str, Any]]]:
    """Function logical id -> its EventBridgeRule events: event name -> pattern."""
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for name, properties in _functions().items():
        for event_name, event in properties.get("Events", {}).items():
            if event["Type"] == "EventBridgeRule":
                found.setdefault(name, {})[event_name] = event["Properties"]["Pattern"]
    return found


def rule_patterns() -> dict[str, tuple[str, ...]]:
    """Function logical id -> the JSON patterns of its EventBridgeRule events."""
    return {name: tuple(json.dumps(pattern) for pattern in events.values()) for name, events in rules().items()}


@cache
def families() -> dict[str, EventFamily]:
    """Function logical id -> the family its environment gives it (consumers only)."""
    return {
        name: EventFamily(variables[FAMILY_VARIABLE])
        for name, properties in _functions().items()
        if FAMILY_VARIABLE in (variables := properties.get("Environment", {}).get("Variables", {}))
    }


def targets(event: dict[str, Any]) -> set[str]:
    """Every function some rule delivers `event` to."""
    return {
        function
        for function, patterns in rule_patterns().items()
        for pattern in patterns
        if EventPattern.load(pattern).matches_event(event)  # type: ignore[arg-type]
    }


def recorders(event: dict[str, Any]) -> set[str]:
    """The functions `event` reaches that also record it (the rest only act on it)."""
    family = family_of(str(event["detail-type"]))
    return {function for function in targets(event) if families().get(function) is family}
