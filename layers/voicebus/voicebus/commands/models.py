"""One pydantic model per Call Control action, so a wrong parameter fails here, naming the field, not at Telnyx.

Field names, requirements, bounds and enumerations come from Telnyx's OpenAPI
spec (the request schema named in each docstring); tests/unit/test_commands.py
checks every model against the vendored copy. Optional fields default to None
and are left out of the request, so Telnyx applies its own defaults.

`client_state` and `command_id` are not fields: `CommandSender` sets both on
every send (client_state_update is the exception: its client_state is the point
of the command). Nested objects that voicebus does not build itself (AI
assistant, conversation relay, transcription engine configs) are passed through
as JSON objects and checked by Telnyx.

This module does not import the telnyx SDK: a function that only validates
commands (the flow engine) does not pay for it.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Annotated, Any, ClassVar, Final, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    ValidationError,
    field_validator,
)
from pydantic_core import ErrorDetails

from voicebus.calls import client_state
from voicebus.commands.enums import (
    AnsweringMachineDetection,
    AnswerPreferredCodecs,
    AudioType,
    AzureVoiceEffect,
    AzureVoiceGender,
    ForkStartStreamType,
    ForkStopStreamType,
    InworldDeliveryMode,
    MediaEncryption,
    MinimaxLanguageBoost,
    MuteDtmf,
    NoiseSuppressionDirection,
    NoiseSuppressionEngine,
    NoiseSuppressionFamily,
    NoiseSuppressionMode,
    NoiseSuppressionModel,
    NoiseSuppressionSize,
    PayloadType,
    Privacy,
    RecordFromAnswer,
    RecordingChannels,
    RecordingFormat,
    RecordingTrack,
    RecordingTranscriptionEngine,
    RecordingTrim,
    RejectCause,
    ResembleFormat,
    ResemblePrecision,
    ResembleSampleRate,
    Ringtone,
    ServiceLevel,
    SipHeaderName,
    SiprecTransport,
    SipRegion,
    SipTransportProtocol,
    SpeakLanguage,
    StreamBidirectionalCodec,
    StreamBidirectionalMode,
    StreamBidirectionalSamplingRate,
    StreamBidirectionalTargetLegs,
    StreamCodec,
    StreamTrack,
    SupervisorRole,
    TargetLegs,
    TranscriptionEngine,
    TranscriptionLanguage,
    TranscriptionTracks,
    WebhookMethod,
)

JsonObject = dict[str, JsonValue]
"""A nested object voicebus passes through unchanged; Telnyx checks it."""

Loop = Annotated[int, Field(ge=1, le=100)] | Literal["infinity"]
"""components/schemas/Loopcount is `string | integer`; its description allows 1 to 100 or "infinity"."""

DtmfDigits = Annotated[str, StringConstraints(min_length=1, pattern=r"^[0-9A-D*#wW]+$")]
"""SendDTMFRequest.digits as described: 0-9, A-D, * and #, with w (0.5 s) and W (1 s) pauses."""


def _uuid_text(value: str) -> str:
    try:
        canonical = str(UUID(value))
    except ValueError:
        raise ValueError("must be a UUID such as 3fa85f64-5717-4562-b3fc-2c963f66afa6") from None
    if canonical != value.lower():
        raise ValueError("must be a UUID in its 36-character hyphenated form")
    return value


UuidText = Annotated[str, AfterValidator(_uuid_text)]
"""A string with the spec's `format: uuid`, kept as given (Telnyx ids are lower-case)."""

FileName = Annotated[str, StringConstraints(min_length=1, max_length=40)]
"""custom_file_name and record_custom_file_name: 1 to 40 characters."""

_MAX_SHOWN_INPUT = 60
_SENDER_FIELDS = frozenset({"client_state", "command_id"})


# ---------------------------------------------------------------------------
# Nested objects of the request bodies


