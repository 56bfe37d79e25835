"""The command models against the vendored OpenAPI spec and the telnyx SDK, command ids, parse_command."""

from __future__ import annotations

import inspect
import json
import os
import re
import subprocess
import sys
import types
import typing
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError
from telnyx.resources.calls.actions import ActionsResource

from voicebus.calls import client_state
from voicebus.commands import client, ids, models
from voicebus.commands.models import COMMANDS, CallCommand, InvalidCommandError, UnknownActionError, parse_command
from voicebus.commands.sender import (
    CommandOptionError,
    CommandOutcome,
    CommandSender,
    OutcomeStatus,
    TelnyxErrorDetail,
    error_details,
)
from voicebus.config import ConfigurationError
from voicebus_cli.local.telnyx_api import SPEC_PATH

ROOT = Path(__file__).resolve().parents[2]
SPEC = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
SCHEMAS = SPEC["components"]["schemas"]
SENDER_FIELDS = {"client_state", "command_id"}

SEED_ACTIONS = {
    "playback_start",
    "playback_stop",
    "record_start",
    "record_stop",
    "record_pause",
    "record_resume",
    "speak",
    "fork_start",
    "fork_stop",
    "streaming_start",
    "streaming_stop",
    "transcription_start",
    "transcription_stop",
    "client_state_update",
    "refer",
    "send_dtmf",
    "siprec_start",
    "siprec_stop",
    "suppression_start",
    "suppression_stop",
    "switch_supervisor_role",
}
IVR_ACTIONS = {
    "answer",
    "hangup",
    "reject",
    "gather",
    "gather_using_speak",
    "gather_using_audio",
    "gather_stop",
    "transfer",
    "bridge",
}
# Literals whose values the spec gives only in a description, not as an enum.
DESCRIBED_ENUMS = {
    ("PlaybackStart", "target_legs"),
    ("PlaybackStart", "loop"),
    ("Speak", "loop"),
    ("TranscriptionStart", "transcription_tracks"),
}
# Nested objects deliberately passed through as JSON (Telnyx checks them).
PASSTHROUGH = {
    ("Answer", "assistant"),
    ("Answer", "conversation_relay_config"),
    ("Answer", "transcription_config"),
    ("TranscriptionStart", "transcription_engine_config"),
}


