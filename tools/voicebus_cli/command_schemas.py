"""`command-schemas`: write the Call Control request schemas voicebus validates commands with.

For every `/calls/{call_control_id}/actions/<action>` POST or PUT of the vendored
OpenAPI spec, the request body's schema becomes a self-contained draft-07 schema:

- every `$ref` points into one shared `definitions` (the components the actions use);
- documentation-only keys (description, example(s), title, default, deprecated, x-*)
  are dropped, so a spec update that only rewords shows no diff;
- OpenAPI's `discriminator` becomes draft-07 `if`/`then` on the tag, so an error
  inside one variant (a voice_speed out of range) names that field rather than
  "matches none of 9 schemas";
- `client_state` and `command_id` leave the properties (the sender sets them);
  whether the action takes them is recorded next to the HTTP method;
- the top-level object refuses unknown fields (`additionalProperties: false`);
- the variants of a union discriminated by `transcription_engine` refuse fields they
  do not define (`additionalProperties: false`), as a discriminated union of closed
  models would: an option of another engine (Google's `model` in an Azure config) is
  refused rather than ignored by Telnyx;
- `command_overlay.OVERLAY` adds the limits the spec states only in prose.

The output, `layers/voicebus/voicebus/commands/schemas.json`, is committed: the
Lambda runtime reads it and never the spec. tests/unit/test_commands.py fails
when it differs from a fresh generation.
"""

from __future__ import annotations

import copy
import json
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from voicebus_cli.command_overlay import OVERLAY
from voicebus_cli.openapi_schemas import COMPONENT_REF, SPEC_PATH, ComponentInliner, SpecSchemaError, load_spec

ROOT = Path(__file__).resolve().parents[2]
OUTPUT_PATH = ROOT / "layers" / "voicebus" / "voicebus" / "commands" / "schemas.json"
DRAFT_07 = "http://json-schema.org/draft-07/schema#"

ACTION_PATH = re.compile(r"^/calls/\{call_control_id\}/actions/(?P<action>[a-z0-9_]+)$")
SENDER_FIELDS = ("client_state", "command_id")
_NAMED_SUBSCHEMAS = frozenset({"properties", "patternProperties", "definitions"})
CLOSED_UNION_TAGS = frozenset({"transcription_engine"})
"""Discriminators whose variants refuse fields they do not define."""
_VERBATIM = frozenset({"enum", "const", "required"})
_ONE_LINE = 100


class CommandSchemaError(SpecSchemaError):
    """The spec or the overlay cannot be turned into command schemas."""


def build(spec: Mapping[str, Any], overlay: Mapping[str, Mapping[str, Any]] = OVERLAY) -> dict[str, Any]:
    """The document written to schemas.json: `actions` (metadata and schema) and shared `definitions`."""
    converter = _Converter(spec["components"]["schemas"])
    actions: dict[str, Any] = {}
    for path, item in spec["paths"].items():
        matched = ACTION_PATH.match(path)
        if matched is None:
            continue
        for method in ("post", "put"):
            if method in item:
                action = matched.group("action")
                actions[action] = converter.action(action, method.upper(), item[method])
    if not actions:
        raise CommandSchemaError("the spec has no /calls/{call_control_id}/actions/* operations")
    for name in sorted(converter.closed):
        variant = converter.definitions[name]
        if variant.get("type") != "object" or "properties" not in variant:
            raise CommandSchemaError(f"{name}: a closed union's variant must be an object schema")
        if "allOf" not in variant:  # a union itself (Deepgram's, by model) is closed by its own variants
            variant["additionalProperties"] = False
    document = {"$schema": DRAFT_07, "actions": actions, "definitions": dict(sorted(converter.definitions.items()))}
    _apply_overlay(document, overlay)
    return document


