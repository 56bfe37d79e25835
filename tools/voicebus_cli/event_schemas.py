"""`python -m voicebus_cli.event_schemas [--check]`: the bus's events as JSON Schema draft 4.

Draft 4 because that is what the EventBridge schema registry takes (`JSONSchemaDraft4`),
and what `aws schemas get-code-binding-source` turns into Java, Python, TypeScript or Go.
Each schema describes the whole EventBridge event (`detail-type`, `source`, `detail`...):

- one per event family (`voicebus.calls.families`): `detail-type` is one of the family's
  Telnyx event types, `detail` the webhook, whose `data` is the vendored OpenAPI spec's
  `webhooks` schema of that type (the timeline family: any unclaimed type, a generic `data`);
- `call.command` (what your systems put, Source `voicebus`) and its two answers,
  `call.command.succeeded` and `call.command.failed` (`voicebus.commands.requests`).

Documentation-only keys (description, example, title, default, x-*) are dropped so a spec
that only rewords shows no diff, and so each schema stays under the registry's 100 KB.
The output is committed: `schemas/*.json`, and `schemas/registry.yaml` (the nested stack
template.yaml deploys: CloudFormation needs each schema's Content inline).
`--check` exits 1 when the committed files differ from a fresh generation.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from voicebus.calls.families import CLAIMED_EVENT_TYPES, FAMILY_EVENTS, EventFamily
from voicebus_cli.command_schemas import OUTPUT_PATH as COMMAND_SCHEMAS_PATH
from voicebus_cli.command_schemas import render
from voicebus_cli.openapi_schemas import COMPONENT_REF, SPEC_PATH, ComponentInliner, SpecSchemaError, load_spec

ROOT = Path(__file__).resolve().parents[2]
OUTPUT_DIR = ROOT / "schemas"
REGISTRY_TEMPLATE = OUTPUT_DIR / "registry.yaml"
DRAFT_04 = "http://json-schema.org/draft-04/schema#"
MAX_CONTENT = 100_000  # AWS::EventSchemas::Schema Content, in characters

_DRAFT_04_FORMATS = frozenset({"date-time", "email", "hostname", "ipv4", "ipv6", "uri"})
_DRAFT_04_KEYWORDS = frozenset(
    {
        "type", "properties", "required", "additionalProperties", "items", "enum", "minimum", "maximum",
        "minLength", "maxLength", "pattern", "minItems", "maxItems", "uniqueItems", "allOf", "anyOf", "oneOf",
        "not", "format",
    }
)  # fmt: skip


class EventSchemaError(SpecSchemaError):
    """The spec cannot be turned into draft-4 event schemas."""


@dataclass(frozen=True)
class EventSchema:
    """One registry schema: its name there, its file here, its content."""

    name: str  # in the registry: <source>@<Name>
    file: str  # under schemas/
    description: str
    content: dict[str, Any]


class _Draft4(ComponentInliner):
    """OpenAPI 3.1 schema objects as draft 4, each `$ref` into the schema's own `definitions`."""

    def keyword(self, key: str, value: Any) -> tuple[str, Any] | None:
        if key == "discriminator":
            return None
        if key == "const":
            return "enum", [value]
        if key == "format":
            return (key, value) if value in _DRAFT_04_FORMATS else None
        if key == "properties":
            return key, self.named_subschemas(value)
        if key in ("enum", "required"):
            return key, list(value)
        if key in _DRAFT_04_KEYWORDS:
            return key, self.convert(value)
        raise EventSchemaError(f"{key!r} has no draft-4 equivalent here")


def _webhook_data_refs(spec: Mapping[str, Any]) -> dict[str, str]:
    """Telnyx event type -> the `$ref` of its webhook's `data` schema, from the spec's `webhooks`."""
    components = spec["components"]["schemas"]
    found: dict[str, str] = {}
    for operation in spec["webhooks"].values():
        body = operation["post"]["requestBody"]["content"]["application/json"]["schema"]
        while set(body) == {"$ref"}:
            body = components[body["$ref"].removeprefix(COMPONENT_REF)]
        data_ref = body.get("properties", {}).get("data", {}).get("$ref")
        if data_ref is None:
            continue  # a webhook without the data envelope is not a Call Control one
        event_type = components[data_ref.removeprefix(COMPONENT_REF)]["properties"]["event_type"]
        for value in event_type.get("enum", []):
            found[value] = data_ref
    return found


