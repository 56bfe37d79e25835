"""The steps of a flow: what each sends, when it moves on, and where it can lead.

Each step sends at most one Call Control command and says where the call goes
next. A step's `params` are that command's params, checked with
`voicebus.commands.validation.parse_command` when the flow is loaded, so a flow
that breaks Telnyx's spec (a wrong enum, a missing field) fails then, naming the
step and the field, rather than on a live call.

Steps come in three kinds (`Step.kind`):

- WAITS: the flow stays on the step until the event that ends it (answer until
  call.answered, speak until call.speak.ended, a menu until call.gather.ended...).
- CONTINUES: media and control commands (streaming, forking, transcription,
  SIPREC, noise suppression, DTMF, client state) move on to `next` at once,
  so one webhook may send several commands.
- FINAL: transfer, refer and hangup hand the call over; the flow goes no further.
"""

from __future__ import annotations

from collections.abc import Iterator
from enum import StrEnum
from functools import partial
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, InstanceOf, JsonValue, StringConstraints, field_validator

from voicebus.commands.validation import CLIENT_STATE_UPDATE, CallCommand, parse_command

MAX_MENU_ATTEMPTS = 10

Name = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
"""Flow and step names: short lower-case identifiers, since every command's client_state carries them."""

DtmfKeys = Annotated[str, StringConstraints(pattern=r"^[0-9A-D*#]+$")]
"""Keys a caller can press."""


class StepKind(StrEnum):
    WAITS = "waits"
    CONTINUES = "continues"
    FINAL = "final"


def _no_params(action: str) -> Any:
    """A `params` default: the action sent without params."""
    return Field(default_factory=partial(parse_command, action))


