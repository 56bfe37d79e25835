"""The steps of a flow: what each sends, when it moves on, and where it can lead.

Each step sends at most one Call Control command and says where the call goes
next. A step's `params` are that command's params, checked with
`voicebus.commands.validation.parse_command` when the flow is loaded, so a flow
that breaks Telnyx's spec (a wrong enum, a missing field) fails then, naming the
step and the field, rather than on a live call.

Steps come in three kinds (`Step.kind`):

- WAITS: the flow stays on the step until the event that ends it (answer until
  call.answered, speak until call.speak.ended, a menu until call.gather.ended...),
  or until its time limit (`timeout_secs`, `on_timeout`).
- CONTINUES: media and control commands (`continuing.py`) and `invoke` move on at
  once, so one webhook may send several commands.
- FINAL: transfer, refer and hangup hand the call over; transfer and refer still
  hear their failure (`on_failure`) and time limit.

Failures have a branch: a step's `on_error` / `on_failure`, else the flow's
`on_error`, else a spoken apology and a hang-up (`models.Flow.step`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, InstanceOf, JsonValue, StringConstraints, field_validator

from voicebus.commands.validation import CallCommand, parse_command
from voicebus.flows.continuing import (
    ContinuingStep,
    ForkStartStep,
    ForkStopStep,
    NoiseSuppressionStartStep,
    NoiseSuppressionStopStep,
    PlaybackStopStep,
    RecordPauseStep,
    RecordResumeStep,
    SendDtmfStep,
    SetClientStateStep,
    SiprecStartStep,
    SiprecStopStep,
    StreamingStartStep,
    StreamingStopStep,
    SwitchSupervisorRoleStep,
    TranscriptionStartStep,
    TranscriptionStopStep,
)
from voicebus.flows.step_base import (
    VARIABLE,
    DtmfKeys,
    LeadsOn,
    Name,
    Step,
    StepKind,
    VariableError,
    Waits,
    WaitsLeadsOn,
    no_params,
    params_field,
    render,
)

__all__ = [
    "STEP_TYPES",
    "VARIABLE",
    "AnswerStep",
    "AudioMenuStep",
    "ContinuingStep",
    "DtmfKeys",
    "FlowStep",
    "ForkStartStep",
    "ForkStopStep",
    "GatherStep",
    "HangupStep",
    "InvokeStep",
    "LeadsOn",
    "MenuStep",
    "Name",
    "NoiseSuppressionStartStep",
    "NoiseSuppressionStopStep",
    "PlayStep",
    "PlaybackStopStep",
    "RecordPauseStep",
    "RecordResumeStep",
    "RecordStep",
    "ReferStep",
    "SendDtmfStep",
    "SetClientStateStep",
    "SiprecStartStep",
    "SiprecStopStep",
    "SpeakStep",
    "Step",
    "StepKind",
    "StreamingStartStep",
    "StreamingStopStep",
    "SwitchSupervisorRoleStep",
    "TranscriptionStartStep",
    "TranscriptionStopStep",
    "TransferStep",
    "VariableError",
    "Waits",
    "WaitsLeadsOn",
    "no_params",
    "params_field",
    "render",
]

MAX_MENU_ATTEMPTS = 10
LOOP_FOREVER = "infinity"


# ---------------------------------------------------------------------------
# Steps that wait for an event


class AnswerStep(WaitsLeadsOn):
    """Answer the call; moves on at call.answered."""

    action: ClassVar[str] = "answer"
    default_timeout_secs: ClassVar[int | None] = 30
    type: Literal["answer"]
    params: InstanceOf[CallCommand] = no_params("answer")


class SpeakStep(WaitsLeadsOn):
    """Text-to-speech; moves on at call.speak.ended (a failed status takes `on_error`, else `next`)."""

    action: ClassVar[str] = "speak"
    default_timeout_secs: ClassVar[int | None] = 300
    type: Literal["speak"]
    on_error: Name | None = None


class PlayStep(WaitsLeadsOn):
    """Play audio (a URL, a stored media name or base64 content); moves on at call.playback.ended.

    A failed status takes `on_error`, else `next`. A `loop: infinity` play has no time
    limit unless given one: it ends with a `playback_stop` step, or the call.
    """

    action: ClassVar[str] = "playback_start"
    default_timeout_secs: ClassVar[int | None] = 600
    type: Literal["play"]
    on_error: Name | None = None

    def timeout_secs_for(self) -> int | None:
        if self.timeout_secs is None and self.params.params.get("loop") == LOOP_FOREVER:
            return None
        return super().timeout_secs_for()


class MenuStep(Waits):
    """Speak a prompt and gather DTMF; branch on the digits at call.gather.ended.

    Invalid input, unknown digits and no input repeat the menu until
    `max_attempts` visits, then go to `on_exhausted`. The flow does the repeating,
    so the command is sent with `maximum_tries: 1`, and `maximum_digits` defaults
    to the longest branch key (one key press ends the gather). A menu whose
    call.gather.ended never comes counts, at its time limit, as no input.
    """

    action: ClassVar[str] = "gather_using_speak"
    default_timeout_secs: ClassVar[int | None] = 120
    retry_field: ClassVar[str] = "payload"
    type: Literal["menu"]
    branches: dict[DtmfKeys, Name] = Field(min_length=1)
    max_attempts: int = Field(default=3, ge=1, le=MAX_MENU_ATTEMPTS)
    on_exhausted: Name
    retry_prompt: str | None = Field(default=None, min_length=1)
    """Spoken instead of `params.payload` from the second attempt on ("Sorry, ...")."""

    @field_validator("branches", mode="before")
    @classmethod
    def _keys_as_text(cls, value: object) -> object:
        """YAML reads `1: sales` with an integer key; a caller presses the key "1"."""
        if isinstance(value, dict):
            return {str(key) if isinstance(key, int) and key >= 0 else key: target for key, target in value.items()}
        return value

    def retry(self) -> str | None:
        return self.retry_prompt

    def command(self, attempt: int, client_state: dict[str, JsonValue]) -> CallCommand:
        update: dict[str, Any] = {"maximum_tries": 1}
        if "maximum_digits" not in self.params.params:
            update["maximum_digits"] = max(len(key) for key in self.branches)
        retry = self.retry()
        if attempt > 1 and retry is not None:
            update[self.retry_field] = retry
        return self.params.with_params(**update)

    def targets(self) -> Iterator[tuple[str, str]]:
        for key, target in self.branches.items():
            yield f"branches.{key}", target
        yield "on_exhausted", self.on_exhausted
        yield from super().targets()


class AudioMenuStep(MenuStep):
    """A menu whose prompt is recorded audio (gather_using_audio): `params.audio_url` or `media_name`."""

    action: ClassVar[str] = "gather_using_audio"
    retry_field: ClassVar[str] = "audio_url"
    type: Literal["audio_menu"]  # type: ignore[assignment]
    retry_prompt: None = None
    retry_audio_url: str | None = Field(default=None, min_length=1)
    """Played instead of the prompt from the second attempt on."""

    def retry(self) -> str | None:
        return self.retry_audio_url


class GatherStep(WaitsLeadsOn):
    """Collect DTMF with no prompt (gather); the digits are stored as `${vars.<save_as>}`.

    At call.gather.ended: digits that match a key of `branches` go there, other digits
    go to `next`, no input (or the time limit) to `on_no_input`, else `next`.
    """

    action: ClassVar[str] = "gather"
    default_timeout_secs: ClassVar[int | None] = 120
    type: Literal["gather"]
    params: InstanceOf[CallCommand] = no_params("gather")
    save_as: Name = "digits"
    branches: dict[DtmfKeys, Name] = Field(default_factory=dict)
    on_no_input: Name | None = None

    _keys_as_text = field_validator("branches", mode="before")(MenuStep._keys_as_text.__func__)  # type: ignore[attr-defined]

    def targets(self) -> Iterator[tuple[str, str]]:
        for key, target in self.branches.items():
            yield f"branches.{key}", target
        if self.on_no_input is not None:
            yield "on_no_input", self.on_no_input
        yield from super().targets()


class RecordStep(WaitsLeadsOn):
    """Record the call (voicemail); moves on at call.recording.saved, to `on_error` at call.recording.error.

    `record_start` has no finish-on-key option, so the flow provides it: a
    call.dtmf.received with one of `finish_on_key` sends `record_stop`. The time
    limit defaults to `max_length` plus a minute for the recording to be saved.
    """

    action: ClassVar[str] = "record_start"
    type: Literal["record"]
    finish_on_key: DtmfKeys | None = None
    on_error: Name | None = None

    def stop_command(self) -> CallCommand:
        """Sent at a finish key: without a recording_id it stops every recording of the call."""
        return parse_command("record_stop")

    def timeout_secs_for(self) -> int | None:
        if self.timeout_secs is not None:
            return self.timeout_secs
        max_length = self.params.params.get("max_length")
        return int(max_length) + 60 if isinstance(max_length, int) and max_length > 0 else None


# ---------------------------------------------------------------------------
# Steps that hand the call over (and hear when that fails)


class TransferStep(Waits):
    """Dial another number and bridge the caller to it.

    The far leg carries the flow's position (`target_leg_client_state`), so its
    call.hangup before a call.bridged reaches this flow: `on_failure` runs, as it
    does when no call.bridged comes within `timeout_secs` (default: the dial's own
    `timeout_secs`, 30 s unless set, plus 30 s).
    """

    kind: ClassVar[StepKind] = StepKind.FINAL
    action: ClassVar[str] = "transfer"
    type: Literal["transfer"]
    on_failure: Name | None = None

    def timeout_secs_for(self) -> int | None:
        if self.timeout_secs is not None:
            return self.timeout_secs
        dial = self.params.params.get("timeout_secs")
        return (int(dial) if isinstance(dial, int) else 30) + 30


class ReferStep(Waits):
    """Send a SIP REFER: the far end moves the call; call.refer.failed (or no answer) takes `on_failure`."""

    kind: ClassVar[StepKind] = StepKind.FINAL
    action: ClassVar[str] = "refer"
    default_timeout_secs: ClassVar[int | None] = 60
    type: Literal["refer"]
    on_failure: Name | None = None


class HangupStep(Step):
    kind: ClassVar[StepKind] = StepKind.FINAL
    action: ClassVar[str] = "hangup"
    type: Literal["hangup"]
    params: InstanceOf[CallCommand] = no_params("hangup")


# ---------------------------------------------------------------------------
# Your code


class InvokeStep(BaseModel):
    """Call a Lambda function of yours, synchronously, and continue by its JSON result.

    The function gets the call's context (ids, parties, digits gathered, flow
    variables, `payload`) and must answer within `timeout_millis`. Every field of its
    result (a JSON object) becomes a flow variable (`${vars.name}` in later params);
    `sets` names the fields it must return. `branch_on` picks the next step by one
    result field's value (`branches`), else `next`. An error, a timeout, a missing
    `sets` field or a result that is not an object takes `on_error`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: ClassVar[StepKind] = StepKind.CONTINUES

    type: Literal["invoke"]
    function: Annotated[str, StringConstraints(min_length=1, max_length=170)]
    timeout_millis: int = Field(default=3000, ge=100, le=20_000)
    payload: dict[str, JsonValue] = Field(default_factory=dict)
    sets: list[Name] = Field(default_factory=list)
    branch_on: Name | None = None
    branches: dict[str, Name] = Field(default_factory=dict)
    next: Name | None = None
    on_error: Name | None = None

    def following(self) -> str | None:
        return self.next

    def targets(self) -> Iterator[tuple[str, str]]:
        for value, target in self.branches.items():
            yield f"branches.{value}", target
        if self.next is not None:
            yield "next", self.next
        if self.on_error is not None:
            yield "on_error", self.on_error

    def timeout_secs_for(self) -> int | None:
        return None

    def failure_target(self) -> str | None:
        return self.on_error

    def choose(self, result: dict[str, JsonValue]) -> str | None:
        """The next step for `result`: by `branch_on`'s value in `branches`, else `next`."""
        if self.branch_on is not None:
            value = result.get(self.branch_on)
            key = value if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else str(value)
            if key in self.branches:
                return self.branches[key]
        return self.next


FlowStep = Annotated[
    AnswerStep
    | SpeakStep
    | PlayStep
    | MenuStep
    | AudioMenuStep
    | GatherStep
    | RecordStep
    | TransferStep
    | ReferStep
    | HangupStep
    | InvokeStep
    | SendDtmfStep
    | StreamingStartStep
    | StreamingStopStep
    | ForkStartStep
    | ForkStopStep
    | TranscriptionStartStep
    | TranscriptionStopStep
    | SiprecStartStep
    | SiprecStopStep
    | NoiseSuppressionStartStep
    | NoiseSuppressionStopStep
    | PlaybackStopStep
    | RecordPauseStep
    | RecordResumeStep
    | SwitchSupervisorRoleStep
    | SetClientStateStep,
    Field(discriminator="type"),
]

STEP_TYPES: tuple[str, ...] = tuple(
    get_args(model.model_fields["type"].annotation)[0] for model in get_args(get_args(FlowStep)[0])
)
"""Every `type:` a step may have, read from FlowStep's members (for "did you mean" hints)."""