def resolve(schema: Mapping[str, Any]) -> Mapping[str, Any]:
    while "$ref" in schema:
        schema = SCHEMAS[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def operation(action: str) -> tuple[str, Mapping[str, Any]]:
    """(HTTP method, operation) of the action's spec path; fails when the spec lacks it."""
    item = SPEC["paths"][f"/calls/{{call_control_id}}/actions/{action}"]
    (method,) = [name for name in ("post", "put") if name in item]
    return method.upper(), item[method]


def request_schema(action: str) -> Mapping[str, Any]:
    _, op = operation(action)
    return resolve(op["requestBody"]["content"]["application/json"]["schema"])


def walk(annotation: Any) -> Iterator[Any]:
    """Every type inside an annotation: through unions, Annotated, list[...] and dict[...]."""
    yield annotation
    for arg in typing.get_args(annotation):
        if typing.get_origin(annotation) is typing.Literal:
            continue
        yield from walk(arg)


def literal_values(annotation: Any) -> set[Any] | None:
    found = [set(typing.get_args(t)) for t in walk(annotation) if typing.get_origin(t) is typing.Literal]
    return set().union(*found) if found else None


def nested_models(annotation: Any) -> list[type[BaseModel]]:
    return [t for t in walk(annotation) if isinstance(t, type) and issubclass(t, BaseModel)]


def is_object(schema: Mapping[str, Any]) -> bool:
    if schema.get("type") == "object":
        return True
    variants = schema.get("oneOf") or schema.get("anyOf") or []
    return any(resolve(variant).get("type") == "object" for variant in variants)


def check_against_schema(model: type[BaseModel], schema: Mapping[str, Any], owner: str, exclude: set[str]) -> None:
    """Names, required fields and enums of `model` (and its nested models) equal the spec's."""
    properties = schema.get("properties", {})
    fields = {info.serialization_alias or info.alias or name: info for name, info in model.model_fields.items()}
    assert set(fields) == set(properties) - exclude, f"{model.__name__}: fields differ from the spec"
    required = {name for name, info in fields.items() if info.is_required()}
    assert required == set(schema.get("required", [])) - exclude, f"{model.__name__}: required fields differ"
    for name, info in fields.items():
        spec_field = resolve(properties[name])
        literals = literal_values(info.annotation)
        spec_enum = spec_field.get("enum")
        where = f"{model.__name__}.{name}"
        if spec_enum is not None and set(spec_enum) <= {True, False}:
            assert info.annotation in (bool, bool | None), where
        elif spec_enum is not None:
            assert literals == set(spec_enum) - {None}, where
        elif name != "type":
            assert literals is None or (owner, name) in DESCRIBED_ENUMS, f"{where}: an enum the spec does not have"
        children = nested_models(info.annotation)
        if not children:
            assert not is_object(spec_field) or (owner, name) in PASSTHROUGH or "additionalProperties" in spec_field, (
                f"{where}: an object of the spec is not modelled"
            )
            continue
        for child in children:
            check_against_schema(child, _child_schema(spec_field, child), owner, set())


def _child_schema(spec_field: Mapping[str, Any], child: type[BaseModel]) -> Mapping[str, Any]:
    if "items" in spec_field:
        return resolve(spec_field["items"])
    if isinstance(spec_field.get("additionalProperties"), Mapping):
        return resolve(spec_field["additionalProperties"])
    if "oneOf" in spec_field:
        tag = literal_values(child.model_fields["type"].annotation)
        (variant,) = [
            resolve(v) for v in spec_field["oneOf"] if set(resolve(v)["properties"]["type"].get("enum", [])) == tag
        ]
        return variant
    return spec_field


# ---------------------------------------------------------------------------
# Every action has a model, matching the spec and the SDK


def test_every_seed_and_ivr_action_has_a_model() -> None:
    assert set(COMMANDS) == SEED_ACTIONS | IVR_ACTIONS


@pytest.mark.parametrize("action", sorted(COMMANDS))
def test_model_matches_the_spec(action: str) -> None:
    model = COMMANDS[action]
    assert model.action == action
    method, _ = operation(action)
    assert model.http_method == method
    schema = request_schema(action)
    exclude = SENDER_FIELDS - {"client_state"} if model is models.ClientStateUpdate else SENDER_FIELDS
    check_against_schema(model, schema, model.__name__, exclude)
    properties = set(schema["properties"])
    assert model.takes_command_id == ("command_id" in properties)
    assert model.takes_client_state == ("client_state" in properties and model is not models.ClientStateUpdate)


@pytest.mark.parametrize("action", sorted(COMMANDS))
def test_model_maps_to_an_sdk_method_on_the_same_path(action: str) -> None:
    model = COMMANDS[action]
    sdk_method = getattr(ActionsResource, model.sdk_method)
    source = inspect.getsource(sdk_method)
    assert re.search(rf'"/calls/\{{\w+\}}/actions/{action}"', source), f"{model.sdk_method} posts elsewhere"
    assert f"self._{model.http_method.lower()}(" in source
    parameters = inspect.signature(sdk_method).parameters
    body_fields = {model.sdk_renames.get(name, name) for name in model.model_fields}
    assert body_fields <= set(parameters), f"{model.sdk_method} lacks {body_fields - set(parameters)}"
    assert ("command_id" in parameters) == model.takes_command_id
    first = list(parameters)[1]
    assert parameters[first].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD  # the call's id, passed positionally


def test_every_literal_alias_in_enums_is_a_literal() -> None:
    from voicebus.commands import enums

    aliases = {name: value for name, value in vars(enums).items() if typing.get_origin(value) is typing.Literal}
    assert len(aliases) > 40
    assert aliases["StreamCodec"] == typing.Literal["PCMU", "PCMA", "G722", "OPUS", "AMR-WB", "L16", "default"]
    assert set(typing.get_args(aliases["TranscriptionLanguage"])) == set(SCHEMAS["TranscriptionLanguage"]["enum"])


def test_importing_the_models_does_not_import_the_sdk() -> None:
    code = (
        "import sys, voicebus.commands, voicebus.commands.models, voicebus.commands.ids;"
        "assert 'telnyx' not in sys.modules, 'telnyx was imported'"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "layers" / "voicebus")}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


