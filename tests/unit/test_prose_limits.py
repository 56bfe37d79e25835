"""Every limit Telnyx's voice request schemas state only in prose, refused before sending: one refused and one
accepted request per rule, the refusal naming the field.

`where` says which part enforces it: an overlay location (`tools/voicebus_cli/command_overlay.py`, a schema
keyword in schemas.json) or `limits:<action>` (`voicebus/commands/limits.py`, fields related to each other).
The last tests check that the table covers every overlay entry and every rule.
"""

from __future__ import annotations

import functools
import importlib
import json
import typing
from collections import Counter
from dataclasses import dataclass
from typing import Any, Required

import pytest

from voicebus.commands import limits
from voicebus.commands.validation import SCHEMAS_PATH, InvalidCommandError, parse_command
from voicebus_cli.command_overlay import OVERLAY

AUDIO = "https://example.test/prompt.mp3"
SPEAK = {"payload": "Hello", "voice": "female"}
TRANSFER = {"to": "+15550100100"}
BRIDGE = {"call_control_id": "v3:other-leg"}
FORK = {"rx": "udp:192.0.2.1:9000", "tx": "udp:192.0.2.1:9001"}
RECORD = {"format": "mp3", "channels": "single"}
RETRIES = "webhook_retries_policies"
RELAY = {"url": "wss://relay.example.test"}
STREAM = {"stream_url": "wss://stream.example.test"}
AI = {"parameters": {"type": "object"}}
DTMF = {"digits": "1"}
AZURE_VOICE = {"voice": "Azure.en-US-AvaNeural"}
SUPPRESSION = "noise_suppression_engine_config"
ENGINE_CONFIG = "transcription_engine_config"


def _voice(voice: str, kind: str, **settings: Any) -> dict[str, Any]:
    return {"voice": voice, "voice_settings": {"type": kind, **settings}}


def _engine(engine: str, **options: Any) -> dict[str, Any]:
    """transcription_start params whose config is `engine`'s (the outer engine too, unless `outer=` says)."""
    outer = options.pop("outer", engine)
    return {"transcription_engine": outer, ENGINE_CONFIG: {"transcription_engine": engine, **options}}


@dataclass(frozen=True)
class Limit:
    where: str
    sentence: str
    action: str
    bad: dict[str, Any]
    field: str
    good: dict[str, Any]


def _azure(**options: Any) -> dict[str, Any]:
    return _engine("Azure", **options)


