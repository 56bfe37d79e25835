"""Command validation: schemas.json against the spec and the SDK, refusing wrong params by field, command ids."""

from __future__ import annotations

import importlib
import io
import json
import os
import subprocess
import sys
import typing
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft7Validator  # type: ignore[import-untyped]  # no stubs in the dev group

from voicebus.archive import recording_links
from voicebus.calls import client_state
from voicebus.commands import client, ids
from voicebus.commands.http import CallControlClient
from voicebus.commands.sender import (
    CommandOptionError,
    CommandOutcome,
    CommandSender,
    OutcomeStatus,
    TelnyxErrorDetail,
    error_details,
)
from voicebus.commands.validation import (
    SCHEMAS_PATH,
    CallCommand,
    InvalidCommandError,
    UnknownActionError,
    known_actions,
    parse_command,
)
from voicebus.config import ConfigurationError
from voicebus.errors import PermanentError
from voicebus_cli.command_schemas import ACTION_PATH, CommandSchemaError, build, command_schemas, generate
from voicebus_cli.openapi_schemas import load_spec

ROOT = Path(__file__).resolve().parents[2]
SPEC = load_spec()
SCHEMAS = json.loads(SCHEMAS_PATH.read_text(encoding="utf-8"))
ACTIONS = SCHEMAS["actions"]
SENDER_FIELDS = {"client_state", "command_id"}

# ---------------------------------------------------------------------------
# schemas.json is generated from the vendored spec, and stays so


def test_the_committed_schemas_are_what_the_spec_generates() -> None:
    """Regenerate with `python -m voicebus_cli command-schemas` when the spec or the overlay changes."""
    assert SCHEMAS_PATH.read_text(encoding="utf-8") == generate()


def test_the_check_fails_until_the_file_is_written(tmp_path: Path) -> None:
    output = tmp_path / "schemas.json"
    report = io.StringIO()
    assert command_schemas(check=True, output=output, out=report) == 1
    assert "out of date" in report.getvalue()
    assert command_schemas(check=False, output=output, out=report) == 0
    assert command_schemas(check=True, output=output, out=report) == 0
    output.write_text(output.read_text().replace('"POST"', '"PUT"', 1))
    assert command_schemas(check=True, output=output, out=report) == 1


def test_every_action_of_the_spec_has_a_schema_with_its_http_method() -> None:
    expected = {}
    for path, item in SPEC["paths"].items():
        matched = ACTION_PATH.match(path)
        if matched:
            (method,) = [name.upper() for name in ("post", "put") if name in item]
            expected[matched.group("action")] = method
    assert {action: entry["http_method"] for action, entry in ACTIONS.items()} == expected
    assert len(expected) >= 30
    assert known_actions() == tuple(sorted(expected))


@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_each_action_schema_is_self_contained_draft_07_refusing_unknown_fields(action: str) -> None:
    schema = {"definitions": SCHEMAS["definitions"], **ACTIONS[action]["schema"]}
    Draft7Validator.check_schema(schema)
    assert schema["additionalProperties"] is False
    assert not SENDER_FIELDS & set(schema["properties"])
    for node in _subschemas(schema):
        reference = node.get("$ref")
        assert reference is None or reference.removeprefix("#/definitions/") in SCHEMAS["definitions"], reference


def test_documentation_and_openapi_only_keys_are_dropped() -> None:
    dropped = {"description", "example", "examples", "title", "default", "deprecated", "discriminator", "nullable"}
    for node in _subschemas(SCHEMAS):
        assert not dropped & set(node), sorted(dropped & set(node))
        assert not [key for key in node if key.startswith("x-")]


def _subschemas(node: Any) -> Iterator[dict[str, Any]]:
    """Every schema object inside `node`, but not the names of properties (a field may be called `title`)."""
    if isinstance(node, list):
        for item in node:
            yield from _subschemas(item)
    elif isinstance(node, dict):
        yield node
        for key, value in node.items():
            if key in ("properties", "definitions", "actions"):
                for sub in value.values():
                    yield from _subschemas(sub)
            elif key not in ("enum", "const", "required"):
                yield from _subschemas(value)