# ---------------------------------------------------------------------------
# Refusing wrong params, naming the field


@pytest.mark.parametrize(
    ("action", "params", "field"),
    [
        ("record_start", {"format": "ogg", "channels": "dual"}, "format"),
        ("record_start", {"format": "wav", "channels": "stereo"}, "channels"),
        ("record_start", {"format": "wav"}, "channels"),
        ("record_start", {"format": "wav", "channels": "dual", "custom_file_name": "x" * 41}, "custom_file_name"),
        ("speak", {"voice": "female"}, "payload"),
        ("speak", {"payload": "Hello", "voice": "female", "payload_type": "html"}, "payload_type"),
        (
            "speak",
            {"payload": "Hi", "voice": "v", "voice_settings": {"type": "telnyx", "voice_speed": 2.5}},
            "voice_speed",
        ),
        ("speak", {"payload": "Hi", "voice": "v", "voice_settings": {"type": "acme"}}, "voice_settings"),
        ("streaming_start", {"stream_codec": "MP3"}, "stream_codec"),
        ("streaming_start", {"stream_track": "inbound"}, "stream_track"),
        ("streaming_start", {"stream_bidirectional_sampling_rate": 44100}, "stream_bidirectional_sampling_rate"),
        ("transcription_start", {"transcription_engine": "Whisper"}, "transcription_engine"),
        ("switch_supervisor_role", {"role": "boss"}, "role"),
        ("switch_supervisor_role", {}, "role"),
        ("send_dtmf", {"digits": "12E"}, "digits"),
        ("send_dtmf", {}, "digits"),
        ("refer", {}, "sip_address"),
        ("refer", {"sip_address": "sip:a@b", "sip_headers": [{"name": "X-Other", "value": "1"}]}, "sip_headers"),
        ("reject", {"cause": "NO_ANSWER"}, "cause"),
        ("bridge", {}, "call_control_id"),
        ("transfer", {"from": "+15550100"}, "to"),
        ("transfer", {"to": "+15550100", "time_limit_secs": 29}, "time_limit_secs"),
        ("transfer", {"to": "+15550100", "sip_region": "Mars"}, "sip_region"),
        ("playback_start", {"audio_url": "https://a/b.mp3", "loop": 101}, "loop"),
        ("playback_start", {"audio_url": "https://a/b.mp3", "target_legs": "all"}, "target_legs"),
        ("record_stop", {"recording_id": "not-a-uuid"}, "recording_id"),
        ("fork_start", {"stream_type": "raw"}, "stream_type"),
        ("suppression_start", {"direction": "sideways"}, "direction"),
        ("siprec_start", {"sip_transport": "sctp"}, "sip_transport"),
        ("gather_using_speak", {"payload": "Press 1"}, "voice"),
        ("answer", {"webhook_url_method": "PATCH"}, "webhook_url_method"),
        ("client_state_update", {}, "client_state"),
        ("hangup", {"colour": "red"}, "colour"),
    ],
)
def test_wrong_params_are_refused_naming_the_field(action: str, params: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidCommandError) as caught:
        parse_command(action, params)
    assert caught.value.action == action
    assert any(field in (str(part) for part in error["loc"]) for error in caught.value.errors), caught.value.errors
    assert str(caught.value).startswith(f"{action}: ")
    assert field in str(caught.value)


