"""Limits Telnyx's spec states in prose that relate fields to each other, checked before sending.

A single field's limits (a range, a length, a pattern) are schema keywords in
`schemas.json` (`tools/voicebus_cli/command_overlay.py`). What relates two fields
("cannot be used together", "only with", "required if", "must agree") or adds a
list up is checked here, after the schema accepted the params, so that each
message names the field and the rule: `media_name: cannot be used together with
audio_url`. Each rule quotes the spec sentence it enforces; tests/unit/
test_prose_limits.py has one refused and one accepted request per rule.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Final

Problem = tuple[str, str]
"""(field, what is wrong): the validator turns it into a ParamProblem."""
Rule = Callable[[Mapping[str, Any]], Iterator[Problem]]

GOOGLE_ENGINE: Final = "Google"
"""TranscriptionStartRequest.transcription_engine's default."""
ENGINE_ALIASES: Final = {"A": "Google", "B": "Telnyx"}
"""'Legacy values `A` - `Google`, `B` - `Telnyx` are supported for backward compatibility.'"""


def _exclusive(*names: str) -> Rule:
    """'<a> and <b> cannot be used together in one request': each later one given is refused."""

    def rule(params: Mapping[str, Any]) -> Iterator[Problem]:
        given = [name for name in names if name in params]
        for name in given[1:]:
            yield name, f"cannot be used together with {given[0]}"

    return rule


def _only_with(name: str, other: str, value: Any = None, default: Any = None) -> Rule:
    """'<name> ... only with <other>[=<value>]': refused when `other` is absent (or has another value)."""

    def rule(params: Mapping[str, Any]) -> Iterator[Problem]:
        if name not in params:
            return
        if value is None and other not in params:
            yield name, f"can be used only with {other}"
        elif value is not None and params.get(other, default) != value:
            yield name, f"can be used only when {other} is {value!r} (got {params.get(other, default)!r})"

    return rule


def _together(*names: str) -> Rule:
    """'Must be supplied together with <other>': all of them or none."""

    def rule(params: Mapping[str, Any]) -> Iterator[Problem]:
        given = [name for name in names if name in params]
        if given and len(given) < len(names):
            for name in names:
                if name not in params:
                    yield name, f"is required with {given[0]}"

    return rule


def _not_supported(name: str, instead: str) -> Rule:
    def rule(params: Mapping[str, Any]) -> Iterator[Problem]:
        if name in params:
            yield name, f"is not supported here; use {instead}"

    return rule


def _within(name: str, rule: Rule) -> Rule:
    """`rule` applied to the object in field `name`, its problems located under it."""

    def nested(params: Mapping[str, Any]) -> Iterator[Problem]:
        inner = params.get(name)
        if isinstance(inner, Mapping):
            for field, message in rule(inner):
                yield f"{name}.{field}", message

    return nested


def _playback_overlay(params: Mapping[str, Any]) -> Iterator[Problem]:
    """playback_start: 'When `overlay` is enabled, `target_legs` is limited to `self`.'"""
    legs = params.get("target_legs", "self")
    if params.get("overlay") is True and legs != "self":
        yield "target_legs", f"must be 'self' when overlay is true (got {legs!r})"


def _decrypted_fork(params: Mapping[str, Any]) -> Iterator[Problem]:
    """fork_start: '`rx` and `tx` are required fields if `decrypted` selected' (the default, and the only type)."""
    if params.get("stream_type", "decrypted") == "decrypted":
        for name in ("rx", "tx"):
            if name not in params:
                yield name, "is required when stream_type is 'decrypted' (its default)"


def _retry_delays(params: Mapping[str, Any]) -> Iterator[Problem]:
    """webhook_retries_policies: 'Maximum 5 retries, total delay cannot exceed 60 seconds.'"""
    policies = params.get("webhook_retries_policies")
    if not isinstance(policies, Mapping):
        return
    for event_type, policy in policies.items():
        delays = policy.get("retries_ms") if isinstance(policy, Mapping) else None
        if isinstance(delays, list) and sum(delays) > 60000:
            field = f"webhook_retries_policies.{event_type}.retries_ms"
            yield field, f"total delay must be at most 60000 ms (got {sum(delays)})"