class BodyObject(BaseModel):
    """A nested object of a request body: unknown keys are refused, as on the commands."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class CustomSipHeader(BodyObject):
    """components/schemas/CustomSipHeader."""

    name: str
    value: str


class SipHeader(BodyObject):
    """components/schemas/SipHeader: Telnyx supports only User-to-User."""

    name: SipHeaderName
    value: str


class StreamCustomParameter(BodyObject):
    """An item of StartStreamingRequest.custom_parameters, sent on the WebSocket connection."""

    name: str | None = None
    value: str | None = None


class DialogflowConfig(BodyObject):
    """components/schemas/DialogflowConfig."""

    analyze_sentiment: bool | None = None
    partial_automated_agent_reply: bool | None = None


class SoundModifications(BodyObject):
    """components/schemas/SoundModifications."""

    octaves: float | None = None
    pitch: float | None = None
    semitone: float | None = None
    track: str | None = None


class DeepfakeDetection(BodyObject):
    """AnswerRequest.deepfake_detection."""

    enabled: bool
    rtp_timeout: int | None = Field(default=None, ge=5, le=120)
    timeout: int | None = Field(default=None, ge=5, le=60)


class WebhookRetryPolicy(BodyObject):
    """A value of webhook_retries_policies: up to five retry delays in milliseconds."""

    retries_ms: list[int] | None = Field(default=None, max_length=5)


class AnsweringMachineDetectionConfig(BodyObject):
    """TransferCallRequest.answering_machine_detection_config."""

    after_greeting_silence_millis: int | None = None
    between_words_silence_millis: int | None = None
    greeting_duration_millis: int | None = None
    greeting_silence_duration_millis: int | None = None
    greeting_total_analysis_time_millis: int | None = None
    initial_silence_millis: int | None = None
    maximum_number_of_words: int | None = None
    maximum_word_length_millis: int | None = None
    silence_threshold: int | None = None
    total_analysis_time_millis: int | None = None


class NoiseSuppressionEngineConfig(BodyObject):
    """components/schemas/NoiseSuppressionEngineConfig."""

    attenuation_limit: int | None = Field(default=None, ge=0, le=100)
    enhancement_level: float | None = Field(default=None, ge=0.0, le=1.0)
    family: NoiseSuppressionFamily | None = None
    mode: NoiseSuppressionMode | None = None
    model: NoiseSuppressionModel | None = None
    size: NoiseSuppressionSize | None = None
    suppression_level: float | None = Field(default=None, ge=0.0, le=100.0)
    voice_gain: float | None = Field(default=None, ge=0.1, le=4.0)


class ElevenLabsVoiceSettings(BodyObject):
    """components/schemas/ElevenLabsVoiceSettings."""

    type: Literal["elevenlabs"]
    api_key_ref: str | None = None


class TelnyxVoiceSettings(BodyObject):
    """components/schemas/TelnyxVoiceSettings."""

    type: Literal["telnyx"]
    voice_speed: float | None = Field(default=None, ge=0.1, le=2.0)


class AWSVoiceSettings(BodyObject):
    """components/schemas/AWSVoiceSettings."""

    type: Literal["aws"]


class MinimaxVoiceSettings(BodyObject):
    """components/schemas/MinimaxVoiceSettings."""

    type: Literal["minimax"]
    language_boost: MinimaxLanguageBoost | None = None
    pitch: int | None = None
    speed: float | None = None
    vol: float | None = None


class AzureVoiceSettings(BodyObject):
    """components/schemas/AzureVoiceSettings."""

    type: Literal["azure"]
    api_key_ref: str | None = None
    deployment_id: str | None = None
    effect: AzureVoiceEffect | None = None
    gender: AzureVoiceGender | None = None
    region: str | None = None


class RimeVoiceSettings(BodyObject):
    """components/schemas/RimeVoiceSettings."""

    type: Literal["rime"]
    voice_speed: float | None = None


class ResembleVoiceSettings(BodyObject):
    """components/schemas/ResembleVoiceSettings."""

    type: Literal["resemble"]
    format: ResembleFormat | None = None
    precision: ResemblePrecision | None = None
    sample_rate: ResembleSampleRate | None = None


class InworldVoiceSettings(BodyObject):
    """components/schemas/InworldVoiceSettings."""

    type: Literal["inworld"]
    delivery_mode: InworldDeliveryMode | None = None


class XAIVoiceSettings(BodyObject):
    """components/schemas/XAIVoiceSettings."""

    type: Literal["xai"]
    language: str | None = None


VoiceSettings = Annotated[
    ElevenLabsVoiceSettings
    | TelnyxVoiceSettings
    | AWSVoiceSettings
    | MinimaxVoiceSettings
    | AzureVoiceSettings
    | RimeVoiceSettings
    | ResembleVoiceSettings
    | InworldVoiceSettings
    | XAIVoiceSettings,
    Field(discriminator="type"),
]
"""voice_settings of speak and gather_using_speak, told apart by `type` as in the spec."""


# ---------------------------------------------------------------------------
# The commands


class CallCommand(BaseModel):
    """The parameters of one Call Control command, valid by Telnyx's spec.

    Subclasses name their action (the last segment of
    `/calls/{call_control_id}/actions/<action>`) and the SDK method of
    `client.calls.actions` that sends it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: ClassVar[str]
    sdk_method: ClassVar[str]
    http_method: ClassVar[Literal["POST", "PUT"]] = "POST"
    takes_command_id: ClassVar[bool] = True
    """False where neither the spec nor the SDK has a command_id field."""
    takes_client_state: ClassVar[bool] = True
    """False where the command cannot carry a client_state set by the sender."""
    sdk_renames: ClassVar[Mapping[str, str]] = MappingProxyType({})
    """Body field -> SDK keyword, where the SDK names a field differently."""

    def body(self) -> dict[str, Any]:
        """The JSON fields this command puts in the request body, named as Telnyx names them."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    def sdk_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for the SDK method, without client_state and command_id."""
        fields = self.model_dump(mode="json", by_alias=False, exclude_none=True)
        return {self.sdk_renames.get(name, name): value for name, value in fields.items()}


