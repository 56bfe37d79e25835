"""Call Control commands checked against Telnyx's request schemas, so a wrong param fails here, naming the field.

The schemas (`schemas.json`, next to this module) are generated from Telnyx's
OpenAPI spec by `python -m voicebus_cli command-schemas`, with a short overlay
for limits the spec states only in prose; the prose limits that relate fields
to each other (`voicebus.commands.limits`) are checked once the schema passes. This module reads that file once and
compiles an action's validator (fastjsonschema, draft-07) the first time the
action is used, so a cold start pays for the actions it sends and no more. That
validator only says yes or no (fastjsonschema's detailed errors embed each
subschema in the generated code, several times slower to compile); a second,
detailed one is compiled only for an action whose params were refused, to name
every offending field. It never imports the telnyx SDK.

Params are the body fields as Telnyx names them (`from`, not `from_`), without
`client_state` and `command_id`: the sender sets both where the action takes
them. `client_state_update` is the exception: its `client_state` param is the
point of the command, any JSON value, encoded into the body here.
"""

from __future__ import annotations

import copy
import difflib
import functools
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Literal, cast

import fastjsonschema

from voicebus.calls import client_state
from voicebus.commands import limits
from voicebus.errors import PermanentError

SCHEMAS_PATH: Final = Path(__file__).with_name("schemas.json")
CLIENT_STATE_UPDATE: Final = "client_state_update"
SENDER_FIELDS: Final = frozenset({"client_state", "command_id"})
UUID_PATTERN: Final = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z"
"""The spec's `format: uuid`, which draft-07 (and so fastjsonschema) does not know by itself."""

_MAX_SHOWN_INPUT = 60
_MAX_RULE = 160
_DEFINITIONS = "#/definitions/"


@dataclass(frozen=True)
class ParamProblem:
    """One thing wrong with a command's params: the field (dotted, "" for the params as a whole) and what."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class InvalidCommandError(PermanentError, ValueError):
    """The params break Telnyx's spec for the action; nothing was sent. The message names each field."""

    def __init__(self, action: str, problems: Sequence[ParamProblem]) -> None:
        self.action = action
        self.problems = tuple(problems)
        super().__init__(f"{action}: {'; '.join(str(problem) for problem in self.problems)}")

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(problem.field for problem in self.problems)