def test_an_overlay_entry_for_a_field_the_spec_lacks_is_refused() -> None:
    with pytest.raises(CommandSchemaError, match=r"speak\.volume: the spec has no such action field"):
        build(SPEC, {"speak.volume": {"maximum": 3}})


def test_an_overlay_entry_for_a_component_field_the_spec_lacks_is_refused() -> None:
    with pytest.raises(CommandSchemaError, match=r"SoundModifications\.volume: the component has no such field"):
        build(SPEC, {"definitions/SoundModifications.volume": {"maximum": 3}})


def test_transcription_engine_variants_refuse_other_engines_options() -> None:
    definitions = build(SPEC, {})["definitions"]
    assert definitions["TranscriptionEngineAzureConfig"]["additionalProperties"] is False
    assert "additionalProperties" not in definitions["TranscriptionEngineDeepgramConfig"]  # closed by its models
    assert "additionalProperties" not in definitions["AzureVoiceSettings"]  # other unions stay as the spec says


def test_an_overlay_entry_the_spec_already_states_is_refused() -> None:
    with pytest.raises(CommandSchemaError, match=r"transfer\.time_limit_secs: the spec already says"):
        build(SPEC, {"transfer.time_limit_secs": {"maximum": 14400, "minimum": 30}})


# ---------------------------------------------------------------------------
# The oracle: field names, required fields and sender fields equal the telnyx SDK's own params types

SDK_PARAMS = {
    "ai_assistant_add_messages": "add_ai_assistant_messages",
    "ai_assistant_join": "join_ai_assistant",
    "ai_assistant_start": "start_ai_assistant",
    "ai_assistant_stop": "stop_ai_assistant",
    "answer": "answer",
    "bridge": "bridge",
    "client_state_update": "update_client_state",
    "conversation_relay_start": "start_conversation_relay",
    "conversation_relay_stop": "stop_conversation_relay",
    "enqueue": "enqueue",
    "fork_start": "start_forking",
    "fork_stop": "stop_forking",
    "gather": "gather",
    "gather_stop": "stop_gather",
    "gather_using_ai": "gather_using_ai",
    "gather_using_audio": "gather_using_audio",
    "gather_using_speak": "gather_using_speak",
    "hangup": "hangup",
    "leave_queue": "leave_queue",
    "playback_start": "start_playback",
    "playback_stop": "stop_playback",
    "record_pause": "pause_recording",
    "record_resume": "resume_recording",
    "record_start": "start_recording",
    "record_stop": "stop_recording",
    "refer": "refer",
    "reject": "reject",
    "send_dtmf": "send_dtmf",
    "send_sip_info": "send_sip_info",
    "siprec_start": "start_siprec",
    "siprec_stop": "stop_siprec",
    "speak": "speak",
    "streaming_start": "start_streaming",
    "streaming_stop": "stop_streaming",
    "suppression_start": "start_noise_suppression",
    "suppression_stop": "stop_noise_suppression",
    "switch_supervisor_role": "switch_supervisor_role",
    "transcription_start": "start_transcription",
    "transcription_stop": "stop_transcription",
    "transfer": "transfer",
}
"""Action (URL path) -> the SDK method, whose params live in `telnyx.types.calls.action_<method>_params`."""

SDK_RENAMES = {
    ("bridge", "call_control_id"): "call_control_id_to_bridge_with",
    ("transfer", "from"): "from_",
}
"""Body field -> the SDK's Python name, where they differ. `from` is a Python keyword; bridge's
`call_control_id` would clash with the SDK method's positional `call_control_id` (the call being
bridged). The SDK maps each back with `PropertyInfo(alias=...)`, checked below."""

SDK_AHEAD_OF_THE_SPEC = {
    ("ai_assistant_add_messages", "trigger_response"),
    ("hangup", "reason"),
    ("transfer", "diversion"),
    ("transfer", "route_to_mobile"),
}
"""Optional fields the installed SDK (newer than the vendored spec) already sends. When the vendored
spec is updated and schemas.json regenerated, they appear in the schemas and this set must empty."""

