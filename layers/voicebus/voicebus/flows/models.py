"""What a flow file may say: a flow, how calls are matched to it, and its named steps (`steps.py`).

A flow file, in short (functions/call_control/flows/main.yaml is the full example):

    name: main                     # lower-case; every command's client_state carries it
    match: {to: ["+15550100200"], connection_id: []}   # main, the default, needs none
    entry: answer
    steps:
      answer: {type: answer, next: menu}
      menu:
        type: menu
        params: {payload: Press 1 for sales., voice: AWS.Polly.Joanna-Neural, language: en-US}
        branches: {"1": sales}
        max_attempts: 3
        on_exhausted: bye
      sales: {type: transfer, params: {to: "${FLOW_SALES_NUMBER}"}}
      bye: {type: hangup}
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, InstanceOf, StringConstraints, field_validator

from voicebus.commands.validation import CallCommand, InvalidCommandError, parse_command
from voicebus.flows.steps import FlowStep, HangupStep, MenuStep, Name, PlayStep, SpeakStep, StepKind, params_field

DEFAULT_FLOW = "main"
APOLOGY_STEP = "_apology"
HANGUP_STEP = "_hangup"
"""The built-in failure branch: steps every flow has, named so no flow file can name its own the same."""
DEFAULT_APOLOGY = {
    "payload": "We are sorry, we cannot complete your call right now. Please try again later. Goodbye.",
    "voice": "AWS.Polly.Joanna-Neural",
    "language": "en-US",
}


class FlowMatch(BaseModel):
    """Which calls start this flow: by the number called, else by the Telnyx connection they came in on."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    to: list[Annotated[str, StringConstraints(min_length=1)]] = Field(default_factory=list)
    connection_id: list[Annotated[str, StringConstraints(min_length=1)]] = Field(default_factory=list)


@dataclass(frozen=True)
class FlowProblem:
    """One thing wrong with a flow file, located as precisely as known."""

    message: str
    step: str | None = None
    field: str | None = None
    variable: str | None = None

    def describe(self) -> str:
        where = [f"step {self.step!r}"] if self.step is not None else []
        if self.field:
            where.append(self.field)
        return ": ".join([*where, self.message])


class Flow(BaseModel):
    """A named state machine of steps, entered at `entry` when a matching call comes in."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    description: str | None = None
    match: FlowMatch = FlowMatch()
    entry: Name
    steps: dict[Name, FlowStep] = Field(min_length=1)
    on_error: Name | None = None
    """Where any failure without its own branch goes; unset: the apology, then a hang-up."""
    apology: InstanceOf[CallCommand] = Field(default_factory=lambda: parse_command("speak", DEFAULT_APOLOGY))
    """The speak params of the built-in apology (payload, voice, language)."""

    @field_validator("apology", mode="before")
    @classmethod
    def _speak(cls, value: Any) -> CallCommand:
        return value if isinstance(value, CallCommand) else parse_command("speak", {**DEFAULT_APOLOGY, **value})

    def step(self, name: str) -> FlowStep | None:
        """A step by name, the built-in apology and hang-up included."""
        found = self.steps.get(name)
        if found is not None:
            return found
        if name == APOLOGY_STEP:
            return SpeakStep.model_construct(type="speak", params=self.apology, next=HANGUP_STEP)
        if name == HANGUP_STEP:
            return HangupStep(type="hangup")
        return None

    def failure_branch(self, step: FlowStep | None, name: str | None = None) -> str:
        """Where a failure of `step` (named `name`) goes: its own branch, else the flow's `on_error`,
        else the apology. The `on_error` step or the apology failing in turn hangs up: no loop."""
        own = step.failure_target() if step is not None else None
        if own:
            return own
        if name is not None and name in (self.on_error, APOLOGY_STEP):
            return HANGUP_STEP
        return self.on_error or APOLOGY_STEP

    def problems(self) -> list[FlowProblem]:
        """What single-field validation cannot see: references, loops, and fields the flow owns."""
        problems: list[FlowProblem] = []
        known = ", ".join(sorted(self.steps))
        if self.entry not in self.steps:
            problems.append(FlowProblem(f"no step named {self.entry!r} (steps: {known})", field="entry"))
        if self.on_error is not None and self.on_error not in self.steps:
            problems.append(FlowProblem(f"no step named {self.on_error!r} (steps: {known})", field="on_error"))
        for name, step in self.steps.items():
            for field, target in step.targets():
                if target not in self.steps:
                    problems.append(FlowProblem(f"no step named {target!r} (steps: {known})", name, field))
            problems.extend(_step_problems(name, step))
        problems.extend(self._loops())
        return problems

    def _loops(self) -> Iterator[FlowProblem]:
        """Steps that move on at once must not lead back to themselves: one webhook would send forever."""
        for start, step in self.steps.items():
            seen = [start]
            current: FlowStep | None = step
            while current is not None and current.kind is StepKind.CONTINUES:
                following = current.following()
                if following is None or following not in self.steps:
                    break
                if following == start:
                    loop = " -> ".join([*seen, start])
                    yield FlowProblem(f"{loop} loops without waiting for any event", start, "next")
                    break
                if following in seen:
                    break  # a loop that does not pass through `start`: reported from its own steps
                seen.append(following)
                current = self.steps[following]


def _step_problems(name: str, step: FlowStep) -> Iterator[FlowProblem]:
    if isinstance(step, MenuStep) and "maximum_tries" in step.params.params:
        yield FlowProblem("the flow repeats the menu itself; set the step's max_attempts", name, "params.maximum_tries")
    if isinstance(step, PlayStep) and not {"audio_url", "media_name", "playback_content"} & step.params.params.keys():
        yield FlowProblem("one of audio_url, media_name or playback_content is required", name, "params")
    if isinstance(step, MenuStep):
        try:  # what the flow adds to the params (maximum_digits, a retry prompt) must be valid too
            step.command(step.max_attempts, {})
        except InvalidCommandError as exc:
            yield from (FlowProblem(problem.message, name, params_field(problem.field)) for problem in exc.problems)
