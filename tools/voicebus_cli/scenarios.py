"""Flow scenarios: a call written down as the webhooks Telnyx sends and the commands expected back.

A scenario file (YAML, `functions/call_control/flows/scenarios/*.yaml`):

    description: The caller presses 1 and is transferred to sales
    call: {from: "+15550001111", to: "+15550009999"}     # the flow is chosen by `to`
    events:
      - send: call.initiated                  # direction incoming, state parked by default
        expect: [answer]
      - send: call.answered
        name: answered                        # so that `again: answered` can deliver it twice
        expect:
          - {action: gather_using_speak, step: menu, params: {maximum_digits: 1}}
      - again: answered                       # the same webhook again (same data.id): a duplicate
        expect: []
      - send: call.gather.ended
        payload: {digits: "1", status: valid}
        expect:
          - {action: transfer, params: {to: "+15550100100"}}

Each event is a webhook: `send` (an event type, with `payload` fields on top of the
call's) or `again` (`true` for the previous webhook, or an earlier one's `name`);
or `timeout: true`, the scheduled check of the current step's time limit firing
(test-flows only). `functions: {name: {result: {...}} | {error: ...}}` answers the
flow's `invoke` steps (test-flows only).
Telnyx's habit is played for you: each webhook carries the client_state of the
command that caused it (call.answered that of `answer`, call.gather.ended that of
the gather...; call.hangup and DTMF the call's latest), so nobody writes base64.
`client_state_of: menu` (or `menu@1`, the first command that step sent) makes a late
event that answers an earlier command; `client_state: <value>` sends your own
(a string as is, anything else JSON-encoded; null: none). `late: true` dates the
webhook before the previous one. `leg: b` sends it on another leg of the call
(a transfer's far leg: it carries the transfer's `target_leg_client_state`, as Telnyx does).

`expect` lists every command the webhook must cause, in order (none when omitted):
an action name, or `{action, step, leg, params}` where `params` need only hold the
fields you care about. Anything else is a mismatch, printed as a diff.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, JsonValue, StringConstraints, ValidationError, model_validator

from voicebus_cli.testkey import ROOT

SCENARIOS_DIR = ROOT / "functions" / "call_control" / "flows" / "scenarios"
SCENARIO_PATTERN = "*.yaml"
DEFAULT_LEG = "a"

Leg = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,15}$")]
STEP_REFERENCE = re.compile(r"^(?P<step>[a-z][a-z0-9_]*)(?:@(?P<nth>-?[1-9][0-9]*))?$")


class ScenarioError(ValueError):
    """A scenario file that cannot be played; the message names the file and the place."""


class Parties(BaseModel):
    """Who calls whom: on every webhook of the call (the flow is chosen by `to`, else `connection_id`)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: str = Field(default="+15550001111", alias="from")
    to: str = "+15550009999"
    connection_id: str = "1494404757140276705"


class ExpectedCommand(BaseModel):
    """A command the webhook must cause: the action, and optionally its step, leg and some of its params."""

    model_config = ConfigDict(extra="forbid")

    action: str = Field(min_length=1)
    step: str | None = None
    leg: Leg = DEFAULT_LEG
    params: dict[str, JsonValue] | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: Any) -> Any:
        return {"action": value} if isinstance(value, str) else value


class ScenarioEvent(BaseModel):
    """One webhook Telnyx sends, and the commands it must cause."""

    model_config = ConfigDict(extra="forbid")

    send: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_.]+$")
    again: bool | str | None = None
    timeout: bool = False
    name: str | None = None
    leg: Leg = DEFAULT_LEG
    payload: dict[str, JsonValue] = Field(default_factory=dict)
    client_state_of: str | None = Field(default=None, pattern=STEP_REFERENCE.pattern)
    client_state: JsonValue = None
    late: bool = False
    note: str | None = None
    expect: list[ExpectedCommand] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_webhook(self) -> ScenarioEvent:
        given = [self.send is not None, self.again not in (None, False), self.timeout]
        if sum(given) != 1:
            raise ValueError("give one of `send: <event type>`, `again: true | <name>` or `timeout: true`")
        if self.timeout and (self.payload or self.client_state_of or self.sets_client_state or self.leg != DEFAULT_LEG):
            raise ValueError("`timeout` fires the scheduled check of the step's time limit as it is: nothing else")
        if self.again not in (None, False) and (self.payload or self.client_state_of or self.late):
            raise ValueError("`again` delivers an earlier webhook as it was: no payload, client_state_of or late")
        if self.client_state_of is not None and "client_state" in self.model_fields_set:
            raise ValueError("give client_state_of or client_state, not both")
        return self

    @property
    def sets_client_state(self) -> bool:
        """`client_state:` was written (null included): the webhook carries exactly that."""
        return "client_state" in self.model_fields_set

    @property
    def again_of(self) -> bool | str | None:
        """What `again` names: True (the previous webhook), an event's name, or None."""
        return None if self.again is False else self.again

    def describe(self) -> str:
        if self.timeout:
            return "the step's time limit (its scheduled check fires)"
        if self.send is not None:
            return self.send + (f" on leg {self.leg}" if self.leg != DEFAULT_LEG else "")
        return f"again: {'the previous webhook' if self.again is True else self.again}"