SPEC_AHEAD_OF_THE_SDK = {
    ("ai_assistant_start", "voice"),
    ("ai_assistant_start", "voice_settings"),
}
"""Optional fields of the vendored spec that the installed SDK does not have (yet)."""


def _sdk_fields(action: str) -> tuple[dict[str, str], set[str]]:
    """(body field -> SDK name, required body fields) of the SDK's params TypedDict for `action`."""
    module = importlib.import_module(f"telnyx.types.calls.action_{SDK_PARAMS[action]}_params")
    (params_type,) = [
        value for name, value in vars(module).items() if name.startswith("Action") and name.endswith("Params")
    ]
    # The SDK's modules use `from __future__ import annotations`: __required_keys__ cannot see Required[...].
    hints = typing.get_type_hints(params_type, include_extras=True)
    fields: dict[str, str] = {}
    required: set[str] = set()
    for name, hint in hints.items():
        is_required = typing.get_origin(hint) is typing.Required
        if typing.get_origin(hint) in (typing.Required, typing.NotRequired):
            (hint,) = typing.get_args(hint)
        aliases = [info.alias for info in getattr(hint, "__metadata__", ()) if getattr(info, "alias", None)]
        body_name = aliases[0] if aliases else name
        fields[body_name] = name
        if is_required:
            required.add(body_name)
    return fields, required


def test_the_oracle_covers_every_action() -> None:
    assert set(SDK_PARAMS) == set(ACTIONS)


@pytest.mark.parametrize("action", sorted(SDK_PARAMS))
def test_each_action_schema_has_the_sdks_fields_and_required_set(action: str) -> None:
    fields, required = _sdk_fields(action)
    entry = ACTIONS[action]
    schema = entry["schema"]
    ours = set(schema["properties"])
    ours_required = set(schema.get("required", []))
    if action == "client_state_update":  # its client_state is a param, kept out of the schema (a JSON value)
        ours, ours_required = ours | {"client_state"}, ours_required | {"client_state"}
        assert entry["takes_client_state"] is False
    else:
        assert entry["takes_client_state"] == ("client_state" in fields)
    assert entry["takes_command_id"] == ("command_id" in fields)
    sdk_ahead = {field for owner, field in SDK_AHEAD_OF_THE_SPEC if owner == action}
    spec_ahead = {field for owner, field in SPEC_AHEAD_OF_THE_SDK if owner == action}
    sdk_body = (set(fields) - sdk_ahead - (SENDER_FIELDS - ours)) | spec_ahead
    assert ours == sdk_body, f"only ours: {ours - sdk_body}; only the SDK's: {sdk_body - ours}"
    assert ours_required == required - {"command_id"}
    renames = {(action, body): name for body, name in fields.items() if body != name}
    assert renames == {key: value for key, value in SDK_RENAMES.items() if key[0] == action}


def test_the_sdk_and_the_spec_still_differ_by_exactly_these_fields() -> None:
    for action, field in SDK_AHEAD_OF_THE_SPEC:
        assert field in _sdk_fields(action)[0]
        assert field not in ACTIONS[action]["schema"]["properties"]
    for action, field in SPEC_AHEAD_OF_THE_SDK:
        assert field not in _sdk_fields(action)[0]
        assert field in ACTIONS[action]["schema"]["properties"]


# ---------------------------------------------------------------------------
# Refusing wrong params, naming the field