def test_an_enum_error_says_what_is_allowed_and_what_came() -> None:
    with pytest.raises(InvalidCommandError) as caught:
        parse_command("record_start", {"format": "ogg", "channels": "dual"})
    assert str(caught.value) == "record_start: format: Input should be 'wav' or 'mp3' (got 'ogg')"


def test_building_a_model_directly_raises_pydantics_error_naming_the_field() -> None:
    with pytest.raises(ValidationError) as caught:
        models.SwitchSupervisorRole(role="boss")  # type: ignore[arg-type]
    assert caught.value.errors()[0]["loc"] == ("role",)


def test_client_state_and_command_id_are_not_params() -> None:
    with pytest.raises(InvalidCommandError) as caught:
        parse_command("speak", {"payload": "Hi", "voice": "female", "client_state": "abc", "command_id": "x"})
    assert "client_state: is not a param; CommandSender.send sets it" in caught.value.problems
    assert "command_id: is not a param; CommandSender.send sets it" in caught.value.problems


def test_unknown_action_suggests_the_closest_one() -> None:
    with pytest.raises(UnknownActionError, match="did you mean 'playback_start'"):
        parse_command("playbak_start", {})


def test_unknown_action_is_an_invalid_command_and_a_value_error() -> None:
    with pytest.raises(InvalidCommandError):
        parse_command("dance", {})
    with pytest.raises(ValueError, match="known actions: answer, bridge"):
        parse_command("dance", {})


def test_params_that_are_not_an_object_are_refused() -> None:
    with pytest.raises(InvalidCommandError, match="hangup"):
        parse_command("hangup", ["not", "a", "dict"])  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# What valid commands send


def test_parse_command_returns_the_actions_model_with_only_the_given_fields() -> None:
    command = parse_command("record_start", {"format": "mp3", "channels": "single", "play_beep": True})
    assert isinstance(command, models.RecordStart)
    assert command.sdk_kwargs() == {"format": "mp3", "channels": "single", "play_beep": True}


def test_commands_without_params_send_an_empty_body() -> None:
    assert parse_command("hangup").sdk_kwargs() == {}
    assert parse_command("gather_stop", None).body() == {}


def test_transfer_from_is_from_in_the_body_and_from__for_the_sdk() -> None:
    by_alias = parse_command("transfer", {"to": "+15550100", "from": "+15550199"})
    by_name = parse_command("transfer", {"to": "+15550100", "from_": "+15550199"})
    assert by_alias == by_name
    assert by_alias.body() == {"to": "+15550100", "from": "+15550199"}
    assert by_alias.sdk_kwargs() == {"to": "+15550100", "from_": "+15550199"}


def test_bridge_names_the_other_call_as_the_sdk_expects() -> None:
    command = parse_command("bridge", {"call_control_id": "v3:other", "park_after_unbridge": "self"})
    assert command.body() == {"call_control_id": "v3:other", "park_after_unbridge": "self"}
    assert command.sdk_kwargs() == {"call_control_id_to_bridge_with": "v3:other", "park_after_unbridge": "self"}


def test_nested_objects_are_sent_as_plain_json() -> None:
    command = parse_command(
        "speak",
        {"payload": "Hi", "voice": "Telnyx.KokoroTTS.af", "voice_settings": {"type": "telnyx", "voice_speed": 1.5}},
    )
    assert command.sdk_kwargs()["voice_settings"] == {"type": "telnyx", "voice_speed": 1.5}


def test_uuid_fields_keep_the_text_they_were_given() -> None:
    recording_id = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
    assert parse_command("record_stop", {"recording_id": recording_id}).body() == {"recording_id": recording_id}


