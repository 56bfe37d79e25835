"""OpenAPI 3.1 schema objects as self-contained JSON Schema: the part the command and event generators share.

Both generators read the vendored Telnyx spec and write schemas whose every `$ref`
points into the schema document's own `definitions`, without the spec's
documentation-only keys, so that a spec update that only rewords shows no diff.
They differ in the draft they write (07 for command validation, 04 for the
EventBridge schema registry): a subclass says what each keyword becomes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

SPEC_PATH = Path(__file__).resolve().parent / "local" / "telnyx-voice-openapi.json"
COMPONENT_REF = "#/components/schemas/"
DOCUMENTATION_KEYS = frozenset({"default", "deprecated", "description", "example", "examples", "title"})


class SpecSchemaError(Exception):
    """The spec cannot be turned into JSON Schema as asked; the message names what."""


def load_spec(path: Path = SPEC_PATH) -> dict[str, Any]:
    spec: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return spec


class ComponentInliner:
    """Converts schema objects, collecting the components they refer to into `definitions`."""

    def __init__(self, components: Mapping[str, Any]) -> None:
        self._components = components
        self.definitions: dict[str, Any] = {}

    def component(self, ref: str) -> Mapping[str, Any]:
        if not ref.startswith(COMPONENT_REF):
            raise SpecSchemaError(f"unsupported $ref {ref!r}")
        name = ref.removeprefix(COMPONENT_REF)
        if name not in self._components:
            raise SpecSchemaError(f"$ref {ref!r} names no component")
        return self._components[name]  # type: ignore[no-any-return]

    def reference(self, ref: str) -> dict[str, Any]:
        """`{"$ref": "#/definitions/<name>"}`, converting the component the first time it is named."""
        component = self.component(ref)
        name = ref.removeprefix(COMPONENT_REF)
        if name not in self.definitions:
            self.definitions[name] = {}  # placeholder first: a component may refer to itself
            self.definitions[name] = self.convert(component)
        return {"$ref": f"#/definitions/{name}"}

    def convert(self, node: Any) -> Any:
        if isinstance(node, list):
            return [self.convert(item) for item in node]
        if not isinstance(node, Mapping):
            return node
        return self.convert_object(node)

    def convert_object(self, node: Mapping[str, Any]) -> Any:
        """Each keyword through `keyword`, documentation dropped; a `$ref` with siblings goes into `allOf`."""
        converted: dict[str, Any] = {}
        for key, value in node.items():
            if key in DOCUMENTATION_KEYS or key.startswith("x-") or key == "$ref":
                continue
            kept = self.keyword(key, value)
            if kept is not None:
                converted[kept[0]] = kept[1]
        if "$ref" in node:
            reference = self.reference(node["$ref"])
            # Drafts 4 and 7 ignore a $ref's siblings: keep any that constrain by moving the $ref into allOf.
            return {"allOf": [reference], **converted} if converted else reference
        return converted

    def keyword(self, key: str, value: Any) -> tuple[str, Any] | None:
        """What `key: value` becomes in the target draft (None: dropped). Subclasses refine it."""
        return key, self.convert(value)

    def named_subschemas(self, value: Mapping[str, Any]) -> dict[str, Any]:
        """`properties` and the like: names are data, only their schemas convert."""
        return {name: self.convert(sub) for name, sub in value.items()}