LIMITS = [
    # ---- one field (schema keywords from the overlay)
    Limit("definitions/Loopcount", "loop: an integer between 1 and 100, or `infinity`",
          "playback_start", {"audio_url": AUDIO, "loop": 101}, "loop", {"audio_url": AUDIO, "loop": "infinity"}),
    Limit("send_dtmf.digits", "Valid digits are 0-9, A-D, *, and #. Pauses ... w and W",
          "send_dtmf", {"digits": "12x"}, "digits", {"digits": "12wW#"}),
    Limit("send_dtmf.duration_millis", "duration_millis: Ranges from 100 to 500ms",
          "send_dtmf", {**DTMF, "duration_millis": 501}, "duration_millis", {**DTMF, "duration_millis": 500}),
    Limit("record_start.max_length", "max_length: The maximum value is 14400.",
          "record_start", {**RECORD, "max_length": 14401}, "max_length", {**RECORD, "max_length": 14400}),
    Limit("record_start.timeout_secs", "timeout_secs: The minimum value is 0.",
          "record_start", {**RECORD, "timeout_secs": -1}, "timeout_secs", {**RECORD, "timeout_secs": 0}),
    Limit("gather.maximum_digits", "This parameter has a maximum value of 128.",
          "gather", {"maximum_digits": 129}, "maximum_digits", {"maximum_digits": 128}),
    Limit("gather_using_audio.maximum_digits", "This parameter has a maximum value of 128.",
          "gather_using_audio", {"audio_url": AUDIO, "maximum_digits": 129}, "maximum_digits",
          {"audio_url": AUDIO, "maximum_digits": 128}),
    Limit("gather_using_speak.maximum_digits", "This parameter has a maximum value of 128.",
          "gather_using_speak", {**SPEAK, "maximum_digits": 129}, "maximum_digits", {**SPEAK, "maximum_digits": 128}),
    Limit("gather.minimum_digits", "This parameter has a minimum value of 1.",
          "gather", {"minimum_digits": 0}, "minimum_digits", {"minimum_digits": 1}),
    Limit("gather_using_audio.minimum_digits", "This parameter has a minimum value of 1.",
          "gather_using_audio", {"audio_url": AUDIO, "minimum_digits": 0}, "minimum_digits",
          {"audio_url": AUDIO, "minimum_digits": 1}),
    Limit("gather_using_speak.minimum_digits", "This parameter has a minimum value of 1.",
          "gather_using_speak", {**SPEAK, "minimum_digits": 0}, "minimum_digits", {**SPEAK, "minimum_digits": 1}),
    Limit("playback_start.target_legs", "the value must be either `self`, `opposite` or `both`",
          "playback_start", {"audio_url": AUDIO, "target_legs": "all"}, "target_legs",
          {"audio_url": AUDIO, "target_legs": "opposite"}),
    Limit("transcription_start.transcription_tracks", "`inbound` ..., `outbound` ..., and `both`",
          "transcription_start", {"transcription_tracks": "left"}, "transcription_tracks",
          {"transcription_tracks": "both"}),
    Limit("speak.payload", "The text or SSML to be converted into speech. There is a 3,000 character limit.",
          "speak", {**SPEAK, "payload": "a" * 3001}, "payload", {**SPEAK, "payload": "a" * 3000}),
    Limit("speak.voice", "Specifies the voice used in speech synthesis (required text)",
          "speak", {**SPEAK, "voice": ""}, "voice", SPEAK),
    Limit("gather_using_speak.payload", "There is a 3,000 character limit.",
          "gather_using_speak", {**SPEAK, "payload": ""}, "payload", {**SPEAK, "payload": "a" * 3000}),
    Limit("gather_using_speak.voice", "Specifies the voice used in speech synthesis (required text)",
          "gather_using_speak", {**SPEAK, "voice": ""}, "voice", SPEAK),
    Limit("gather_using_speak.invalid_payload", "There is a 3,000 character limit.",
          "gather_using_speak", {**SPEAK, "invalid_payload": "a" * 3001}, "invalid_payload",
          {**SPEAK, "invalid_payload": "Sorry"}),
    Limit("ai_assistant_start.greeting", "There is a 3,000 character limit.",
          "ai_assistant_start", {"greeting": "a" * 3001}, "greeting", {"greeting": "Hello"}),
    Limit("gather_using_ai.greeting", "There is a 3,000 character limit.",
          "gather_using_ai", {**AI, "greeting": "a" * 3001}, "greeting", {**AI, "greeting": "Hello"}),
    Limit("transfer.to", "The DID or SIP URI to dial out to (required text)",
          "transfer", {"to": ""}, "to", TRANSFER),
    Limit("refer.sip_address", "The SIP URI to which the call will be referred to (required text)",
          "refer", {"sip_address": ""}, "sip_address", {"sip_address": "sip:agent@example.test"}),
    Limit("bridge.call_control_id", "The Call Control ID of the call you want to bridge with (required text)",
          "bridge", {"call_control_id": ""}, "call_control_id", BRIDGE),
    Limit("answer.record_max_length", "The minimum value is 0. The maximum value is 43200.",
          "answer", {"record_max_length": 43201}, "record_max_length", {"record_max_length": 43200}),
    Limit("bridge.record_max_length", "The minimum value is 0. The maximum value is 43200.",
          "bridge", {**BRIDGE, "record_max_length": -1}, "record_max_length", {**BRIDGE, "record_max_length": 0}),
    Limit("transfer.record_max_length", "The minimum value is 0. The maximum value is 43200.",
          "transfer", {**TRANSFER, "record_max_length": 43201}, "record_max_length",
          {**TRANSFER, "record_max_length": 60}),
    Limit("answer.record_timeout_secs", "The minimum value is 0.",
          "answer", {"record_timeout_secs": -1}, "record_timeout_secs", {"record_timeout_secs": 0}),
    Limit("bridge.record_timeout_secs", "The minimum value is 0.",
          "bridge", {**BRIDGE, "record_timeout_secs": -1}, "record_timeout_secs", {**BRIDGE, "record_timeout_secs": 5}),
    Limit("transfer.record_timeout_secs", "The minimum value is 0.",
          "transfer", {**TRANSFER, "record_timeout_secs": -1}, "record_timeout_secs",
          {**TRANSFER, "record_timeout_secs": 0}),
    Limit("transfer.timeout_secs", "Minimum value is 5 seconds. Maximum value is 600 seconds.",
          "transfer", {**TRANSFER, "timeout_secs": 601}, "timeout_secs", {**TRANSFER, "timeout_secs": 600}),
    Limit("transfer.from_display_name", "a maximum of 128 characters, ... letters, numbers, spaces, and -_~!.+",
          "transfer", {**TRANSFER, "from_display_name": "Acme <sales>"}, "from_display_name",
          {**TRANSFER, "from_display_name": "Acme Sales-Desk_1 ~!.+"}),
    Limit("transfer.send_digits_on_answer", "Allowed characters: 0-9, A-D, w, W, *, #. Maximum 64 characters.",
          "transfer", {**TRANSFER, "send_digits_on_answer": "1" * 65}, "send_digits_on_answer",
          {**TRANSFER, "send_digits_on_answer": "ww200#"}),
    Limit("siprec_start.session_timeout_secs", "Minimum value is 90, set to 0 to disable.",
          "siprec_start", {"session_timeout_secs": 30}, "session_timeout_secs", {"session_timeout_secs": 0}),
    Limit("send_sip_info.content_type", "There is a 1,400 bytes limit",
          "send_sip_info", {"content_type": "a/" + "b" * 1399, "body": "x"}, "content_type",
          {"content_type": "application/json", "body": "{}"}),
    Limit("definitions/SoundModifications.octaves", "values should be between -1 and 1",
          "answer", {"sound_modifications": {"octaves": -1.5}}, "sound_modifications.octaves",
          {"sound_modifications": {"octaves": -1}}),
    Limit("definitions/SoundModifications.semitone", "values should be between -14 and 14",
          "transfer", {**TRANSFER, "sound_modifications": {"semitone": 15}}, "sound_modifications.semitone",
          {**TRANSFER, "sound_modifications": {"semitone": 14}}),
    Limit("definitions/SoundModifications.pitch", "value should be > 0",
          "answer", {"sound_modifications": {"pitch": 0}}, "sound_modifications.pitch",
          {"sound_modifications": {"pitch": 0.5}}),
    Limit("definitions/SoundModifications.track", "Accepted values are `inbound` or `outbound`",
          "answer", {"sound_modifications": {"track": "both"}}, "sound_modifications.track",
          {"sound_modifications": {"track": "inbound"}}),
    # ---- fields related to each other (voicebus/commands/limits.py)
    Limit("limits:playback_start", "media_name and audio_url cannot be used together in one request.",
          "playback_start", {"audio_url": AUDIO, "playback_content": "SUQz"}, "playback_content",
          {"playback_content": "SUQz"}),
    Limit("limits:playback_start", "When `overlay` is enabled, `target_legs` is limited to `self`.",
          "playback_start", {"audio_url": AUDIO, "overlay": True, "target_legs": "both"}, "target_legs",
          {"audio_url": AUDIO, "overlay": True, "target_legs": "self"}),
    Limit("limits:gather_using_audio", "media_name and audio_url cannot be used together in one request.",
          "gather_using_audio", {"audio_url": AUDIO, "media_name": "menu"}, "media_name", {"media_name": "menu"}),
    Limit("limits:gather_using_audio", "invalid_media_name and invalid_audio_url cannot be used together",
          "gather_using_audio", {"audio_url": AUDIO, "invalid_audio_url": AUDIO, "invalid_media_name": "sorry"},
          "invalid_media_name", {"audio_url": AUDIO, "invalid_media_name": "sorry"}),
    Limit("limits:transfer", "media_name and audio_url cannot be used together in one request.",
          "transfer", {**TRANSFER, "audio_url": AUDIO, "media_name": "hold"}, "media_name",
          {**TRANSFER, "audio_url": AUDIO}),
    Limit("limits:transfer", "Maximum 5 retries, total delay cannot exceed 60 seconds.",
          "transfer", {**TRANSFER, RETRIES: {"call.answered": {"retries_ms": [30000, 30001]}}},
          f"{RETRIES}.call.answered.retries_ms", {**TRANSFER, RETRIES: {"call.answered": {"retries_ms": [30000] * 2}}}),
    Limit("limits:answer", "Maximum 5 retries, total delay cannot exceed 60 seconds.",
          "answer", {RETRIES: {"call.hangup": {"retries_ms": [59000, 2000]}}}, f"{RETRIES}.call.hangup.retries_ms",
          {RETRIES: {"call.hangup": {"retries_ms": [1000, 2000, 4000]}}}),
    Limit("limits:answer", "provider: Must be supplied together with `structured_provider`.",
          "answer", {"conversation_relay_config": {**RELAY, "provider": "elevenlabs"}},
          "conversation_relay_config.structured_provider", {"conversation_relay_config": RELAY}),
    Limit("limits:bridge", "queue: can't be used together with call_control_id parameter or video_room_id",
          "bridge", {**BRIDGE, "queue": "support", "video_room_id": "0ccc7b54-4df3-4bca-a65a-3da1ecc777f0"},
          "video_room_id", {**BRIDGE, "queue": "support"}),
    Limit("limits:bridge", "video_room_context: It can be used only with video_room_id parameter.",
          "bridge", {**BRIDGE, "video_room_context": "Alice"}, "video_room_context",
          {**BRIDGE, "video_room_id": "0ccc7b54-4df3-4bca-a65a-3da1ecc777f0", "video_room_context": "Alice"}),
    Limit("limits:fork_start", "`rx` and `tx` are required fields if `decrypted` selected.",
          "fork_start", {"stream_type": "decrypted", "rx": FORK["rx"]}, "tx", {"stream_type": "decrypted", **FORK}),
    Limit("limits:streaming_start", "StreamBidirectionalCodec: Used only with stream_bidirectional_mode=rtp.",
          "streaming_start", {**STREAM, "stream_bidirectional_codec": "L16"}, "stream_bidirectional_codec",
          {**STREAM, "stream_bidirectional_mode": "rtp", "stream_bidirectional_codec": "L16"}),
    Limit("limits:conversation_relay_start", "provider: Must be supplied together with `structured_provider`.",
          "conversation_relay_start", {**RELAY, "structured_provider": {"voice_id": "x"}}, "provider", RELAY),
    Limit("limits:conversation_relay_start", "transcription: Not supported for Conversation Relay start requests.",
          "conversation_relay_start", {**RELAY, "transcription": {"model": "deepgram/flux"}},
          "transcription", {**RELAY, "transcription_engine": "Deepgram"}),
    Limit("limits:conversation_relay_start", "voice_speed: Not supported for `Telnyx.Bayan.*` voices.",
          "conversation_relay_start", {**RELAY, **_voice("Telnyx.Bayan.Ahmed", "telnyx", voice_speed=1.5)},
          "voice_settings.voice_speed", {**RELAY, **_voice("Telnyx.KokoroTTS.af", "telnyx", voice_speed=1.5)}),
    Limit("limits:suppression_start", "NoiseSuppressionEngineConfig: Only applicable for DeepFilterNet (Krisp, ...)",
          "suppression_start", {"noise_suppression_engine": "Krisp", SUPPRESSION: {"attenuation_limit": 80}},
          f"{SUPPRESSION}.attenuation_limit",
          {"noise_suppression_engine": "DeepFilterNet", SUPPRESSION: {"attenuation_limit": 80}}),
    Limit("limits:record_start", "transcription_*: Applies to `google` engine only.",
          "record_start", {**RECORD, "transcription_engine": "B", "transcription_speaker_diarization": True},
          "transcription_speaker_diarization",
          {**RECORD, "transcription_engine": "A", "transcription_speaker_diarization": True}),
    Limit("limits:transcription_start", "transcription_engine_config must agree with the outer engine",
          "transcription_start", _engine("Azure", region="eastus", outer="Telnyx"),
          f"{ENGINE_CONFIG}.transcription_engine", _azure(region="eastus")),
    Limit("limits:transcription_start", "max_endpoint_delay_ms: Only honored when `enable_endpoint_detection` is true.",
          "transcription_start", _engine("Soniox", max_endpoint_delay_ms=800),
          f"{ENGINE_CONFIG}.max_endpoint_delay_ms",
          _engine("Soniox", max_endpoint_delay_ms=800, enable_endpoint_detection=True)),
    Limit("limits:speak", "voice_speed: Not supported for `Telnyx.Bayan.*` or `Telnyx.Sukhan.*` voices.",
          "speak", {**SPEAK, **_voice("Telnyx.Sukhan.urdu-professor", "telnyx", voice_speed=1.2)},
          "voice_settings.voice_speed", {**SPEAK, "voice": "Telnyx.Sukhan.urdu-professor"}),
    Limit("limits:gather_using_speak", "delivery_mode: Optional and only supported by `TTS2`.",
          "gather_using_speak", {**SPEAK, **_voice("Inworld.Mini.Loretta", "inworld", delivery_mode="STABLE")},
          "voice_settings.delivery_mode",
          {**SPEAK, **_voice("Inworld.TTS2.Loretta", "inworld", delivery_mode="STABLE")}),
    Limit("limits:gather_using_ai", "AzureVoiceSettings.region: Required when using a custom API key.",
          "gather_using_ai", {**AI, **_voice(AZURE_VOICE["voice"], "azure", api_key_ref="my-azure-key")},
          "voice_settings.region", {**AI, **_voice(AZURE_VOICE["voice"], "azure", api_key_ref="k", region="eastus")}),
    Limit("limits:ai_assistant_start", "AzureVoiceSettings.region: Required when using a custom API key.",
          "ai_assistant_start", _voice(AZURE_VOICE["voice"], "azure", api_key_ref="k"),
          "voice_settings.region", _voice(AZURE_VOICE["voice"], "azure")),
    Limit("limits:ai_assistant_add_messages", "AssistantMessage.content: Required unless `tool_calls`",
          "ai_assistant_add_messages", {"messages": [{"role": "assistant"}]}, "messages.0.content",
          {"messages": [{"role": "assistant", "content": "Your balance is 12 euros."}]}),
]  # fmt: skip