@pytest.mark.parametrize(
    ("action", "params", "field"),
    [
        ("record_start", {"format": "ogg", "channels": "dual"}, "format"),
        ("record_start", {"format": "wav", "channels": "stereo"}, "channels"),
        ("record_start", {"format": "wav"}, "channels"),
        ("record_start", {"format": "wav", "channels": "dual", "custom_file_name": "x" * 41}, "custom_file_name"),
        ("record_start", {"format": "wav", "channels": "dual", "custom_file_name": ""}, "custom_file_name"),
        ("record_start", {"format": "wav", "channels": "dual", "max_length": 14401}, "max_length"),
        ("answer", {"record_custom_file_name": "x" * 41}, "record_custom_file_name"),
        ("speak", {"voice": "female"}, "payload"),
        ("speak", {"payload": "", "voice": "female"}, "payload"),
        ("speak", {"payload": "Hi", "voice": ""}, "voice"),
        ("speak", {"payload": "Hello", "voice": "female", "payload_type": "html"}, "payload_type"),
        (
            "speak",
            {"payload": "Hi", "voice": "v", "voice_settings": {"type": "telnyx", "voice_speed": 2.5}},
            "voice_settings.voice_speed",
        ),
        ("speak", {"payload": "Hi", "voice": "v", "voice_settings": {"type": "acme"}}, "voice_settings.type"),
        ("speak", {"payload": "Hi", "voice": "v", "voice_settings": {"voice_speed": 1}}, "voice_settings.type"),
        ("speak", {"payload": "Hi", "voice": "v", "loop": 0}, "loop"),
        ("streaming_start", {"stream_codec": "MP3"}, "stream_codec"),
        ("streaming_start", {"stream_track": "inbound"}, "stream_track"),
        ("streaming_start", {"stream_bidirectional_sampling_rate": 44100}, "stream_bidirectional_sampling_rate"),
        ("streaming_start", {"stream_auth_token": "x" * 4001}, "stream_auth_token"),
        ("streaming_stop", {"stream_id": "stream-1"}, "stream_id"),
        ("transcription_start", {"transcription_engine": "Whisper"}, "transcription_engine"),
        ("transcription_start", {"transcription_tracks": "left"}, "transcription_tracks"),
        ("switch_supervisor_role", {"role": "boss"}, "role"),
        ("switch_supervisor_role", {}, "role"),
        ("send_dtmf", {"digits": "12E"}, "digits"),
        ("send_dtmf", {"digits": ""}, "digits"),
        ("send_dtmf", {}, "digits"),
        ("send_dtmf", {"digits": "1", "duration_millis": 50}, "duration_millis"),
        ("send_dtmf", {"digits": "1", "duration_millis": 501}, "duration_millis"),
        ("refer", {}, "sip_address"),
        ("refer", {"sip_address": ""}, "sip_address"),
        ("refer", {"sip_address": "sip:a@b", "sip_headers": [{"name": "X-Other", "value": "1"}]}, "sip_headers.0.name"),
        ("reject", {"cause": "NO_ANSWER"}, "cause"),
        ("bridge", {}, "call_control_id"),
        ("bridge", {"call_control_id": ""}, "call_control_id"),
        ("bridge", {"call_control_id": "v3:x", "video_room_id": "room"}, "video_room_id"),
        ("transfer", {"from": "+15550100"}, "to"),
        ("transfer", {"to": ""}, "to"),
        ("transfer", {"to": "+15550100", "time_limit_secs": 29}, "time_limit_secs"),
        ("transfer", {"to": "+15550100", "time_limit_secs": 14401}, "time_limit_secs"),
        ("transfer", {"to": "+15550100", "sip_region": "Mars"}, "sip_region"),
        ("transfer", {"to": "+15550100", "from_": "+15550199"}, "from_"),
        ("playback_start", {"audio_url": "https://a/b.mp3", "loop": 101}, "loop"),
        ("playback_start", {"audio_url": "https://a/b.mp3", "loop": "forever"}, "loop"),
        ("playback_start", {"audio_url": "https://a/b.mp3", "target_legs": "all"}, "target_legs"),
        ("record_stop", {"recording_id": "not-a-uuid"}, "recording_id"),
        ("record_pause", {"recording_id": "3fa85f64-5717-4562-b3fc-2c963f66afa"}, "recording_id"),
        ("fork_start", {"stream_type": "raw"}, "stream_type"),
        ("suppression_start", {"direction": "sideways"}, "direction"),
        (
            "suppression_start",
            {"noise_suppression_engine_config": {"attenuation_limit": 101}},
            "noise_suppression_engine_config.attenuation_limit",
        ),
        ("siprec_start", {"sip_transport": "sctp"}, "sip_transport"),
        ("gather", {"gather_id": ""}, "gather_id"),
        ("gather", {"gather_id": "x" * 41}, "gather_id"),
        ("gather", {"maximum_digits": 129}, "maximum_digits"),
        ("gather_using_audio", {"maximum_digits": 129}, "maximum_digits"),
        ("gather_using_speak", {"payload": "Press 1"}, "voice"),
        ("gather_using_speak", {"payload": "Press 1", "voice": "v", "maximum_digits": 129}, "maximum_digits"),
        ("answer", {"webhook_url_method": "PATCH"}, "webhook_url_method"),
        ("answer", {"billing_group_id": "group-1"}, "billing_group_id"),
        ("answer", {"deepfake_detection": {"enabled": True, "timeout": 61}}, "deepfake_detection.timeout"),
        ("answer", {"deepfake_detection": {"enabled": True, "rtp_timeout": 4}}, "deepfake_detection.rtp_timeout"),
        ("answer", {"deepfake_detection": {"timeout": 30}}, "deepfake_detection.enabled"),
        (
            "transfer",
            {"to": "+15550100", "webhook_retries_policies": {"call.answered": {"retries_ms": [1, 2, 3, 4, 5, 6]}}},
            "webhook_retries_policies.call.answered.retries_ms",
        ),
        ("client_state_update", {}, "client_state"),
        ("hangup", {"colour": "red"}, "colour"),
    ],
)
def test_wrong_params_are_refused_naming_the_field(action: str, params: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidCommandError) as caught:
        parse_command(action, params)
    assert caught.value.action == action
    assert set(caught.value.fields) == {field}, caught.value.problems
    assert str(caught.value).startswith(f"{action}: {field}: ")