class UnknownActionError(InvalidCommandError):
    """No Call Control action has this name."""

    def __init__(self, action: str) -> None:
        known = known_actions()
        close = difflib.get_close_matches(action, known, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"known actions: {', '.join(known)}"
        super().__init__(action, [ParamProblem("", f"unknown action {action!r}; {hint}")])


@dataclass(frozen=True)
class CallCommand:
    """One Call Control command whose params Telnyx's spec accepts; build it with `parse_command`."""

    action: str
    http_method: Literal["POST", "PUT"]
    takes_command_id: bool
    """False where the spec has no command_id: a redelivered webhook may run the command twice."""
    takes_client_state: bool
    """False where the sender cannot add a client_state (switch_supervisor_role, client_state_update)."""
    params: Mapping[str, Any] = field(hash=False)
    """The validated params, read-only."""
    required_fields: tuple[str, ...] = ()
    """The spec's required body fields, which the SDK writes first (`voicebus.commands.http.encode_body`)."""

    def body(self) -> dict[str, Any]:
        """The JSON body fields, named as Telnyx names them, without the sender's client_state and command_id."""
        if self.action == CLIENT_STATE_UPDATE:
            return {"client_state": client_state.encode(self.params["client_state"])}
        return copy.deepcopy(dict(self.params))

    def with_params(self, **changes: Any) -> CallCommand:
        """The same action with some params replaced (None removes one), validated again."""
        params = {**self.params, **changes}
        return parse_command(self.action, {name: value for name, value in params.items() if value is not None})


def parse_command(action: str, params: Mapping[str, Any] | None = None) -> CallCommand:
    """The validated command for `{"action": action, "params": params}`.

    Raises `UnknownActionError` or `InvalidCommandError` (PermanentErrors, and
    ValueErrors) naming each offending field.
    """
    entry = _document()["actions"].get(action)
    if entry is None:
        raise UnknownActionError(action)
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise InvalidCommandError(action, [ParamProblem("", f"params must be an object (got {_shown(params)})")])
    checked = copy.deepcopy(dict(params))
    problems = _own_problems(action, checked)
    to_schema = {name: value for name, value in checked.items() if name not in SENDER_FIELDS}
    try:
        _validator(action, frozenset(to_schema), detailed=False)(to_schema)
    except fastjsonschema.JsonSchemaValueException:
        problems += _explain(action, to_schema)
    else:  # the fields are each right: now how they relate (the spec's prose)
        problems += [ParamProblem(field, message) for field, message in limits.problems(action, to_schema)]
    if problems:
        raise InvalidCommandError(action, problems)
    return CallCommand(
        action=action,
        http_method=entry["http_method"],
        takes_command_id=entry["takes_command_id"],
        takes_client_state=entry["takes_client_state"],
        params=MappingProxyType(checked),
        required_fields=("client_state",)
        if action == CLIENT_STATE_UPDATE
        else tuple(entry["schema"].get("required", ())),
    )


def _required_fields(action: str, schema: Mapping[str, Any]) -> tuple[str, ...]:
    """The spec's required fields; client_state_update's client_state is taken out of the schema, yet required."""
    return ("client_state",) if action == CLIENT_STATE_UPDATE else tuple(schema.get("required", ()))


@functools.cache
def known_actions() -> tuple[str, ...]:
    """Every action the spec has, sorted."""
    return tuple(sorted(_document()["actions"]))


@functools.cache
def _document() -> Mapping[str, Any]:
    return cast(Mapping[str, Any], json.loads(SCHEMAS_PATH.read_text(encoding="utf-8")))


@functools.cache
def _schema(action: str, given: frozenset[str]) -> dict[str, Any]:
    """The action's schema for params with the `given` names, with only the definitions it then refers to.

    A field that was not given cannot be wrong, so its subschema becomes `{}`: the
    validator compiles only what it will check (an `answer` with no params skips the
    assistant and transcription configs, two thirds of a cold start's compiling). Unknown
    names and missing required fields are still refused: `properties` keeps every name.
    """
    document = _document()
    full = document["actions"][action]["schema"]
    properties = {name: (sub if name in given else {}) for name, sub in full.get("properties", {}).items()}
    schema: dict[str, Any] = {"$schema": document["$schema"], **full, "properties": properties}
    definitions = document["definitions"]
    used: dict[str, Any] = {}
    pending: list[Any] = [schema]
    while pending:
        node = pending.pop()
        if isinstance(node, Mapping):
            reference = node.get("$ref")
            if isinstance(reference, str):
                name = reference.removeprefix(_DEFINITIONS)
                if name not in used:
                    used[name] = definitions[name]
                    pending.append(used[name])
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    if used:
        schema["definitions"] = used
    return schema


@functools.cache
def _validator(action: str, given: frozenset[str], *, detailed: bool) -> Callable[[Any], Any]:
    """The compiled validator for params with the `given` names: a yes or no, or (`detailed`) every error."""
    validate: Callable[[Any], Any] = fastjsonschema.compile(
        _schema(action, given),
        formats={"uuid": UUID_PATTERN},
        use_default=False,  # Telnyx applies its own defaults: send only what was given
        detailed_exceptions=detailed,
        fast_fail=not detailed,
    )
    return validate


def _explain(action: str, params: Mapping[str, Any]) -> list[ParamProblem]:
    """Every field the detailed validator refuses."""
    try:
        _validator(action, frozenset(params), detailed=True)(params)
    except fastjsonschema.JsonSchemaValuesException as exc:
        return [problem for error in exc.errors for problem in _describe(error)]
    except fastjsonschema.JsonSchemaValueException as exc:
        return _describe(exc)
    return [ParamProblem("", "refused by the schema")]  # the two validators disagree: not expected


def _own_problems(action: str, params: Mapping[str, Any]) -> list[ParamProblem]:
    """What the schema cannot say well: the sender's fields, and client_state_update's JSON value."""
    problems: list[ParamProblem] = []
    for name in sorted(SENDER_FIELDS & params.keys()):
        if action == CLIENT_STATE_UPDATE and name == "client_state":
            continue
        problems.append(ParamProblem(name, "is not a param; the command sender sets it"))
    if action == CLIENT_STATE_UPDATE:
        if "client_state" not in params:
            problems.append(ParamProblem("client_state", "is required"))
        else:
            try:
                client_state.encode(params["client_state"])
            except client_state.ClientStateError as exc:
                problems.append(ParamProblem("client_state", str(exc)))
    return problems


def _describe(error: fastjsonschema.JsonSchemaValueException) -> list[ParamProblem]:
    """fastjsonschema's `data.x must be ...` as `x: must be ... (got ...)`, one problem per field."""
    where = ".".join(error.path[1:])
    definition = error.definition if isinstance(error.definition, Mapping) else {}
    value = error.value
    prefix = f"{where}." if where else ""
    if error.rule == "required" and isinstance(value, Mapping):
        missing = [name for name in definition.get("required", ()) if name not in value]
        return [ParamProblem(prefix + name, "is required") for name in missing]
    if error.rule == "additionalProperties" and isinstance(value, Mapping):
        known = sorted(definition.get("properties", {}))
        return [ParamProblem(prefix + name, _unknown_field(name, known)) for name in sorted(value) if name not in known]
    message = error.message.removeprefix(error.name or "").strip()
    if len(message) > _MAX_RULE:  # a long enum: enough to recognise it, and what was given still shows
        message = message[: _MAX_RULE - 4] + "...]"
    return [ParamProblem(where, f"{message} (got {_shown(value)})")]


def _unknown_field(name: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f"is not a field here; did you mean {close[0]!r}?" if close else "is not a field here"


def _shown(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= _MAX_SHOWN_INPUT else shown[: _MAX_SHOWN_INPUT - 3] + "..."