class Answer(CallCommand):
    """Answer an incoming call (AnswerRequest)."""

    action: ClassVar[str] = "answer"
    sdk_method: ClassVar[str] = "answer"

    assistant: JsonObject | None = None
    billing_group_id: UuidText | None = None
    conversation_relay_config: JsonObject | None = None
    custom_headers: list[CustomSipHeader] | None = None
    deepfake_detection: DeepfakeDetection | None = None
    preferred_codecs: AnswerPreferredCodecs | None = None
    record: RecordFromAnswer | None = None
    record_channels: RecordingChannels | None = None
    record_custom_file_name: FileName | None = None
    record_format: RecordingFormat | None = None
    record_max_length: int | None = None
    record_timeout_secs: int | None = None
    record_track: RecordingTrack | None = None
    record_trim: RecordingTrim | None = None
    send_silence_when_idle: bool | None = None
    sip_headers: list[SipHeader] | None = None
    sound_modifications: SoundModifications | None = None
    stream_bidirectional_codec: StreamBidirectionalCodec | None = None
    stream_bidirectional_mode: StreamBidirectionalMode | None = None
    stream_bidirectional_target_legs: StreamBidirectionalTargetLegs | None = None
    stream_codec: StreamCodec | None = None
    stream_track: StreamTrack | None = None
    stream_url: str | None = None
    transcription: bool | None = None
    transcription_config: JsonObject | None = None
    webhook_retries_policies: dict[str, WebhookRetryPolicy] | None = None
    webhook_url: str | None = None
    webhook_url_method: WebhookMethod | None = None
    webhook_urls: dict[str, str] | None = None
    webhook_urls_method: WebhookMethod | None = None


class Hangup(CallCommand):
    """Hang up the call (HangupRequest)."""

    action: ClassVar[str] = "hangup"
    sdk_method: ClassVar[str] = "hangup"

    custom_headers: list[CustomSipHeader] | None = None


class Reject(CallCommand):
    """Refuse an incoming call without answering it (RejectRequest)."""

    action: ClassVar[str] = "reject"
    sdk_method: ClassVar[str] = "reject"

    cause: RejectCause


