"""Reading template.yaml as the local stack's only source of resources, routing and environment.

CloudFormation's short-form tags (!Ref, !Sub, !GetAtt, ...) are loaded as
one-key mappings and resolved against the local stack's names, so nothing here
repeats what the template says.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from voicebus_cli.testkey import ROOT

TEMPLATE_FILE = ROOT / "template.yaml"
ACCOUNT_ID = "123456789012"


_NO_VALUE = object()  # what !Ref AWS::NoValue resolves to: removed from its list or map


class TemplateError(ValueError):
    """The template uses something the local stack cannot resolve."""


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that keeps CloudFormation tags as {"Fn::X": value} / {"Ref": value}."""


def _tag_constructor(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if tag_suffix == "Ref" else f"Fn::{tag_suffix}"
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if name == "Fn::GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _tag_constructor)


def load_template(path: Path = TEMPLATE_FILE) -> dict[str, Any]:
    document = yaml.load(path.read_text(), Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass
    if not isinstance(document, dict):
        raise TemplateError(f"{path} is not a mapping")
    return document


# Resource type -> its section under Globals (the types whose Globals the local stack reads).
_GLOBALS_SECTIONS = {"AWS::Serverless::Function": "Function"}


def merge_globals(global_value: Any, own_value: Any) -> Any:
    """SAM's rule for one property: maps merge (the resource's keys win), lists add up, scalars override."""
    if isinstance(global_value, dict) and isinstance(own_value, dict) and not _is_intrinsic(own_value):
        merged = dict(global_value)
        for key, value in own_value.items():
            merged[key] = merge_globals(global_value[key], value) if key in global_value else value
        return merged
    if isinstance(global_value, list) and isinstance(own_value, list):
        return [*global_value, *own_value]
    return own_value


def _is_intrinsic(value: dict[str, Any]) -> bool:
    key = next(iter(value)) if len(value) == 1 else ""
    return key == "Ref" or key.startswith("Fn::")


def resources_with_globals(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The template's resources with Globals applied, as SAM's transform sees them."""
    resources: dict[str, dict[str, Any]] = {}
    for logical, resource in template.get("Resources", {}).items():
        section = _GLOBALS_SECTIONS.get(resource.get("Type", ""))
        global_properties = template.get("Globals", {}).get(section, {}) if section else {}
        if global_properties:
            properties = merge_globals(global_properties, resource.get("Properties", {}))
            resource = {**resource, "Properties": properties}
        resources[logical] = resource
    return resources


@dataclass
class Stack:
    """The template bound to local names: resolves intrinsics the way CloudFormation would."""

    template: dict[str, Any]
    name: str
    region: str = "us-east-1"
    parameters: dict[str, str] = field(default_factory=dict)
    # Logical id -> what !Ref gives (a name or URL) and attributes for !GetAtt.
    physical: dict[str, str] = field(default_factory=dict)
    attributes: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        """Every resource, functions with Globals applied (Handler, Layers, Environment, ...)."""
        return resources_with_globals(self.template)

    def parameter_value(self, name: str) -> str:
        if name in self.parameters:
            return self.parameters[name]
        spec = self.template.get("Parameters", {}).get(name)
        if spec is None or "Default" not in spec:
            raise TemplateError(f"parameter {name} has no value and no default")
        return str(spec["Default"])

    def resolve(self, value: Any) -> Any:
        """Resolve intrinsic functions in `value` (recursively); AWS::NoValue leaves the list or map."""
        if isinstance(value, list):
            return [item for item in (self.resolve(item) for item in value) if item is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref" and argument == "AWS::NoValue":
                return _NO_VALUE
            if key == "Ref":
                return self._ref(str(argument))
            if key == "Fn::If":
                condition, when_true, when_false = argument
                return self.resolve(when_true if self.condition(str(condition)) else when_false)
            if key == "Fn::Sub":
                return self._sub(argument)
            if key == "Fn::GetAtt":
                return self._get_att(argument)
            if key == "Fn::Join":
                separator, items = argument
                return str(separator).join(str(self.resolve(item)) for item in items)
            if key.startswith("Fn::"):
                raise TemplateError(f"{key} is not supported by the local stack")
        resolved = {key: self.resolve(item) for key, item in value.items()}
        return {key: item for key, item in resolved.items() if item is not _NO_VALUE}

    def includes(self, resource: dict[str, Any]) -> bool:
        """Whether CloudFormation would create `resource`: it has no `Condition`, or its condition holds."""
        condition = resource.get("Condition")
        return condition is None or self.condition(str(condition))

    def condition(self, name: str) -> bool:
        """A named condition from the template's Conditions section."""
        return self._evaluate(self.template.get("Conditions", {})[name])

    def _evaluate(self, expression: Any) -> bool:
        ((function, argument),) = expression.items()
        if function == "Condition":
            return self.condition(str(argument))
        if function == "Fn::Equals":
            left, right = (str(self.resolve(side)) for side in argument)
            return left == right
        if function == "Fn::Not":
            return not self._evaluate(argument[0])
        if function == "Fn::And":
            return all(self._evaluate(item) for item in argument)
        if function == "Fn::Or":
            return any(self._evaluate(item) for item in argument)
        raise TemplateError(f"{function} is not supported in conditions")

    def _ref(self, name: str) -> str:
        pseudo = {
            "AWS::StackName": self.name,
            "AWS::Region": self.region,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.template.get("Parameters", {}):
            return self.parameter_value(name)
        if name in self.physical:
            return self.physical[name]
        raise TemplateError(f"!Ref {name}: not a parameter or a provisioned resource")

    def _get_att(self, argument: Any) -> str:
        logical, attribute = argument
        try:
            return self.attributes[str(logical)][str(attribute)]
        except KeyError:
            raise TemplateError(f"!GetAtt {logical}.{attribute} is not known locally") from None

    def _sub(self, argument: Any) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else argument

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return str(self.resolve(variables[name]))
            if "." in name:
                return self._get_att(name.split(".", 1))
            return self._ref(name)

        return re.sub(r"\$\{([^}!]+)\}", replace, text)