def _pascal(text: str) -> str:
    return "".join(part.capitalize() for part in text.replace(".", "_").split("_"))


def _event(
    name: str, detail_types: dict[str, Any], source: str, detail: dict[str, Any], definitions: dict[str, Any]
) -> dict[str, Any]:
    """The whole EventBridge event, `detail` a reference to the definition `name`."""
    return {
        "$schema": DRAFT_04,
        "title": name,
        "type": "object",
        "required": ["detail-type", "source", "detail"],
        "properties": {
            "version": {"type": "string"},
            "id": {"type": "string"},
            "detail-type": detail_types,
            "source": {"enum": [source]},
            "account": {"type": "string"},
            "time": {"type": "string", "format": "date-time"},
            "region": {"type": "string"},
            "resources": {"type": "array", "items": {"type": "string"}},
            "detail": {"$ref": f"#/definitions/{name}"},
        },
        "definitions": dict(sorted({**definitions, name: detail}.items())),
    }


# Telnyx's delivery metadata next to `data` (attempt number, the URL it was delivered to).
_META = {"type": "object", "properties": {"attempt": {"type": "integer"}, "delivered_to": {"type": "string"}}}
# What every Telnyx webhook's data has; the timeline family's types are not enumerated.
_ANY_DATA = {
    "type": "object",
    "required": ["event_type", "id", "payload"],
    "properties": {
        "event_type": {"type": "string"},
        "id": {"type": "string"},
        "occurred_at": {"type": "string", "format": "date-time"},
        "record_type": {"type": "string"},
        "payload": {"type": "object"},
    },
}


def family_schema(spec: Mapping[str, Any], family: EventFamily) -> EventSchema:
    converter = _Draft4(spec["components"]["schemas"])
    name = f"Telnyx{_pascal(family.value)}Webhook"
    event_types = FAMILY_EVENTS[family]
    if family is EventFamily.TIMELINE:
        detail_types: dict[str, Any] = {"type": "string", "not": {"enum": sorted(CLAIMED_EVENT_TYPES)}}
        data: dict[str, Any] = _ANY_DATA
    else:
        refs = _webhook_data_refs(spec)
        missing = [event_type for event_type in event_types if event_type not in refs]
        if missing:
            raise EventSchemaError(f"{family.value}: the spec has no webhook for {missing}")
        detail_types = {"enum": list(event_types)}
        variants = [converter.reference(refs[event_type]) for event_type in event_types]
        data = variants[0] if len(variants) == 1 else {"anyOf": variants}
    detail = {"type": "object", "required": ["data"], "properties": {"data": data, "meta": _META}}
    description = (
        "Telnyx webhooks no family claims (recorded on the timeline)"
        if family is EventFamily.TIMELINE
        else f"Telnyx webhooks of the {family.value} family: {', '.join(event_types)}"
    )
    return EventSchema(
        name=f"telnyx@{name}",
        file=f"telnyx.{family.value}.json",
        description=description,
        content=_event(name, detail_types, "telnyx", detail, converter.definitions),
    )


def _nullable(kind: str) -> dict[str, Any]:
    return {"type": [kind, "null"]}


def command_schemas(actions: Sequence[str]) -> list[EventSchema]:
    """`call.command` and its answers, as `voicebus.commands.requests` reads and writes them."""
    request = {
        "type": "object",
        "required": ["call_control_id", "action"],
        "properties": {
            "call_control_id": {"type": "string", "minLength": 1},
            "action": {"enum": sorted(actions)},
            "params": {"type": "object"},
            "client_state": {},
            "request_id": _nullable("string"),
        },
    }
    answer = {
        "request_id": _nullable("string"),
        "call_control_id": {"type": "string"},
        "action": {"type": "string"},
        "command_id": _nullable("string"),
    }
    succeeded = {"type": "object", "required": ["call_control_id", "action", "command_id"], "properties": answer}
    failed = {
        "type": "object",
        "required": ["call_control_id", "action", "reason"],
        "properties": {**answer, "reason": _nullable("string")},
    }
    made = [
        ("CallCommand", "call.command", request, "A Call Control command for voicebus to send (put by your systems)"),
        ("CallCommandSucceeded", "call.command.succeeded", succeeded, "Telnyx accepted a call.command"),
        ("CallCommandFailed", "call.command.failed", failed, "A call.command was invalid or refused by Telnyx"),
    ]
    return [
        EventSchema(
            name=f"voicebus@{name}",
            file=f"voicebus.{detail_type}.json",
            description=description,
            content=_event(name, {"enum": [detail_type]}, "voicebus", detail, {}),
        )
        for name, detail_type, detail, description in made
    ]