class Bridge(CallCommand):
    """Connect this call's audio with another call's (BridgeRequest).

    `call_control_id` is the *other* call; the SDK names it `call_control_id_to_bridge_with`.
    """

    action: ClassVar[str] = "bridge"
    sdk_method: ClassVar[str] = "bridge"
    sdk_renames: ClassVar[Mapping[str, str]] = MappingProxyType({"call_control_id": "call_control_id_to_bridge_with"})

    call_control_id: str = Field(min_length=1)
    hold_after_unbridge: bool | None = None
    mute_dtmf: MuteDtmf | None = None
    park_after_unbridge: str | None = None
    play_ringtone: bool | None = None
    prevent_double_bridge: bool | None = None
    queue: str | None = None
    record: RecordFromAnswer | None = None
    record_channels: RecordingChannels | None = None
    record_custom_file_name: FileName | None = None
    record_format: RecordingFormat | None = None
    record_max_length: int | None = None
    record_timeout_secs: int | None = None
    record_track: RecordingTrack | None = None
    record_trim: RecordingTrim | None = None
    ringtone: Ringtone | None = None
    video_room_context: str | None = None
    video_room_id: UuidText | None = None


class Transfer(CallCommand):
    """Dial another destination and bridge the call to it (TransferCallRequest).

    The body's `from` is `from_` in Python (and in the SDK); params may use either.
    """

    action: ClassVar[str] = "transfer"
    sdk_method: ClassVar[str] = "transfer"

    to: str = Field(min_length=1)
    answering_machine_detection: AnsweringMachineDetection | None = None
    answering_machine_detection_config: AnsweringMachineDetectionConfig | None = None
    audio_url: str | None = None
    custom_headers: list[CustomSipHeader] | None = None
    early_media: bool | None = None
    from_: str | None = Field(default=None, validation_alias=AliasChoices("from", "from_"), serialization_alias="from")
    from_display_name: str | None = None
    media_encryption: MediaEncryption | None = None
    media_name: str | None = None
    mute_dtmf: MuteDtmf | None = None
    park_after_unbridge: str | None = None
    preferred_codecs: str | None = None
    privacy: Privacy | None = None
    record: RecordFromAnswer | None = None
    record_channels: RecordingChannels | None = None
    record_custom_file_name: FileName | None = None
    record_format: RecordingFormat | None = None
    record_max_length: int | None = None
    record_timeout_secs: int | None = None
    record_track: RecordingTrack | None = None
    record_trim: RecordingTrim | None = None
    send_digits_on_answer: str | None = None
    sip_auth_password: str | None = None
    sip_auth_username: str | None = None
    sip_headers: list[SipHeader] | None = None
    sip_region: SipRegion | None = None
    sip_transport_protocol: SipTransportProtocol | None = None
    sound_modifications: SoundModifications | None = None
    target_leg_client_state: str | None = None
    time_limit_secs: int | None = Field(default=None, ge=30, le=14400)
    timeout_secs: int | None = None
    webhook_retries_policies: dict[str, WebhookRetryPolicy] | None = None
    webhook_url: str | None = None
    webhook_url_method: WebhookMethod | None = None
    webhook_urls: dict[str, str] | None = None
    webhook_urls_method: WebhookMethod | None = None


class Refer(CallCommand):
    """Send a SIP REFER to move the call elsewhere (ReferRequest)."""

    action: ClassVar[str] = "refer"
    sdk_method: ClassVar[str] = "refer"

    sip_address: str = Field(min_length=1)
    custom_headers: list[CustomSipHeader] | None = None
    sip_auth_password: str | None = None
    sip_auth_username: str | None = None
    sip_headers: list[SipHeader] | None = None


class PlaybackStart(CallCommand):
    """Play an audio file, a stored media or base64 audio on the call (PlayAudioUrlRequest)."""

    action: ClassVar[str] = "playback_start"
    sdk_method: ClassVar[str] = "start_playback"

    audio_type: AudioType | None = None
    audio_url: str | None = None
    cache_audio: bool | None = None
    loop: Loop | None = None
    media_name: str | None = None
    overlay: bool | None = None
    playback_content: str | None = None
    stop: str | None = None
    target_legs: TargetLegs | None = None


class PlaybackStop(CallCommand):
    """Stop audio playback (PlaybackStopRequest)."""

    action: ClassVar[str] = "playback_stop"
    sdk_method: ClassVar[str] = "stop_playback"

    overlay: bool | None = None
    stop: str | None = None


class Speak(CallCommand):
    """Text-to-speech on the call (SpeakRequest)."""

    action: ClassVar[str] = "speak"
    sdk_method: ClassVar[str] = "speak"

    payload: str = Field(min_length=1)
    voice: str = Field(min_length=1)
    language: SpeakLanguage | None = None
    loop: Loop | None = None
    payload_type: PayloadType | None = None
    service_level: ServiceLevel | None = None
    stop: str | None = None
    target_legs: TargetLegs | None = None
    voice_settings: VoiceSettings | None = None


