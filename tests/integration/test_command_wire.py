"""The urllib3 client sends what the telnyx SDK sends, byte for byte, for every action; and never imports the SDK.

The SDK is the oracle: each action goes once through `CommandSender` and once
through `telnyx.Telnyx(...).calls.actions.<method>(...)` to the Telnyx stand-in,
and the two requests must agree on method, path, the headers Telnyx reads, and
the body's bytes. The SDK's method names and keyword renames live here only.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import telnyx

from tests.integration.test_commands import SAMPLE_PARAMS
from voicebus.calls import client_state
from voicebus.commands.http import CallControlClient, action_path, encode_body
from voicebus.commands.sender import CommandSender
from voicebus.commands.validation import known_actions, parse_command
from voicebus_cli.local.telnyx_api import RecordedRequest, TelnyxApiStandIn, load_spec

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
# Slash, space, ?, #, % and non-ASCII must be escaped; ":" and "@" are kept, as in the SDK's path_template.
AWKWARD_ID = "v3:a/b c?d#e%f+g=h@ü~"

SDK_METHODS = {
    "answer": "answer",
    "hangup": "hangup",
    "reject": "reject",
    "bridge": "bridge",
    "transfer": "transfer",
    "refer": "refer",
    "playback_start": "start_playback",
    "playback_stop": "stop_playback",
    "speak": "speak",
    "gather": "gather",
    "gather_using_speak": "gather_using_speak",
    "gather_using_audio": "gather_using_audio",
    "gather_stop": "stop_gather",
    "send_dtmf": "send_dtmf",
    "record_start": "start_recording",
    "record_stop": "stop_recording",
    "record_pause": "pause_recording",
    "record_resume": "resume_recording",
    "fork_start": "start_forking",
    "fork_stop": "stop_forking",
    "streaming_start": "start_streaming",
    "streaming_stop": "stop_streaming",
    "transcription_start": "start_transcription",
    "transcription_stop": "stop_transcription",
    "siprec_start": "start_siprec",
    "siprec_stop": "stop_siprec",
    "suppression_start": "start_noise_suppression",
    "suppression_stop": "stop_noise_suppression",
    "switch_supervisor_role": "switch_supervisor_role",
    "client_state_update": "update_client_state",
    "enqueue": "enqueue",
    "leave_queue": "leave_queue",
    "send_sip_info": "send_sip_info",
    "ai_assistant_start": "start_ai_assistant",
    "ai_assistant_stop": "stop_ai_assistant",
    "ai_assistant_join": "join_ai_assistant",
    "ai_assistant_add_messages": "add_ai_assistant_messages",
    "gather_using_ai": "gather_using_ai",
    "conversation_relay_start": "start_conversation_relay",
    "conversation_relay_stop": "stop_conversation_relay",
}
"""Action -> method of `client.calls.actions`."""

SDK_RENAMES = {
    "bridge": {"call_control_id": "call_control_id_to_bridge_with"},
    "transfer": {"from": "from_"},
}
"""Body field -> SDK keyword, where the SDK names a field differently (Python keywords, the path's own id)."""

COMPARED_HEADERS = ("authorization", "content-type", "accept")


@pytest.fixture
def api(telnyx_api: TelnyxApiStandIn) -> TelnyxApiStandIn:
    return telnyx_api


@pytest.fixture
def sdk(api: TelnyxApiStandIn) -> Iterator[telnyx.Telnyx]:
    client = telnyx.Telnyx(api_key=api.api_key, base_url=api.base_url, max_retries=0)
    yield client
    client.close()


def sdk_kwargs(action: str, body: dict[str, Any]) -> dict[str, Any]:
    renames = SDK_RENAMES.get(action, {})
    return {renames.get(name, name): value for name, value in body.items()}


def test_the_tables_cover_every_action_the_layer_sends() -> None:
    assert set(SDK_METHODS) == set(known_actions()) == set(SAMPLE_PARAMS)
    assert all(hasattr(telnyx.resources.calls.actions.ActionsResource, method) for method in SDK_METHODS.values())


def test_the_required_fields_a_command_writes_first_are_the_specs() -> None:
    spec = load_spec()

    def required(schema: dict[str, Any]) -> set[str]:
        while "$ref" in schema:
            schema = spec.resolve(schema["$ref"].removeprefix("#"))
        return set(schema.get("required", [])).union(*(required(part) for part in schema.get("allOf", [])))

    for action in known_actions():
        routed = spec.route(f"{spec.prefix}/calls/x/actions/{action}")
        assert routed is not None, action
        method = parse_command(action, SAMPLE_PARAMS[action]).http_method
        pointer = spec.request_schema_pointer(routed[0].operations[method])
        assert pointer is not None, action
        assert required(spec.resolve(pointer)) == set(parse_command(action, SAMPLE_PARAMS[action]).required_fields), (
            action
        )


@pytest.mark.parametrize("action", sorted(SDK_METHODS))
def test_every_action_goes_out_as_the_sdk_sends_it(api: TelnyxApiStandIn, sdk: telnyx.Telnyx, action: str) -> None:
    command = parse_command(action, SAMPLE_PARAMS[action])
    state = {"flow": "main", "node": action, "note": "naïve ✓"} if command.takes_client_state else None
    sender = CommandSender(CallControlClient(api.api_key, base_url=api.base_url), max_attempts=1)

    outcome = sender.send(AWKWARD_ID, command, webhook_id=str(uuid.uuid4()), client_state=state)
    body = command.body()
    if outcome.command_id is not None:
        body["command_id"] = outcome.command_id
    if state is not None:
        body["client_state"] = client_state.encode(state)
    getattr(sdk.calls.actions, SDK_METHODS[action])(AWKWARD_ID, **sdk_kwargs(action, body))

    ours, theirs = api.requests()
    assert (ours.status, theirs.status) == (200, 200), (ours.body, theirs.body)
    assert ours.call_control_id == AWKWARD_ID  # the stand-in decoded the path back to the id
    assert "%2F" in ours.path
    assert wire(ours) == wire(theirs)
    assert ours.raw_body == theirs.raw_body


def wire(request: RecordedRequest) -> tuple[object, ...]:
    return (request.method, request.path, *(request.headers.get(name) for name in COMPARED_HEADERS))


def test_the_body_is_compact_utf8_with_required_fields_first() -> None:
    encoded = encode_body(
        {"voice": "female", "language": "en-US", "payload": "Grüße", "command_id": "c"}, ("payload", "voice")
    )
    assert encoded == '{"payload":"Grüße","voice":"female","command_id":"c","language":"en-US"}'.encode()
    assert json.loads(encoded) == {"payload": "Grüße", "voice": "female", "command_id": "c", "language": "en-US"}


@pytest.mark.parametrize("call_control_id", ["", ".", ".."])
def test_an_id_that_is_empty_or_a_dot_segment_is_refused_before_sending(call_control_id: str) -> None:
    with pytest.raises(ValueError, match="call_control_id"):
        action_path(call_control_id, "hangup")


def test_an_id_is_escaped_as_one_path_segment() -> None:
    assert action_path(AWKWARD_ID, "hangup") == "/calls/v3:a%2Fb%20c%3Fd%23e%25f+g=h@%C3%BC~/actions/hangup"


# ---------------------------------------------------------------------------
# The Call Control path never imports the SDK

CALL_CONTROL_MODULES = (
    "voicebus.commands.client",
    "voicebus.commands.http",
    "voicebus.commands.sender",
    "voicebus.commands.requests",
    "voicebus.flows.runner",
)


def test_the_call_control_path_never_imports_the_sdk() -> None:
    script = f"""
import json, sys
for module in {CALL_CONTROL_MODULES!r}:
    __import__(module)
from voicebus.commands.sender import CommandSender
CommandSender.from_environment({{"TELNYX_API_KEY": "KEY_local", "TELNYX_BASE_URL": "http://127.0.0.1:9/v2"}})
print(json.dumps(sorted(name for name in sys.modules if name.split(".")[0] in ("telnyx", "httpx"))))
"""
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={"PYTHONPATH": f"{ROOT / 'layers' / 'voicebus'}", "AWS_DEFAULT_REGION": "us-east-1", "PATH": ""},
    )
    assert json.loads(done.stdout) == []


def test_the_sdk_client_for_the_rare_path_still_imports_it() -> None:
    """The check above could pass by never looking: the same script sees the SDK once the rare path runs."""
    script = """
import sys
from voicebus.archive.recording_links import sdk_client
from voicebus.commands.client import ApiKey
sdk_client(ApiKey("KEY_local", "test"), {"TELNYX_BASE_URL": "http://127.0.0.1:9/v2"})
print("telnyx" in sys.modules)
"""
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={"PYTHONPATH": f"{ROOT / 'layers' / 'voicebus'}", "AWS_DEFAULT_REGION": "us-east-1", "PATH": ""},
    )
    assert done.stdout.strip() == "True"