def build(spec: Mapping[str, Any], actions: Sequence[str]) -> list[EventSchema]:
    schemas = [family_schema(spec, family) for family in EventFamily] + command_schemas(actions)
    for schema in schemas:
        size = len(_compact(schema.content))
        if size > MAX_CONTENT:
            raise EventSchemaError(f"{schema.name} is {size} characters, over the registry's {MAX_CONTENT}")
    return schemas


def _compact(content: dict[str, Any]) -> str:
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def registry_template(schemas: Sequence[EventSchema]) -> str:
    """The nested stack: a registry (named by CloudFormation) and every schema, Content inline."""
    lines = [
        "# Generated by `python -m voicebus_cli.event_schemas`: do not edit (tests fail when it is stale).",
        'AWSTemplateFormatVersion: "2010-09-09"',
        "Description: voicebus event schemas (JSON Schema draft 4) for code bindings in any language",
        "",
        "Resources:",
        "  Registry:",
        "    Type: AWS::EventSchemas::Registry",
        "    Properties:",
        "      Description: Telnyx webhooks on the voicebus bus, and call.command with its answers",
    ]
    for schema in schemas:
        lines += [
            "",
            f"  {schema.content['title']}:",
            "    Type: AWS::EventSchemas::Schema",
            "    Properties:",
            "      RegistryName: !GetAtt Registry.RegistryName",
            f"      SchemaName: {json.dumps(schema.name)}",
            "      Type: JSONSchemaDraft4",
            f"      Description: {json.dumps(schema.description)}",
            f"      Content: {json.dumps(_compact(schema.content), ensure_ascii=False)}",
        ]
    lines += ["", "Outputs:", "  RegistryName:", "    Value: !GetAtt Registry.RegistryName", ""]
    return "\n".join(lines)


def generate(spec_path: Path = SPEC_PATH, command_schemas_path: Path = COMMAND_SCHEMAS_PATH) -> dict[Path, str]:
    """Every generated file's path and text, as they should be committed."""
    actions = sorted(json.loads(command_schemas_path.read_text(encoding="utf-8"))["actions"])
    schemas = build(load_spec(spec_path), actions)
    files = {OUTPUT_DIR / schema.file: render(schema.content) for schema in schemas}
    files[REGISTRY_TEMPLATE] = registry_template(schemas)
    return files


def write(*, check: bool, out: TextIO | None = None) -> int:
    """Write the files, or with `check` only compare: 1 when a committed file is stale."""
    out = out or sys.stdout
    fresh = generate()
    stale = sorted(
        path.relative_to(ROOT).as_posix()
        for path, text in fresh.items()
        if not path.exists() or path.read_text(encoding="utf-8") != text
    )
    if check:
        for name in stale:
            print(f"{name} is out of date: run `python -m voicebus_cli.event_schemas`", file=out)
        return 1 if stale else 0
    OUTPUT_DIR.mkdir(exist_ok=True)
    for path, text in fresh.items():
        if path.relative_to(ROOT).as_posix() in stale:
            path.write_text(text, encoding="utf-8")
    print(f"wrote {len(stale)} of {len(fresh)} files under {OUTPUT_DIR.relative_to(ROOT)}/", file=out)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m voicebus_cli.event_schemas", description="Write the bus's event schemas (JSON Schema draft 4)."
    )
    parser.add_argument("--check", action="store_true", help="only compare with the committed files")
    return write(check=parser.parse_args(argv).check)


if __name__ == "__main__":
    raise SystemExit(main())