class Gather(CallCommand):
    """Collect DTMF digits without a prompt (GatherRequest)."""

    action: ClassVar[str] = "gather"
    sdk_method: ClassVar[str] = "gather"

    gather_id: str | None = Field(default=None, min_length=1, max_length=40)
    initial_timeout_millis: int | None = None
    inter_digit_timeout_millis: int | None = None
    maximum_digits: int | None = None
    minimum_digits: int | None = None
    terminating_digit: str | None = None
    timeout_millis: int | None = None
    valid_digits: str | None = None


class GatherUsingSpeak(CallCommand):
    """Speak a prompt, then collect DTMF digits (GatherUsingSpeakRequest)."""

    action: ClassVar[str] = "gather_using_speak"
    sdk_method: ClassVar[str] = "gather_using_speak"

    payload: str = Field(min_length=1)
    voice: str = Field(min_length=1)
    inter_digit_timeout_millis: int | None = None
    invalid_payload: str | None = None
    language: SpeakLanguage | None = None
    maximum_digits: int | None = None
    maximum_tries: int | None = None
    minimum_digits: int | None = None
    payload_type: PayloadType | None = None
    service_level: ServiceLevel | None = None
    terminating_digit: str | None = None
    timeout_millis: int | None = None
    valid_digits: str | None = None
    voice_settings: VoiceSettings | None = None


class GatherUsingAudio(CallCommand):
    """Play an audio prompt, then collect DTMF digits (GatherUsingAudioRequest)."""

    action: ClassVar[str] = "gather_using_audio"
    sdk_method: ClassVar[str] = "gather_using_audio"

    audio_url: str | None = None
    inter_digit_timeout_millis: int | None = None
    invalid_audio_url: str | None = None
    invalid_media_name: str | None = None
    maximum_digits: int | None = None
    maximum_tries: int | None = None
    media_name: str | None = None
    minimum_digits: int | None = None
    terminating_digit: str | None = None
    timeout_millis: int | None = None
    valid_digits: str | None = None


class GatherStop(CallCommand):
    """Stop the current gather (StopGatherRequest)."""

    action: ClassVar[str] = "gather_stop"
    sdk_method: ClassVar[str] = "stop_gather"


class SendDtmf(CallCommand):
    """Send DTMF tones on the call (SendDTMFRequest)."""

    action: ClassVar[str] = "send_dtmf"
    sdk_method: ClassVar[str] = "send_dtmf"

    digits: DtmfDigits
    duration_millis: int | None = None


class RecordStart(CallCommand):
    """Start recording the call (StartRecordingRequest)."""

    action: ClassVar[str] = "record_start"
    sdk_method: ClassVar[str] = "start_recording"

    channels: RecordingChannels
    format: RecordingFormat
    custom_file_name: FileName | None = None
    max_length: int | None = None
    play_beep: bool | None = None
    recording_track: RecordingTrack | None = None
    timeout_secs: int | None = None
    transcription: bool | None = None
    transcription_engine: RecordingTranscriptionEngine | None = None
    transcription_language: TranscriptionLanguage | None = None
    transcription_max_speaker_count: int | None = None
    transcription_min_speaker_count: int | None = None
    transcription_profanity_filter: bool | None = None
    transcription_speaker_diarization: bool | None = None
    trim: RecordingTrim | None = None


class RecordStop(CallCommand):
    """Stop recording (StopRecordingRequest); without recording_id, every recording of the call."""

    action: ClassVar[str] = "record_stop"
    sdk_method: ClassVar[str] = "stop_recording"

    recording_id: UuidText | None = None


class RecordPause(CallCommand):
    """Pause recording (PauseRecordingRequest)."""

    action: ClassVar[str] = "record_pause"
    sdk_method: ClassVar[str] = "pause_recording"

    recording_id: UuidText | None = None


class RecordResume(CallCommand):
    """Resume a paused recording (ResumeRecordingRequest)."""

    action: ClassVar[str] = "record_resume"
    sdk_method: ClassVar[str] = "resume_recording"

    recording_id: UuidText | None = None