@pytest.mark.parametrize("limit", LIMITS, ids=[f"{limit.where}:{limit.field}" for limit in LIMITS])
def test_a_request_breaking_a_prose_limit_is_refused_naming_the_field(limit: Limit) -> None:
    with pytest.raises(InvalidCommandError) as refused:
        parse_command(limit.action, limit.bad)
    assert refused.value.fields == (limit.field,), str(refused.value)
    assert str(refused.value).startswith(f"{limit.action}: {limit.field}: ")


@pytest.mark.parametrize("limit", LIMITS, ids=[f"{limit.where}:{limit.field}" for limit in LIMITS])
def test_the_same_request_within_the_limit_is_accepted(limit: Limit) -> None:
    assert parse_command(limit.action, limit.good).params == limit.good


def test_every_overlay_entry_has_a_row() -> None:
    assert set(OVERLAY) <= {limit.where for limit in LIMITS}


def test_every_cross_field_rule_has_a_row() -> None:
    rows = Counter(limit.where.removeprefix("limits:") for limit in LIMITS if limit.where.startswith("limits:"))
    for action, rules in limits.RULES.items():
        assert rows[action] >= len(rules), f"{action}: {len(rules)} rules, {rows[action]} rows"


# ---------------------------------------------------------------- transcription_engine_config, per engine
@pytest.mark.parametrize(
    ("params", "field"),
    [
        (_azure(), "transcription_engine_config.region"),  # Azure's required region
        (_azure(region="eastus", model="latest_long"), "transcription_engine_config.model"),  # Google's option
        ({"transcription_engine": "Deepgram", "transcription_engine_config": {
            "transcription_engine": "Deepgram", "transcription_model": "deepgram/nova-3", "hints": ["x"]}},
         "transcription_engine_config.hints"),  # Nova-2's option on Nova-3
        ({"transcription_engine_config": {"transcription_engine": "Azure", "region": "eastus"}},
         "transcription_engine_config.transcription_engine"),  # the outer engine defaults to Google
        ({"transcription_engine": "B", "transcription_engine_config": {"transcription_engine": "Google"}},
         "transcription_engine_config.transcription_engine"),  # B is Telnyx
    ],
)  # fmt: skip
def test_transcription_engine_config_is_checked_as_its_engine_defines_it(params: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidCommandError) as refused:
        parse_command("transcription_start", params)
    assert refused.value.fields == (field,), str(refused.value)