class FunctionAnswer(BaseModel):
    """What your function answers an `invoke` step: a JSON object, or an error (a crash, a timeout)."""

    model_config = ConfigDict(extra="forbid")

    result: dict[str, JsonValue] | None = None
    error: str | None = None

    @model_validator(mode="after")
    def _one(self) -> FunctionAnswer:
        if (self.result is None) == (self.error is None):
            raise ValueError("give `result: {...}` or `error: <why>`")
        return self


class Scenario(BaseModel):
    """A call, as webhooks and the commands expected back."""

    model_config = ConfigDict(extra="forbid")

    description: str = Field(min_length=1)
    call: Parties = Field(default_factory=Parties)
    functions: dict[str, FunctionAnswer] = Field(default_factory=dict)
    """`invoke` steps' functions, by name, and what each answers (test-flows only)."""
    events: list[ScenarioEvent] = Field(min_length=1)

    @model_validator(mode="after")
    def _names_resolve(self) -> Scenario:
        names: set[str] = set()
        for index, event in enumerate(self.events, 1):
            if isinstance(event.again, str) and event.again not in names:
                raise ValueError(f"event {index}: `again: {event.again}` names no earlier event")
            if event.again is True and index == 1:
                raise ValueError("event 1: `again: true` needs an earlier webhook")
            if event.name is not None:
                if event.name in names:
                    raise ValueError(f"event {index}: the name {event.name!r} is taken")
                names.add(event.name)
        return self


@dataclass(frozen=True)
class LoadedScenario:
    path: Path
    scenario: Scenario

    @property
    def label(self) -> str:
        return _shown(self.path)


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def load_scenario(path: Path) -> LoadedScenario:
    """The scenario in `path`; ScenarioError names the file and what is wrong."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ScenarioError(f"{_shown(path)}: cannot be read: {' '.join(str(exc).split())}") from None
    try:
        return LoadedScenario(path, Scenario.model_validate(document))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'scenario'}: {error['msg']}"
            for error in exc.errors(include_url=False)
        )
        raise ScenarioError(f"{_shown(path)}: {problems}") from None


def scenario_files(path: Path) -> list[Path]:
    """`path` itself, or every scenario file under it."""
    if path.is_dir():
        return sorted(path.rglob(SCENARIO_PATTERN))
    if not path.exists():
        raise ScenarioError(f"{_shown(path)}: no such file or directory")
    return [path]


# ---------------------------------------------------------------------------
# Comparing what was sent with what was expected


@dataclass(frozen=True)
class SentCommand:
    """A command as Telnyx received it: on which leg, the action, its JSON body, and the step (when known)."""

    leg: str
    action: str
    body: dict[str, Any]
    step: str | None = None

    @property
    def client_state(self) -> str | None:
        value = self.body.get("client_state")
        return value if isinstance(value, str) else None

    @property
    def params(self) -> dict[str, Any]:
        """The body without what the sender adds (command_id, client_state)."""
        return {key: value for key, value in self.body.items() if key not in ("command_id", "client_state")}

    def describe(self, *, with_step: bool = True) -> str:
        step = f" (step {self.step})" if self.step and with_step else ""
        return f"{_leg(self.leg)}{self.action}{step} {_compact(self.params)}"


def _leg(leg: str) -> str:
    return "" if leg == DEFAULT_LEG else f"leg {leg}: "


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


def _render_expected(expected: ExpectedCommand, steps_known: bool) -> str:
    parts = [f"{_leg(expected.leg)}{expected.action}"]
    if expected.step is not None and steps_known:
        parts.append(f"step={expected.step}")
    if expected.params is not None:
        parts.append(_compact(expected.params))
    return " ".join(parts)


def _render_sent(sent: SentCommand, like: ExpectedCommand | None, steps_known: bool) -> str:
    """The sent command shown with only what `like` asks about, so that equal means matching."""
    if like is None or like.action != sent.action or like.leg != sent.leg:
        return sent.describe()
    parts = [f"{_leg(sent.leg)}{sent.action}"]
    if like.step is not None and steps_known:
        parts.append(f"step={sent.step}")
    if like.params is not None:
        parts.append(_compact({key: sent.params.get(key, "<missing>") for key in like.params}))
    return " ".join(parts)


def compare(expected: Sequence[ExpectedCommand], sent: Sequence[SentCommand], *, steps_known: bool = True) -> list[str]:
    """A diff (`-` expected, `+` sent) when they differ; empty when every command matches.

    `steps_known=False` (commands read from Telnyx's side, which never sees the flow's steps) ignores `step`.
    """
    wanted = [_render_expected(item, steps_known) for item in expected]
    got = [
        _render_sent(item, expected[index] if index < len(expected) else None, steps_known)
        for index, item in enumerate(sent)
    ]
    if wanted == got:
        return []
    return list(difflib.unified_diff(wanted, got, "expected", "sent", lineterm="", n=len(wanted) + len(got)))[2:]


def step_reference(reference: str) -> tuple[str, int]:
    """`menu` -> ("menu", -1), the latest; `menu@1` -> ("menu", 0), the first."""
    match = STEP_REFERENCE.match(reference)
    if match is None:
        raise ScenarioError(f"{reference!r} is not a step reference (step or step@n)")
    nth = int(match.group("nth") or -1)
    return match.group("step"), nth - 1 if nth > 0 else nth