def test_an_enum_error_says_what_is_allowed_and_what_came() -> None:
    with pytest.raises(InvalidCommandError) as caught:
        parse_command("record_start", {"format": "ogg", "channels": "dual"})
    assert str(caught.value) == "record_start: format: must be one of ['wav', 'mp3'] (got 'ogg')"


def test_every_wrong_field_is_named_at_once() -> None:
    with pytest.raises(InvalidCommandError) as caught:
        parse_command("record_start", {"format": "ogg", "max_length": -1, "colour": "red"})
    assert sorted(caught.value.fields) == ["channels", "colour", "format", "max_length"]


def test_an_invalid_command_is_permanent_and_a_value_error() -> None:
    with pytest.raises(InvalidCommandError) as caught:
        parse_command("reject", {})
    assert isinstance(caught.value, PermanentError)
    assert isinstance(caught.value, ValueError)


def test_client_state_and_command_id_are_not_params() -> None:
    with pytest.raises(InvalidCommandError) as caught:
        parse_command("speak", {"payload": "Hi", "voice": "female", "client_state": "abc", "command_id": "x"})
    assert [str(problem) for problem in caught.value.problems] == [
        "client_state: is not a param; the command sender sets it",
        "command_id: is not a param; the command sender sets it",
    ]


def test_an_unknown_field_suggests_the_closest_one() -> None:
    with pytest.raises(InvalidCommandError, match="payload_typ: is not a field here; did you mean 'payload_type'"):
        parse_command("speak", {"payload": "Hi", "voice": "female", "payload_typ": "ssml"})


def test_unknown_action_suggests_the_closest_one() -> None:
    with pytest.raises(UnknownActionError, match="did you mean 'playback_start'"):
        parse_command("playbak_start", {})


def test_unknown_action_is_an_invalid_command_listing_the_actions() -> None:
    with pytest.raises(InvalidCommandError, match="known actions: ai_assistant_add_messages, ai_assistant_join"):
        parse_command("dance", {})


def test_params_that_are_not_an_object_are_refused() -> None:
    with pytest.raises(InvalidCommandError, match=r"hangup: params must be an object \(got \['not', 'a', 'dict'\]\)"):
        parse_command("hangup", ["not", "a", "dict"])  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# What valid commands send