class ForkStart(CallCommand):
    """Fork the call's media to RTP targets (StartForkingRequest)."""

    action: ClassVar[str] = "fork_start"
    sdk_method: ClassVar[str] = "start_forking"

    rx: str | None = None
    stream_type: ForkStartStreamType | None = None
    tx: str | None = None


class ForkStop(CallCommand):
    """Stop forking media (StopForkingRequest)."""

    action: ClassVar[str] = "fork_stop"
    sdk_method: ClassVar[str] = "stop_forking"

    stream_type: ForkStopStreamType | None = None


class StreamingStart(CallCommand):
    """Stream the call's media to a WebSocket (StartStreamingRequest)."""

    action: ClassVar[str] = "streaming_start"
    sdk_method: ClassVar[str] = "start_streaming"

    custom_parameters: list[StreamCustomParameter] | None = None
    dialogflow_config: DialogflowConfig | None = None
    enable_dialogflow: bool | None = None
    stream_auth_token: str | None = Field(default=None, max_length=4000)
    stream_bidirectional_codec: StreamBidirectionalCodec | None = None
    stream_bidirectional_mode: StreamBidirectionalMode | None = None
    stream_bidirectional_sampling_rate: StreamBidirectionalSamplingRate | None = None
    stream_bidirectional_target_legs: StreamBidirectionalTargetLegs | None = None
    stream_codec: StreamCodec | None = None
    stream_track: StreamTrack | None = None
    stream_url: str | None = None


class StreamingStop(CallCommand):
    """Stop media streaming (StopStreamingRequest); without stream_id, every stream of the call."""

    action: ClassVar[str] = "streaming_stop"
    sdk_method: ClassVar[str] = "stop_streaming"

    stream_id: UuidText | None = None


class TranscriptionStart(CallCommand):
    """Start live transcription (TranscriptionStartRequest)."""

    action: ClassVar[str] = "transcription_start"
    sdk_method: ClassVar[str] = "start_transcription"

    transcription_engine: TranscriptionEngine | None = None
    transcription_engine_config: JsonObject | None = None
    transcription_tracks: TranscriptionTracks | None = None


class TranscriptionStop(CallCommand):
    """Stop live transcription (TranscriptionStopRequest)."""

    action: ClassVar[str] = "transcription_stop"
    sdk_method: ClassVar[str] = "stop_transcription"


class SiprecStart(CallCommand):
    """Start a SIPREC session to the connector's recording server (StartSiprecRequest).

    The spec and the SDK have no command_id here, so a redelivered webhook can start it twice.
    """

    action: ClassVar[str] = "siprec_start"
    sdk_method: ClassVar[str] = "start_siprec"
    takes_command_id: ClassVar[bool] = False

    connector_name: str | None = None
    include_metadata_custom_headers: bool | None = None
    secure: bool | None = None
    session_timeout_secs: int | None = None
    sip_transport: SiprecTransport | None = None
    siprec_track: StreamTrack | None = None


class SiprecStop(CallCommand):
    """Stop the SIPREC session (StopSiprecRequest)."""

    action: ClassVar[str] = "siprec_stop"
    sdk_method: ClassVar[str] = "stop_siprec"


class SuppressionStart(CallCommand):
    """Start noise suppression (NoiseSuppressionStart)."""

    action: ClassVar[str] = "suppression_start"
    sdk_method: ClassVar[str] = "start_noise_suppression"

    direction: NoiseSuppressionDirection | None = None
    noise_suppression_engine: NoiseSuppressionEngine | None = None
    noise_suppression_engine_config: NoiseSuppressionEngineConfig | None = None


class SuppressionStop(CallCommand):
    """Stop noise suppression (NoiseSuppressionStop)."""

    action: ClassVar[str] = "suppression_stop"
    sdk_method: ClassVar[str] = "stop_noise_suppression"


class SwitchSupervisorRole(CallCommand):
    """Change a supervisor leg's role (SwitchSupervisorRoleRequest).

    The spec and the SDK give this command neither client_state nor command_id;
    switching to the same role twice is harmless.
    """

    action: ClassVar[str] = "switch_supervisor_role"
    sdk_method: ClassVar[str] = "switch_supervisor_role"
    takes_command_id: ClassVar[bool] = False
    takes_client_state: ClassVar[bool] = False

    role: SupervisorRole


