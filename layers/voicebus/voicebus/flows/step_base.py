"""What every step shares: names, kinds, the command it sends, where it leads, and its time limit.

Split from `steps.py` so each module stays one concern: this one is the vocabulary,
`steps.py` the steps that wait for an event, `continuing.py` the ones that move on
at once. Import steps from `voicebus.flows.steps`, which re-exports these.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from enum import StrEnum
from functools import partial
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, InstanceOf, JsonValue, StringConstraints, field_validator

from voicebus.commands.validation import CallCommand, parse_command

Name = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
"""Flow and step names: short lower-case identifiers, since every command's client_state carries them."""

DtmfKeys = Annotated[str, StringConstraints(pattern=r"^[0-9A-D*#]+$")]
"""Keys a caller can press."""

MAX_STEP_TIMEOUT_SECS = 86_400
VARIABLE = re.compile(r"\$\{vars\.(?P<name>[A-Za-z_][A-Za-z0-9_]*)\}")
"""`${vars.name}` in a step's params: a flow variable (an `invoke` result, the digits gathered)."""


class StepKind(StrEnum):
    WAITS = "waits"
    CONTINUES = "continues"
    FINAL = "final"


class VariableError(ValueError):
    """A `${vars.name}` has no value on this call, or its value breaks the step's params."""


def no_params(action: str) -> Any:
    """A `params` default: the action sent without params."""
    return Field(default_factory=partial(parse_command, action))


def params_field(field: str) -> str:
    """Where a command's field sits in a step: under `params`."""
    return f"params.{field}" if field else "params"


def render(command: CallCommand, variables: Mapping[str, JsonValue]) -> CallCommand:
    """`command` with every `${vars.name}` replaced by the call's value, validated again.

    A value that is the whole string keeps its JSON type (`${vars.retries}` -> 3);
    inside a longer string it is written as text. Raises VariableError naming the
    missing variable, or InvalidCommandError when the filled-in params break the spec.
    """

    def fill(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: fill(item) for key, item in value.items()}
        if isinstance(value, list):
            return [fill(item) for item in value]
        if not isinstance(value, str) or "${vars." not in value:
            return value
        whole = VARIABLE.fullmatch(value)
        if whole is not None:
            return lookup(whole.group("name"))
        return VARIABLE.sub(lambda match: str(lookup(match.group("name"))), value)

    def lookup(name: str) -> JsonValue:
        if name not in variables:
            raise VariableError(f"${{vars.{name}}} is not set on this call")
        return variables[name]

    if not any("${vars." in text for text in _texts(command.params)):
        return command
    return parse_command(command.action, fill(dict(command.params)))


def _texts(value: Any) -> Iterator[str]:
    if isinstance(value, Mapping):
        for item in value.values():
            yield from _texts(item)
    elif isinstance(value, list):
        for item in value:
            yield from _texts(item)
    elif isinstance(value, str):
        yield value


class Step(BaseModel):
    """A step that sends one command: `action` with the step's `params`, validated when the flow loads.

    `${vars.name}` may stand for any params value; the rest of the params are checked
    against the spec at load time, the filled-in command again when it is sent.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: ClassVar[StepKind] = StepKind.WAITS
    action: ClassVar[str]
    default_timeout_secs: ClassVar[int | None] = None
    """How long the flow waits for the step's event before its timeout branch; None: no limit."""

    params: InstanceOf[CallCommand]

    @field_validator("params", mode="before")
    @classmethod
    def _command(cls, value: Any) -> CallCommand:
        """The YAML mapping as the step's command; InvalidCommandError names each wrong field."""
        if isinstance(value, CallCommand) and value.action == cls.action:
            return value
        return parse_command(cls.action, value)

    def command(self, attempt: int, client_state: dict[str, JsonValue]) -> CallCommand:
        """The command this step sends on its `attempt`-th visit, which will carry `client_state`."""
        return self.params

    def following(self) -> str | None:
        """The step the flow moves on to when this one is done; None: it stays here."""
        return None

    def targets(self) -> Iterator[tuple[str, str]]:
        """(field, step name) for every step this one can lead to."""
        following = self.following()
        if following is not None:
            yield "next", following
        for field in ("on_timeout", "on_error", "on_failure"):
            target = getattr(self, field, None)
            if isinstance(target, str):
                yield field, target

    def timeout_secs_for(self) -> int | None:
        """The step's time limit: its own `timeout_secs`, else the type's default."""
        own = getattr(self, "timeout_secs", None)
        return own if isinstance(own, int) else self.default_timeout_secs

    def failure_target(self) -> str | None:
        """Where a failure of this step goes (`on_failure` / `on_error`); None: the flow's `on_error`."""
        for field in ("on_failure", "on_error"):
            target = getattr(self, field, None)
            if isinstance(target, str):
                return target
        return None


class LeadsOn(Step):
    """A step with a `next`."""

    next: Name | None = None

    def following(self) -> str | None:
        return self.next


class Waits(Step):
    """A step that waits for its event: how long, and where to go when the event never comes.

    `on_timeout` unset: the step's failure branch (`on_error` / `on_failure`), else the
    flow's `on_error`, else a spoken apology and a hang-up.
    """

    timeout_secs: int | None = Field(default=None, ge=1, le=MAX_STEP_TIMEOUT_SECS)
    on_timeout: Name | None = None


class WaitsLeadsOn(Waits):
    """A waiting step with a `next`."""

    next: Name | None = None

    def following(self) -> str | None:
        return self.next