class Step(BaseModel):
    """A step that sends one command: `action` with the step's `params`, validated when the flow loads."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: ClassVar[StepKind] = StepKind.WAITS
    action: ClassVar[str]

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


class LeadsOn(Step):
    """A step with a `next`."""

    next: Name | None = None

    def following(self) -> str | None:
        return self.next


# ---------------------------------------------------------------------------
# Steps that wait for an event


class AnswerStep(LeadsOn):
    """Answer the call; moves on at call.answered."""

    action: ClassVar[str] = "answer"
    type: Literal["answer"]
    params: InstanceOf[CallCommand] = _no_params("answer")


class SpeakStep(LeadsOn):
    """Text-to-speech; moves on at call.speak.ended."""

    action: ClassVar[str] = "speak"
    type: Literal["speak"]


class PlayStep(LeadsOn):
    """Play audio (a URL, a stored media name or base64 content); moves on at call.playback.ended."""

    action: ClassVar[str] = "playback_start"
    type: Literal["play"]


class MenuStep(Step):
    """Speak a prompt and gather DTMF; branch on the digits at call.gather.ended.

    Invalid input, unknown digits and no input repeat the menu until
    `max_attempts` visits, then go to `on_exhausted`. The flow does the repeating,
    so the command is sent with `maximum_tries: 1`, and `maximum_digits` defaults
    to the longest branch key (one key press ends the gather).
    """

    action: ClassVar[str] = "gather_using_speak"
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

    def command(self, attempt: int, client_state: dict[str, JsonValue]) -> CallCommand:
        update: dict[str, Any] = {"maximum_tries": 1}
        if "maximum_digits" not in self.params.params:
            update["maximum_digits"] = max(len(key) for key in self.branches)
        if attempt > 1 and self.retry_prompt is not None:
            update["payload"] = self.retry_prompt
        return self.params.with_params(**update)

    def targets(self) -> Iterator[tuple[str, str]]:
        for key, target in self.branches.items():
            yield f"branches.{key}", target
        yield "on_exhausted", self.on_exhausted


class RecordStep(LeadsOn):
    """Record the call (voicemail); moves on at call.recording.saved.

    `record_start` has no finish-on-key option, so the flow provides it: a
    call.dtmf.received with one of `finish_on_key` sends `record_stop`.
    """

    action: ClassVar[str] = "record_start"
    type: Literal["record"]
    finish_on_key: DtmfKeys | None = None

    def stop_command(self) -> CallCommand:
        """Sent at a finish key: without a recording_id it stops every recording of the call."""
        return parse_command("record_stop")


# ---------------------------------------------------------------------------
# Steps that hand the call over


class TransferStep(Step):
    """Dial another number and bridge the caller to it."""

    kind: ClassVar[StepKind] = StepKind.FINAL
    action: ClassVar[str] = "transfer"
    type: Literal["transfer"]


class ReferStep(Step):
    """Send a SIP REFER: the far end moves the call."""

    kind: ClassVar[StepKind] = StepKind.FINAL
    action: ClassVar[str] = "refer"
    type: Literal["refer"]


class HangupStep(Step):
    kind: ClassVar[StepKind] = StepKind.FINAL
    action: ClassVar[str] = "hangup"
    type: Literal["hangup"]
    params: InstanceOf[CallCommand] = _no_params("hangup")


# ---------------------------------------------------------------------------
# Steps that move on at once


class ContinuingStep(LeadsOn):
    kind: ClassVar[StepKind] = StepKind.CONTINUES


class SendDtmfStep(ContinuingStep):
    action: ClassVar[str] = "send_dtmf"
    type: Literal["send_dtmf"]


class StreamingStartStep(ContinuingStep):
    action: ClassVar[str] = "streaming_start"
    type: Literal["streaming_start"]


class StreamingStopStep(ContinuingStep):
    action: ClassVar[str] = "streaming_stop"
    type: Literal["streaming_stop"]
    params: InstanceOf[CallCommand] = _no_params("streaming_stop")


class ForkStartStep(ContinuingStep):
    action: ClassVar[str] = "fork_start"
    type: Literal["fork_start"]


class ForkStopStep(ContinuingStep):
    action: ClassVar[str] = "fork_stop"
    type: Literal["fork_stop"]
    params: InstanceOf[CallCommand] = _no_params("fork_stop")


class TranscriptionStartStep(ContinuingStep):
    action: ClassVar[str] = "transcription_start"
    type: Literal["transcription_start"]
    params: InstanceOf[CallCommand] = _no_params("transcription_start")


class TranscriptionStopStep(ContinuingStep):
    action: ClassVar[str] = "transcription_stop"
    type: Literal["transcription_stop"]
    params: InstanceOf[CallCommand] = _no_params("transcription_stop")


class SiprecStartStep(ContinuingStep):
    """Start SIPREC. Telnyx takes no command_id here: a redelivered webhook may start it twice."""

    action: ClassVar[str] = "siprec_start"
    type: Literal["siprec_start"]
    params: InstanceOf[CallCommand] = _no_params("siprec_start")


class SiprecStopStep(ContinuingStep):
    action: ClassVar[str] = "siprec_stop"
    type: Literal["siprec_stop"]
    params: InstanceOf[CallCommand] = _no_params("siprec_stop")


class NoiseSuppressionStartStep(ContinuingStep):
    action: ClassVar[str] = "suppression_start"
    type: Literal["suppression_start"]
    params: InstanceOf[CallCommand] = _no_params("suppression_start")


class NoiseSuppressionStopStep(ContinuingStep):
    action: ClassVar[str] = "suppression_stop"
    type: Literal["suppression_stop"]
    params: InstanceOf[CallCommand] = _no_params("suppression_stop")


class SetClientStateStep(BaseModel):
    """Add `values` to the data every later command's client_state carries (sent as client_state_update)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: ClassVar[StepKind] = StepKind.CONTINUES

    type: Literal["set_client_state"]
    values: dict[str, JsonValue] = Field(min_length=1)
    next: Name | None = None

    def command(self, attempt: int, client_state: dict[str, JsonValue]) -> CallCommand:
        return parse_command(CLIENT_STATE_UPDATE, {"client_state": client_state})

    def following(self) -> str | None:
        return self.next

    def targets(self) -> Iterator[tuple[str, str]]:
        if self.next is not None:
            yield "next", self.next


FlowStep = Annotated[
    AnswerStep
    | SpeakStep
    | PlayStep
    | MenuStep
    | RecordStep
    | TransferStep
    | ReferStep
    | HangupStep
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
    | SetClientStateStep,
    Field(discriminator="type"),
]

STEP_TYPES: tuple[str, ...] = tuple(
    get_args(model.model_fields["type"].annotation)[0] for model in get_args(get_args(FlowStep)[0])
)
"""Every `type:` a step may have, read from FlowStep's members (for "did you mean" hints)."""


def params_field(field: str) -> str:
    """Where a command's field sits in a step: under `params`."""
    return f"params.{field}" if field else "params"