def test_a_command_sends_only_the_given_fields_as_telnyx_names_them() -> None:
    command = parse_command("record_start", {"format": "mp3", "channels": "single", "play_beep": True})
    assert (command.action, command.http_method, command.takes_command_id, command.takes_client_state) == (
        "record_start",
        "POST",
        True,
        True,
    )
    assert command.body() == {"format": "mp3", "channels": "single", "play_beep": True}


def test_commands_without_params_send_an_empty_body() -> None:
    assert parse_command("hangup").body() == {}
    assert parse_command("gather_stop", None).body() == {}


def test_transfer_from_is_sent_as_from() -> None:
    assert parse_command("transfer", {"to": "+15550100", "from": "+15550199"}).body() == {
        "to": "+15550100",
        "from": "+15550199",
    }


def test_bridge_names_the_other_call_as_the_body_does() -> None:
    command = parse_command("bridge", {"call_control_id": "v3:other", "park_after_unbridge": "self"})
    assert command.body() == {"call_control_id": "v3:other", "park_after_unbridge": "self"}


def test_nested_objects_are_sent_as_plain_json() -> None:
    settings = {"type": "telnyx", "voice_speed": 1.5}
    command = parse_command("speak", {"payload": "Hi", "voice": "Telnyx.KokoroTTS.af", "voice_settings": settings})
    assert command.body()["voice_settings"] == settings


def test_no_defaults_are_filled_in() -> None:
    """Telnyx applies its own defaults; a body with them spelled out would pin today's."""
    assert parse_command("gather", {}).body() == {}
    assert parse_command("playback_start", {"audio_url": "https://a/b.wav"}).body() == {"audio_url": "https://a/b.wav"}


@pytest.mark.parametrize(
    "recording_id", ["3fa85f64-5717-4562-b3fc-2c963f66afa6", "3FA85F64-5717-4562-B3FC-2C963F66AFA6"]
)
def test_uuid_fields_keep_the_text_they_were_given(recording_id: str) -> None:
    assert parse_command("record_stop", {"recording_id": recording_id}).body() == {"recording_id": recording_id}


@pytest.mark.parametrize("digits", ["1", "1www2WABCDw9", "*#0"])
def test_dtmf_digits_accept_what_telnyx_documents(digits: str) -> None:
    assert parse_command("send_dtmf", {"digits": digits}).body() == {"digits": digits}


@pytest.mark.parametrize("loop", [1, 100, "infinity"])
def test_loop_accepts_a_count_from_1_to_100_or_infinity(loop: int | str) -> None:
    assert parse_command("playback_start", {"audio_url": "https://a/b.wav", "loop": loop}).body()["loop"] == loop
    assert parse_command("speak", {"payload": "x", "voice": "v", "loop": loop}).body()["loop"] == loop


def test_the_body_is_a_copy_and_the_params_cannot_change() -> None:
    given_params: dict[str, Any] = {"payload": "Hi", "voice": "v", "voice_settings": {"type": "aws"}}
    command = parse_command("speak", given_params)
    given_params["voice_settings"]["type"] = "acme"
    command.body()["voice_settings"]["type"] = "acme"
    assert command.body()["voice_settings"] == {"type": "aws"}
    with pytest.raises(TypeError):
        command.params["payload"] = "Bye"  # type: ignore[index]


def test_with_params_validates_again() -> None:
    command = parse_command("gather_using_speak", {"payload": "Press 1", "voice": "v", "maximum_digits": 3})
    changed = command.with_params(maximum_tries=1, maximum_digits=None)
    assert changed.body() == {"payload": "Press 1", "voice": "v", "maximum_tries": 1}
    with pytest.raises(InvalidCommandError, match="maximum_digits"):
        command.with_params(maximum_digits=129)


