"""Steps that move on at once: media and control commands that no event ends.

Each sends its command and the flow enters `next` in the same webhook, so one
webhook may send several commands (live_media.yaml starts three this way).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, InstanceOf, JsonValue

from voicebus.commands.validation import CLIENT_STATE_UPDATE, CallCommand, parse_command
from voicebus.flows.step_base import LeadsOn, Name, StepKind, no_params


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
    params: InstanceOf[CallCommand] = no_params("streaming_stop")


class ForkStartStep(ContinuingStep):
    action: ClassVar[str] = "fork_start"
    type: Literal["fork_start"]


class ForkStopStep(ContinuingStep):
    action: ClassVar[str] = "fork_stop"
    type: Literal["fork_stop"]
    params: InstanceOf[CallCommand] = no_params("fork_stop")


class TranscriptionStartStep(ContinuingStep):
    action: ClassVar[str] = "transcription_start"
    type: Literal["transcription_start"]
    params: InstanceOf[CallCommand] = no_params("transcription_start")


class TranscriptionStopStep(ContinuingStep):
    action: ClassVar[str] = "transcription_stop"
    type: Literal["transcription_stop"]
    params: InstanceOf[CallCommand] = no_params("transcription_stop")


class SiprecStartStep(ContinuingStep):
    """Start SIPREC. Telnyx takes no command_id here: a redelivered webhook may start it twice."""

    action: ClassVar[str] = "siprec_start"
    type: Literal["siprec_start"]
    params: InstanceOf[CallCommand] = no_params("siprec_start")


class SiprecStopStep(ContinuingStep):
    action: ClassVar[str] = "siprec_stop"
    type: Literal["siprec_stop"]
    params: InstanceOf[CallCommand] = no_params("siprec_stop")


class NoiseSuppressionStartStep(ContinuingStep):
    action: ClassVar[str] = "suppression_start"
    type: Literal["suppression_start"]
    params: InstanceOf[CallCommand] = no_params("suppression_start")


class NoiseSuppressionStopStep(ContinuingStep):
    action: ClassVar[str] = "suppression_stop"
    type: Literal["suppression_stop"]
    params: InstanceOf[CallCommand] = no_params("suppression_stop")


class PlaybackStopStep(ContinuingStep):
    """Stop audio playing on the call (a `loop: infinity` play step never ends by itself)."""

    action: ClassVar[str] = "playback_stop"
    type: Literal["playback_stop"]
    params: InstanceOf[CallCommand] = no_params("playback_stop")


class RecordPauseStep(ContinuingStep):
    """Pause the call's recording (PCI: while a card number is spoken); no webhook says so."""

    action: ClassVar[str] = "record_pause"
    type: Literal["record_pause"]
    params: InstanceOf[CallCommand] = no_params("record_pause")


class RecordResumeStep(ContinuingStep):
    action: ClassVar[str] = "record_resume"
    type: Literal["record_resume"]
    params: InstanceOf[CallCommand] = no_params("record_resume")


class SwitchSupervisorRoleStep(ContinuingStep):
    """Barge, whisper or monitor on a bridged call. Telnyx takes neither command_id nor client_state here."""

    action: ClassVar[str] = "switch_supervisor_role"
    type: Literal["switch_supervisor_role"]


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

    def timeout_secs_for(self) -> int | None:
        return None

    def failure_target(self) -> str | None:
        return None
