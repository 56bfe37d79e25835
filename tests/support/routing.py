"""Which function a bus event reaches, by template.yaml's own rule patterns (moto's matcher)."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from moto.events.models import EventPattern

from voicebus_cli.local.template import load_template


@cache
def rule_patterns() -> dict[str, tuple[str, ...]]:
    """Function logical id -> the JSON patterns of its EventBridgeRule events."""
    rules: dict[str, list[str]] = {}
    for name, resource in load_template()["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        for event in resource["Properties"].get("Events", {}).values():
            if event["Type"] == "EventBridgeRule":
                rules.setdefault(name, []).append(json.dumps(event["Properties"]["Pattern"]))
    return {name: tuple(patterns) for name, patterns in rules.items()}


def targets(event: dict[str, Any]) -> set[str]:
    return {
        function
        for function, patterns in rule_patterns().items()
        for pattern in patterns
        if EventPattern.load(pattern).matches_event(event)  # type: ignore[arg-type]
    }