@pytest.mark.parametrize("digits", ["1", "1www2WABCDw9", "*#0"])
def test_dtmf_digits_accept_what_telnyx_documents(digits: str) -> None:
    assert parse_command("send_dtmf", {"digits": digits}).body() == {"digits": digits}


def test_loop_accepts_a_count_or_infinity() -> None:
    assert parse_command("playback_start", {"audio_url": "https://a/b.wav", "loop": 3}).body()["loop"] == 3
    assert parse_command("speak", {"payload": "x", "voice": "v", "loop": "infinity"}).body()["loop"] == "infinity"


def test_client_state_update_carries_the_encoded_json_value() -> None:
    command = parse_command("client_state_update", {"client_state": {"flow": "main", "step": 3}})
    encoded = command.sdk_kwargs()["client_state"]
    assert client_state.decode(encoded).value == {"flow": "main", "step": 3}
    assert command.body() == {"client_state": encoded}


def test_client_state_update_refuses_a_state_too_large_to_send() -> None:
    with pytest.raises(InvalidCommandError, match="client_state") as caught:
        parse_command("client_state_update", {"client_state": "x" * client_state.MAX_CLIENT_STATE_BYTES})
    assert "voicebus allows" in str(caught.value)


def test_models_are_frozen() -> None:
    command = models.Reject(cause="USER_BUSY")
    with pytest.raises(ValidationError):
        command.cause = "CALL_REJECTED"


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
# The registry itself


def test_registry_is_read_only_and_keyed_by_each_models_action() -> None:
    assert isinstance(COMMANDS, types.MappingProxyType)
    assert all(model.action == action and issubclass(model, CallCommand) for action, model in COMMANDS.items())


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
    built = client.build_client("KEY_local", base_url=UNREACHABLE_BASE_URL)
    assert built.max_retries == 0
    assert built.timeout == httpx.Timeout(5.0, connect=2.0)
    assert str(built.base_url) == UNREACHABLE_BASE_URL + "/"


def test_the_sdk_reads_telnyx_base_url_when_none_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELNYX_BASE_URL", UNREACHABLE_BASE_URL)
    assert str(client.build_client("KEY_local").base_url) == UNREACHABLE_BASE_URL + "/"


def test_the_container_keeps_one_client_until_the_key_changes() -> None:
    environ = {"TELNYX_API_KEY": "KEY_one", "TELNYX_BASE_URL": UNREACHABLE_BASE_URL}
    first = client.get_client(environ=environ)
    assert client.get_client(environ=environ) is first
    rotated = client.get_client(environ={**environ, "TELNYX_API_KEY": "KEY_two"})
    assert rotated is not first
    assert rotated.api_key == "KEY_two"
    assert str(rotated.base_url) == UNREACHABLE_BASE_URL + "/"


# ---------------------------------------------------------------------------
# Sender checks made before anything is sent (sending itself is tested against the stand-in)


@pytest.fixture
def offline_sender() -> CommandSender:
    """A sender whose requests could only fail to connect: any error here was raised before sending."""
    return CommandSender(client.build_client("KEY_local", base_url=UNREACHABLE_BASE_URL), max_attempts=1)


@pytest.mark.parametrize(
    "command",
    [models.SwitchSupervisorRole(role="monitor"), models.ClientStateUpdate(client_state={"step": 1})],
    ids=["switch_supervisor_role", "client_state_update"],
)
def test_a_client_state_the_command_cannot_carry_is_refused_before_sending(
    offline_sender: CommandSender, command: CallCommand
) -> None:
    with pytest.raises(CommandOptionError, match=command.action):
        offline_sender.send("v3:call", command, webhook_id="webhook-1", client_state={"step": 2})


def test_a_client_state_too_large_is_refused_before_sending(offline_sender: CommandSender) -> None:
    with pytest.raises(client_state.ClientStateError):
        offline_sender.send(
            "v3:call", models.Hangup(), webhook_id="webhook-1", client_state="x" * client_state.MAX_CLIENT_STATE_BYTES
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