class _Converter(ComponentInliner):
    """Turns OpenAPI 3.1 schema objects into draft-07, collecting the components they refer to."""

    def __init__(self, components: Mapping[str, Any]) -> None:
        super().__init__(components)
        self.closed: set[str] = set()
        """Components that are variants of a union discriminated by one of CLOSED_UNION_TAGS."""

    def action(self, action: str, method: str, operation: Mapping[str, Any]) -> dict[str, Any]:
        try:
            body = operation["requestBody"]["content"]["application/json"]["schema"]
        except KeyError:
            raise CommandSchemaError(f"{action}: no application/json request body") from None
        schema = self.convert(self._inline(body))
        if schema.get("type") != "object" or "allOf" in schema:
            raise CommandSchemaError(f"{action}: the request body is not a plain object schema")
        properties: dict[str, Any] = schema.setdefault("properties", {})
        required = [name for name in schema.get("required", []) if name not in SENDER_FIELDS]
        takes = {name: properties.pop(name, None) is not None for name in SENDER_FIELDS}
        client_state_required = "client_state" in schema.get("required", [])
        schema["required"] = required
        if not required:
            del schema["required"]
        schema["additionalProperties"] = False
        return {
            "http_method": method,
            # A required client_state is the command's own payload (client_state_update), not an echo the sender adds.
            "takes_client_state": takes["client_state"] and not client_state_required,
            "takes_command_id": takes["command_id"],
            "schema": schema,
        }

    def _inline(self, node: Mapping[str, Any]) -> Mapping[str, Any]:
        """The request schema itself rather than a reference to it: its properties are edited."""
        while set(node) == {"$ref"}:
            node = self.component(node["$ref"])
        return node

    def convert_object(self, node: Mapping[str, Any]) -> Any:
        return self._discriminated(node) if "discriminator" in node else super().convert_object(node)

    def keyword(self, key: str, value: Any) -> tuple[str, Any] | None:
        if key in _NAMED_SUBSCHEMAS:
            return key, self.named_subschemas(value)
        if key in _VERBATIM:
            return key, copy.deepcopy(value)
        return key, self.convert(value)

    def _discriminated(self, node: Mapping[str, Any]) -> dict[str, Any]:
        """`oneOf` + `discriminator` as `if tag == X then X's schema`, the tag itself required and enumerated."""
        tag = node["discriminator"]["propertyName"]
        mapping: Mapping[str, str] = node["discriminator"].get("mapping") or {}
        if not mapping:
            raise CommandSchemaError(f"a discriminator on {tag!r} without a mapping")
        rest = {key: value for key, value in node.items() if key not in ("discriminator", "oneOf", "anyOf")}
        converted: dict[str, Any] = self.convert(rest)
        values = sorted(mapping)
        if tag in CLOSED_UNION_TAGS:
            self.closed.update(ref.removeprefix(COMPONENT_REF) for ref in mapping.values())
        converted.update(
            {
                "type": "object",
                "required": [tag],
                "properties": {tag: {"enum": values}},
                "allOf": [
                    {
                        "if": {"properties": {tag: {"enum": [value]}}, "required": [tag]},
                        "then": self.reference(mapping[value]),
                    }
                    for value in values
                ],
            }
        )
        return converted


def _apply_overlay(document: dict[str, Any], overlay: Mapping[str, Mapping[str, Any]]) -> None:
    for location, keywords in overlay.items():
        parent, key = _overlay_target(document, location)
        target = parent[key]
        if all(target.get(name) == value for name, value in keywords.items()):
            raise CommandSchemaError(f"overlay {location}: the spec already says {dict(keywords)}; drop the entry")
        if "$ref" in target:
            target = parent[key] = {"allOf": [target]}
        target.update(copy.deepcopy(dict(keywords)))


def _overlay_target(document: dict[str, Any], location: str) -> tuple[dict[str, Any], str]:
    if location.startswith("definitions/"):
        name, _, field = location.removeprefix("definitions/").partition(".")
        if name not in document["definitions"]:
            raise CommandSchemaError(f"overlay {location}: no action uses that component")
        if not field:
            return document["definitions"], name
        fields = document["definitions"][name].get("properties", {})
        if field not in fields:
            raise CommandSchemaError(f"overlay {location}: the component has no such field")
        return fields, field
    action, _, field = location.partition(".")
    entry = document["actions"].get(action)
    properties = entry["schema"]["properties"] if entry is not None else {}
    if field not in properties:
        raise CommandSchemaError(f"overlay {location}: the spec has no such action field")
    return properties, field


def render(document: Any) -> str:
    """Sorted keys; a value that fits on one line stays on one, the rest one key per line: short, stable diffs."""
    return _render(document, 0) + "\n"


def _render(value: Any, depth: int) -> str:
    flat = json.dumps(value, sort_keys=True, ensure_ascii=False)
    if not isinstance(value, dict | list) or not value or len(flat) + 2 * depth <= _ONE_LINE:
        return flat
    inner = "  " * (depth + 1)
    if isinstance(value, list):
        items = [inner + _render(item, depth + 1) for item in value]
        return "[\n" + ",\n".join(items) + "\n" + "  " * depth + "]"
    fields = [f"{inner}{json.dumps(key)}: {_render(value[key], depth + 1)}" for key in sorted(value)]
    return "{\n" + ",\n".join(fields) + "\n" + "  " * depth + "}"


def generate(spec_path: Path = SPEC_PATH) -> str:
    """schemas.json's text, as it should be committed."""
    return render(build(load_spec(spec_path)))


def command_schemas(*, check: bool, output: Path = OUTPUT_PATH, out: TextIO | None = None) -> int:
    """Write schemas.json, or with `check` only compare: 1 when the committed file is out of date."""
    out = out or sys.stdout
    fresh = generate()
    current = output.read_text(encoding="utf-8") if output.exists() else None
    relative = output.relative_to(ROOT) if output.is_relative_to(ROOT) else output
    if check:
        if current == fresh:
            print(f"{relative} is up to date", file=out)
            return 0
        print(f"{relative} is out of date: run `python -m voicebus_cli command-schemas`", file=out)
        return 1
    if current != fresh:
        output.write_text(fresh, encoding="utf-8")
    count = len(json.loads(fresh)["actions"])
    print(f"wrote {count} action schemas to {relative}", file=out)
    return 0