@pytest.mark.parametrize(
    "params",
    [
        _azure(region="eastus", language="en"),
        _engine("Google", language="en", outer="A"),
        {"transcription_engine_config": {"transcription_engine": "Google", "interim_results": True}},
        _engine("B", outer="Telnyx"),
        {"transcription_engine": "Deepgram", "transcription_engine_config": {
            "transcription_engine": "Deepgram", "transcription_model": "deepgram/nova-3", "keyterms": ["voicebus"]}},
    ],
)  # fmt: skip
def test_a_config_of_the_requests_own_engine_is_accepted(params: dict[str, Any]) -> None:
    parse_command("transcription_start", params)


@functools.cache
def _definitions() -> dict[str, Any]:
    definitions: dict[str, Any] = json.loads(SCHEMAS_PATH.read_text(encoding="utf-8"))["definitions"]
    return definitions


CLOSED_VARIANTS = sorted(
    name
    for name, schema in _definitions().items()
    if name.startswith("TranscriptionEngine") and schema.get("additionalProperties") is False
)


@pytest.mark.parametrize("component", CLOSED_VARIANTS)
def test_each_closed_engine_config_has_the_sdks_fields_and_required_set(component: str) -> None:
    """The SDK (the oracle) agrees on each engine's options, so refusing any other field refuses no valid one."""
    engine = component.removeprefix("TranscriptionEngine").removesuffix("Config").lower()
    module = importlib.import_module(f"telnyx.types.calls.transcription_engine_{engine}_config_param")
    sdk_type = getattr(module, f"{component}Param")
    schema = _definitions()[component]
    hints = typing.get_type_hints(sdk_type, include_extras=True)
    assert set(schema["properties"]) == set(hints)
    required = {name for name, hint in hints.items() if typing.get_origin(hint) is Required}
    assert set(schema.get("required", ())) == required