class ClientStateUpdate(CallCommand):
    """Replace the client_state echoed on the call's later webhooks (ClientStateUpdateRequest, a PUT).

    `client_state` is the JSON value itself; it is encoded with
    `voicebus.calls.client_state.encode` when sent. The spec and the SDK have no
    command_id here; setting the same state twice is harmless.
    """

    action: ClassVar[str] = "client_state_update"
    sdk_method: ClassVar[str] = "update_client_state"
    http_method: ClassVar[Literal["POST", "PUT"]] = "PUT"
    takes_command_id: ClassVar[bool] = False
    takes_client_state: ClassVar[bool] = False

    client_state: JsonValue

    @field_validator("client_state")
    @classmethod
    def _encodable(cls, value: JsonValue) -> JsonValue:
        try:
            client_state.encode(value)
        except client_state.ClientStateError as exc:
            raise ValueError(str(exc)) from None
        return value

    def body(self) -> dict[str, Any]:
        return {"client_state": client_state.encode(self.client_state)}

    def sdk_kwargs(self) -> dict[str, Any]:
        return self.body()


# ---------------------------------------------------------------------------
# Parsing {"action": ..., "params": {...}}

COMMANDS: Final[Mapping[str, type[CallCommand]]] = MappingProxyType(
    {
        model.action: model
        for model in (
            Answer,
            Hangup,
            Reject,
            Bridge,
            Transfer,
            Refer,
            PlaybackStart,
            PlaybackStop,
            Speak,
            Gather,
            GatherUsingSpeak,
            GatherUsingAudio,
            GatherStop,
            SendDtmf,
            RecordStart,
            RecordStop,
            RecordPause,
            RecordResume,
            ForkStart,
            ForkStop,
            StreamingStart,
            StreamingStop,
            TranscriptionStart,
            TranscriptionStop,
            SiprecStart,
            SiprecStop,
            SuppressionStart,
            SuppressionStop,
            SwitchSupervisorRole,
            ClientStateUpdate,
        )
    }
)
"""Action name (as in the URL path) -> its model."""


class InvalidCommandError(ValueError):
    """The action is unknown or its params break Telnyx's spec; nothing was sent."""

    def __init__(self, action: str, problems: Sequence[str], errors: Sequence[ErrorDetails] = ()) -> None:
        super().__init__(f"{action}: {'; '.join(problems)}")
        self.action = action
        self.problems = tuple(problems)
        self.errors = tuple(errors)

    @classmethod
    def from_validation(cls, action: str, error: ValidationError) -> InvalidCommandError:
        details = error.errors(include_url=False)
        return cls(action, [_describe(detail) for detail in details], details)


class UnknownActionError(InvalidCommandError):
    """No model has this action name."""

    def __init__(self, action: str) -> None:
        close = difflib.get_close_matches(action, COMMANDS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; known actions: {', '.join(sorted(COMMANDS))}"
        super().__init__(action, [f"unknown action {action!r}{hint}"])


def parse_command(action: str, params: Mapping[str, Any] | None = None) -> CallCommand:
    """The validated command for `{"action": action, "params": params}`.

    Raises `UnknownActionError` or `InvalidCommandError` (both ValueErrors) naming
    each offending field; client_state and command_id are not params.
    """
    model = COMMANDS.get(action)
    if model is None:
        raise UnknownActionError(action)
    try:
        return model.model_validate(params if params is not None else {})
    except ValidationError as exc:
        raise InvalidCommandError.from_validation(action, exc) from exc


def _describe(detail: ErrorDetails) -> str:
    """`field.sub: message (got 'value')`, short enough for a log line or a call record."""
    location = ".".join(str(part) for part in detail["loc"]) or "params"
    if detail["type"] == "extra_forbidden" and location in _SENDER_FIELDS:
        return f"{location}: is not a param; CommandSender.send sets it"
    text = f"{location}: {detail['msg']}"
    if detail["type"] != "missing":
        shown = repr(detail["input"])
        if len(shown) > _MAX_SHOWN_INPUT:
            shown = shown[: _MAX_SHOWN_INPUT - 3] + "..."
        text += f" (got {shown})"
    return text