def test_equal_params_make_equal_commands() -> None:
    assert parse_command("speak", {"payload": "Hi", "voice": "v"}) == parse_command(
        "speak", {"voice": "v", "payload": "Hi"}
    )
    assert isinstance(parse_command("hangup"), CallCommand)


def test_client_state_update_is_a_put_carrying_the_encoded_json_value() -> None:
    command = parse_command("client_state_update", {"client_state": {"flow": "main", "step": 3}})
    assert (command.http_method, command.takes_command_id, command.takes_client_state) == ("PUT", False, False)
    encoded = command.body()["client_state"]
    assert client_state.decode(encoded).value == {"flow": "main", "step": 3}
    assert command.body() == {"client_state": encoded}


def test_client_state_update_refuses_a_state_too_large_to_send() -> None:
    with pytest.raises(InvalidCommandError, match="client_state") as caught:
        parse_command("client_state_update", {"client_state": "x" * client_state.MAX_CLIENT_STATE_BYTES})
    assert "voicebus allows" in str(caught.value)


def test_validation_needs_neither_the_sdk_nor_the_tools_and_compiles_only_what_is_used() -> None:
    code = (
        "import sys\n"
        "from voicebus.commands import validation\n"
        "validation.parse_command('speak', {'payload': 'Hi', 'voice': 'v'})\n"
        "assert 'telnyx' not in sys.modules, 'telnyx was imported'\n"
        "assert not [m for m in sys.modules if m.startswith(('voicebus_cli', 'pydantic'))], 'unexpected imports'\n"
        "assert validation._validator.cache_info().currsize == 1, validation._validator.cache_info()\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "layers" / "voicebus")}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


# ---------------------------------------------------------------------------
# Command ids


def test_command_id_is_a_stable_uuid() -> None:
    first = ids.command_id("0ccc7b54-4df3-4bca-a65a-3da1ecc777f0", "speak")
    assert first == ids.command_id("0ccc7b54-4df3-4bca-a65a-3da1ecc777f0", "speak")
    assert uuid.UUID(first).version == 5
    # Fixed forever: a different value here means every deployed id changed.
    assert first == str(uuid.uuid5(ids.COMMAND_ID_NAMESPACE, '["0ccc7b54-4df3-4bca-a65a-3da1ecc777f0","speak",""]'))


def test_command_id_differs_across_actions_webhooks_and_discriminators() -> None:
    produced = {
        ids.command_id("webhook-1", "speak"),
        ids.command_id("webhook-1", "playback_start"),
        ids.command_id("webhook-2", "speak"),
        ids.command_id("webhook-1", "speak", "second"),
    }
    assert len(produced) == 4


def test_command_id_parts_cannot_run_into_each_other() -> None:
    assert ids.command_id("ab", "c") != ids.command_id("a", "bc")
    assert ids.command_id("a", "b", "c") != ids.command_id("a", "bc", "")


@pytest.mark.parametrize(("webhook_id", "action"), [("", "speak"), ("webhook-1", "")])
def test_command_id_refuses_empty_parts(webhook_id: str, action: str) -> None:
    with pytest.raises(ValueError, match="must"):
        ids.command_id(webhook_id, action)


parts = st.text(alphabet='ab",[]\\', min_size=1, max_size=4)


@given(
    st.tuples(parts, parts, st.text(alphabet='ab",', max_size=3)),
    st.tuples(parts, parts, st.text(alphabet='ab",', max_size=3)),
)
def test_command_id_is_equal_exactly_when_the_inputs_are(
    left: tuple[str, str, str], right: tuple[str, str, str]
) -> None:
    assert (ids.command_id(*left) == ids.command_id(*right)) == (left == right)


# ---------------------------------------------------------------------------
# The SDK client for Lambda (the Secrets Manager path is in tests/integration/test_commands.py)

UNREACHABLE_BASE_URL = "http://127.0.0.1:9/v2"  # the discard port: nothing answers there


def test_api_key_from_the_environment_is_used_as_is_even_with_a_secret_configured() -> None:
    environ = {"TELNYX_API_KEY": " KEY_local ", "TELNYX_API_KEY_SECRET_ARN": "arn:aws:secretsmanager:x"}
    key = client.load_api_key(environ)
    assert (key.value, key.source) == ("KEY_local", "TELNYX_API_KEY")
    assert "KEY_local" not in repr(key)


def test_a_missing_api_key_names_both_variables() -> None:
    with pytest.raises(client.MissingApiKeyError) as caught:
        client.load_api_key({"TELNYX_API_KEY": "  "})
    assert "TELNYX_API_KEY" in str(caught.value)
    assert "TELNYX_API_KEY_SECRET_ARN" in str(caught.value)
    assert isinstance(caught.value, ConfigurationError)


def test_the_lambda_client_has_short_timeouts_and_no_sdk_retries() -> None:
    built = recording_links.build_client("KEY_local", base_url=UNREACHABLE_BASE_URL)
    assert built.max_retries == 0
    assert built.timeout == httpx.Timeout(5.0, connect=2.0)
    assert str(built.base_url) == UNREACHABLE_BASE_URL + "/"


def test_the_sdk_reads_telnyx_base_url_when_none_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELNYX_BASE_URL", UNREACHABLE_BASE_URL)
    assert str(recording_links.build_client("KEY_local").base_url) == UNREACHABLE_BASE_URL + "/"


def test_the_container_keeps_one_client_until_the_key_changes() -> None:
    environ = {"TELNYX_API_KEY": "KEY_one", "TELNYX_BASE_URL": UNREACHABLE_BASE_URL}
    first = recording_links.sdk_client(environ=environ)
    assert recording_links.sdk_client(environ=environ) is first
    rotated = recording_links.sdk_client(environ={**environ, "TELNYX_API_KEY": "KEY_two"})
    assert rotated is not first
    assert rotated.api_key == "KEY_two"
    assert str(rotated.base_url) == UNREACHABLE_BASE_URL + "/"


# ---------------------------------------------------------------------------
# Sender checks made before anything is sent (sending itself is tested against the stand-in)


@pytest.fixture
def offline_sender() -> CommandSender:
    """A sender whose requests could only fail to connect: any error here was raised before sending."""
    return CommandSender(CallControlClient("KEY_local", base_url=UNREACHABLE_BASE_URL), max_attempts=1)


@pytest.mark.parametrize(
    ("action", "params"),
    [("switch_supervisor_role", {"role": "monitor"}), ("client_state_update", {"client_state": {"step": 1}})],
)
def test_a_client_state_the_command_cannot_carry_is_refused_before_sending(
    offline_sender: CommandSender, action: str, params: dict[str, Any]
) -> None:
    command = parse_command(action, params)
    with pytest.raises(CommandOptionError, match=command.action):
        offline_sender.send("v3:call", command, webhook_id="webhook-1", client_state={"step": 2})


def test_a_client_state_too_large_is_refused_before_sending(offline_sender: CommandSender) -> None:
    with pytest.raises(client_state.ClientStateError):
        offline_sender.send(
            "v3:call",
            parse_command("hangup"),
            webhook_id="webhook-1",
            client_state="x" * client_state.MAX_CLIENT_STATE_BYTES,
        )


def test_telnyx_error_details_are_read_from_the_error_body() -> None:
    body = {
        "errors": [
            {"code": "10032", "title": "Invalid enumerated value", "detail": "one of", "source": {"pointer": "/x"}},
            "not an entry",
        ]
    }
    assert error_details(body) == (TelnyxErrorDetail("10032", "Invalid enumerated value", "one of", "/x"),)
    assert error_details("Internal Server Error") == ()
    assert error_details({"errors": "nope"}) == ()


def test_a_rejected_outcome_gives_a_one_line_reason() -> None:
    detail = TelnyxErrorDetail("90018", "Call has already ended", "This call is no longer active.")
    outcome = CommandOutcome("hangup", "v3:call", None, OutcomeStatus.REJECTED, 1, errors=(detail,))
    assert outcome.rejected
    assert not outcome.accepted
    assert outcome.reason == "90018 Call has already ended: This call is no longer active."