def _engine_options(engine_field: str, config_field: str, by_engine: Mapping[str, tuple[str, ...]]) -> Rule:
    """'Only applicable for <engine>': an option given for another engine is refused.

    Options of an engine are looked up by the engine's name or its prefix (`aic_` models are
    AiCoustics'); with no engine given nothing is refused, since the spec names no default.
    """

    def rule(params: Mapping[str, Any]) -> Iterator[Problem]:
        engine = params.get(engine_field)
        config = params.get(config_field)
        if engine is None or not isinstance(config, Mapping):
            return
        for owner, options in by_engine.items():
            if _engine_is(str(engine), owner):
                continue
            for option in options:
                if option in config:
                    yield f"{config_field}.{option}", f"applies to the {owner} engine only (engine is {engine!r})"

    return rule


_AICOUSTICS_MODELS = re.compile(r"^(AiCoustics|aic_|quail_)")


def _engine_is(engine: str, owner: str) -> bool:
    return bool(_AICOUSTICS_MODELS.match(engine)) if owner == "AiCoustics" else engine == owner


def _google_recording_transcription(params: Mapping[str, Any]) -> Iterator[Problem]:
    """record_start transcription_* options: 'Applies to `google` engine only.' (engine `A`, the default)."""
    engine = params.get("transcription_engine", "A")
    if engine == "A":
        return
    for name in (
        "transcription_max_speaker_count",
        "transcription_min_speaker_count",
        "transcription_profanity_filter",
        "transcription_speaker_diarization",
    ):
        if name in params:
            yield name, f"applies to the Google engine ('A') only (transcription_engine is {engine!r})"


def _transcription_engine_agrees(params: Mapping[str, Any]) -> Iterator[Problem]:
    """transcription_start: the config's engine is the request's engine (default Google; A and B are aliases)."""
    config = params.get("transcription_engine_config")
    if not isinstance(config, Mapping) or "transcription_engine" not in config:
        return
    outer = str(params.get("transcription_engine", GOOGLE_ENGINE))
    inner = str(config["transcription_engine"])
    if ENGINE_ALIASES.get(outer, outer) != ENGINE_ALIASES.get(inner, inner):
        yield (
            "transcription_engine_config.transcription_engine",
            f"must agree with transcription_engine {outer!r} (got {inner!r})",
        )


def _soniox_endpoint_delay(params: Mapping[str, Any]) -> Iterator[Problem]:
    """Soniox max_endpoint_delay_ms: 'Only honored when `enable_endpoint_detection` is true.'"""
    config = params.get("transcription_engine_config")
    if not isinstance(config, Mapping) or config.get("transcription_engine") != "Soniox":
        return
    if "max_endpoint_delay_ms" in config and config.get("enable_endpoint_detection") is not True:
        yield "transcription_engine_config.max_endpoint_delay_ms", "applies only when enable_endpoint_detection is true"


_NO_VOICE_SPEED = re.compile(r"^Telnyx\.(Bayan|Sukhan)\.")


def _voice_settings(params: Mapping[str, Any]) -> Iterator[Problem]:
    """What `voice_settings` may hold for the chosen `voice`.

    TelnyxVoiceSettings.voice_speed: 'Not supported for `Telnyx.Bayan.*` or `Telnyx.Sukhan.*` voices.'
    InworldVoiceSettings.delivery_mode: 'Optional and only supported by `TTS2`.'
    AzureVoiceSettings.region: 'Required when using a custom API key.'
    """
    settings = params.get("voice_settings")
    if not isinstance(settings, Mapping):
        return
    voice = str(params.get("voice", ""))
    if "voice_speed" in settings and _NO_VOICE_SPEED.match(voice):
        yield "voice_settings.voice_speed", f"is not supported for {voice!r} (Telnyx Bayan and Sukhan voices)"
    if "delivery_mode" in settings and voice.startswith("Inworld.") and not voice.startswith("Inworld.TTS2."):
        yield "voice_settings.delivery_mode", f"is supported by Inworld TTS2 voices only (got {voice!r})"
    if settings.get("type") == "azure" and "api_key_ref" in settings and "region" not in settings:
        yield "voice_settings.region", "is required with api_key_ref (a custom Azure key)"


def _assistant_messages(params: Mapping[str, Any]) -> Iterator[Problem]:
    """AssistantMessage.content: 'Required unless `tool_calls`'."""
    messages = params.get("messages")
    if not isinstance(messages, list):
        return
    for index, message in enumerate(messages):
        assistant = isinstance(message, Mapping) and message.get("role") == "assistant"
        if assistant and "content" not in message and "tool_calls" not in message:
            yield f"messages.{index}.content", "is required unless tool_calls is given"


_VOICE: Final[tuple[Rule, ...]] = (_voice_settings,)
_RELAY: Final = _together("provider", "structured_provider")

RULES: Final[Mapping[str, tuple[Rule, ...]]] = {
    # PlayAudioUrlRequest.audio_url: "media_name and audio_url cannot be used together in one request."
    # playback_content is the third source of the same audio.
    "playback_start": (_exclusive("audio_url", "media_name", "playback_content"), _playback_overlay),
    # GatherUsingAudioRequest.audio_url / invalid_audio_url: "... cannot be used together in one request."
    "gather_using_audio": (
        _exclusive("audio_url", "media_name"),
        _exclusive("invalid_audio_url", "invalid_media_name"),
    ),
    # TransferCallRequest.audio_url: "media_name and audio_url cannot be used together in one request."
    "transfer": (_exclusive("audio_url", "media_name"), _retry_delays),
    # AnswerRequest.conversation_relay_config.provider: "Must be supplied together with `structured_provider`."
    "answer": (_retry_delays, _within("conversation_relay_config", _RELAY)),
    # BridgeRequest.queue / video_room_id: "can't be used together with ... queue parameter or video_room_id";
    # video_room_context: "It can be used only with video_room_id parameter."
    "bridge": (_exclusive("queue", "video_room_id"), _only_with("video_room_context", "video_room_id")),
    "fork_start": (_decrypted_fork,),
    # StreamBidirectionalCodec: "Used only with stream_bidirectional_mode=rtp." (the mode's default is mp3)
    "streaming_start": (_only_with("stream_bidirectional_codec", "stream_bidirectional_mode", "rtp", "mp3"),),
    # ConversationRelayStartRequest.transcription: "Not supported for Conversation Relay start requests."
    "conversation_relay_start": (
        _RELAY,
        _not_supported("transcription", "transcription_engine and transcription_engine_config"),
        *_VOICE,
    ),
    # NoiseSuppressionEngineConfig: "Only applicable for DeepFilterNet / Krisp / AiCoustics."
    "suppression_start": (
        _engine_options(
            "noise_suppression_engine",
            "noise_suppression_engine_config",
            {
                "DeepFilterNet": ("attenuation_limit", "mode"),
                "Krisp": ("model", "suppression_level"),
                "AiCoustics": ("enhancement_level", "family", "size", "voice_gain"),
            },
        ),
    ),
    "record_start": (_google_recording_transcription,),
    "transcription_start": (_transcription_engine_agrees, _soniox_endpoint_delay),
    "speak": _VOICE,
    "gather_using_speak": _VOICE,
    "gather_using_ai": _VOICE,
    "ai_assistant_start": _VOICE,
    "ai_assistant_add_messages": (_assistant_messages,),
}


def problems(action: str, params: Mapping[str, Any]) -> Sequence[Problem]:
    """What `params` (already accepted by the action's schema) break of the spec's cross-field limits."""
    return [problem for rule in RULES.get(action, ()) for problem in rule(params)]
