"""Commands sent by `CommandSender` over HTTP to the spec-checking Telnyx stand-in: fields, retries, failures.

tests/integration/test_command_wire.py checks that each request is byte for byte what the SDK would send.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Collection, Iterator, Mapping
from typing import Any

import boto3
import httpx
import pytest
import urllib3
from aws_lambda_powertools.utilities import parameters
from telnyx import NotFoundError, Telnyx, UnprocessableEntityError
from urllib3.exceptions import ReadTimeoutError

from voicebus.archive.recording_links import build_client
from voicebus.calls import client_state
from voicebus.commands import ids
from voicebus.commands.http import CallControlClient, HttpMethod, TelnyxConnectionError, TelnyxResponse
from voicebus.commands.sender import (
    CommandRejectedError,
    CommandRetryableError,
    CommandSender,
    TelnyxAuthenticationError,
)
from voicebus.commands.validation import known_actions, parse_command
from voicebus.errors import PermanentError, RetryableError
from voicebus_cli.local.moto_server import MotoServer
from voicebus_cli.local.telnyx_api import Fault, TelnyxApiStandIn

pytestmark = pytest.mark.integration

CALL_ID = "v3:u5OAKGEPT3Dx8SZSSDRWEMdNH2OripQhO_xY-1"
RECORDING_ID = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
CLOSED_PORT_URL = "http://127.0.0.1:9/v2"
HANGUP = parse_command("hangup", {})
ANSWER = parse_command("answer", {})

# Valid params for every action, using most of what a flow would set.
SAMPLE_PARAMS: dict[str, dict[str, Any]] = {
    "answer": {
        "webhook_url": "https://example.test/hooks",
        "record": "record-from-answer",
        "record_format": "wav",
        "record_channels": "single",
        "custom_headers": [{"name": "X-Flow", "value": "main"}],
        "sip_headers": [{"name": "User-to-User", "value": "abc"}],
        "deepfake_detection": {"enabled": True, "timeout": 10},
        "webhook_retries_policies": {"call.answered": {"retries_ms": [1000, 2000]}},
        "stream_codec": "PCMA",
    },
    "hangup": {"custom_headers": [{"name": "X-Reason", "value": "done"}]},
    "reject": {"cause": "USER_BUSY"},
    "bridge": {"call_control_id": "v3:other-leg", "park_after_unbridge": "self", "ringtone": "uk", "mute_dtmf": "both"},
    "transfer": {
        "to": "+15550100",
        "from": "+15550199",
        "timeout_secs": 20,
        "time_limit_secs": 600,
        "answering_machine_detection": "detect",
        "answering_machine_detection_config": {"total_analysis_time_millis": 3000},
        "sip_region": "Europe",
    },
    "refer": {"sip_address": "sip:agent@example.test", "sip_headers": [{"name": "User-to-User", "value": "x"}]},
    "playback_start": {"audio_url": "https://example.test/hello.mp3", "loop": "infinity", "target_legs": "both"},
    "playback_stop": {"stop": "all"},
    "speak": {
        "payload": "Welcome to voicebus",
        "voice": "Telnyx.KokoroTTS.af",
        "language": "en-US",
        "payload_type": "text",
        "voice_settings": {"type": "telnyx", "voice_speed": 1.2},
    },
    "gather": {"minimum_digits": 1, "maximum_digits": 4, "terminating_digit": "#", "gather_id": "pin"},
    "gather_using_speak": {"payload": "Press 1 for sales", "voice": "female", "language": "en-GB", "maximum_tries": 2},
    "gather_using_audio": {"audio_url": "https://example.test/menu.wav", "maximum_digits": 1, "valid_digits": "12"},
    "gather_stop": {},
    "send_dtmf": {"digits": "1www2W#", "duration_millis": 300},
    "record_start": {
        "format": "mp3",
        "channels": "dual",
        "play_beep": True,
        "transcription": True,
        "transcription_engine": "deepgram/nova-3",
        "transcription_language": "en-US",
        "trim": "trim-silence",
        "custom_file_name": "call-1",
    },
    "record_stop": {"recording_id": RECORDING_ID},
    "record_pause": {"recording_id": RECORDING_ID},
    "record_resume": {"recording_id": RECORDING_ID},
    "fork_start": {"rx": "udp:192.0.2.10:9000", "tx": "udp:192.0.2.10:9001", "stream_type": "decrypted"},
    "fork_stop": {"stream_type": "raw"},
    "streaming_start": {
        "stream_url": "wss://example.test/media",
        "stream_track": "both_tracks",
        "stream_codec": "OPUS",
        "stream_bidirectional_mode": "rtp",
        "stream_bidirectional_codec": "L16",
        "stream_bidirectional_sampling_rate": 16000,
        "custom_parameters": [{"name": "flow", "value": "main"}],
    },
    "streaming_stop": {"stream_id": RECORDING_ID},
    "transcription_start": {
        "transcription_engine": "Google",
        "transcription_tracks": "both",
        "transcription_engine_config": {"transcription_engine": "Google", "language": "en", "interim_results": True},
    },
    "transcription_stop": {},
    "siprec_start": {"connector_name": "srs", "sip_transport": "tls", "siprec_track": "both_tracks", "secure": True},
    "siprec_stop": {},
    "suppression_start": {
        "direction": "both",
        "noise_suppression_engine": "DeepFilterNet",
        "noise_suppression_engine_config": {"attenuation_limit": 80},
    },
    "suppression_stop": {},
    "switch_supervisor_role": {"role": "whisper"},
    "client_state_update": {"client_state": {"flow": "main", "step": 4}},
    "enqueue": {"queue_name": "support", "max_wait_time_secs": 600, "keep_after_hangup": True},
    "leave_queue": {},
    "send_sip_info": {"content_type": "application/dtmf-relay", "body": "Signal=5\r\nDuration=160"},
    "ai_assistant_start": {"assistant": {"id": "assistant-1"}, "greeting": "Hello, how can I help?"},
    "ai_assistant_stop": {},
    "ai_assistant_join": {"conversation_id": "conversation-1", "participant": {"id": "v3:other-leg", "role": "user"}},
    "ai_assistant_add_messages": {"messages": [{"role": "user", "content": "The caller asked for billing."}]},
    "gather_using_ai": {
        "parameters": {"type": "object", "properties": {"pin": {"type": "string"}}, "required": ["pin"]},
        "greeting": "Please say your PIN.",
        "user_response_timeout_ms": 8000,
    },
    "conversation_relay_start": {"url": "wss://example.test/relay", "greeting": "Hi there", "language": "en-US"},
    "conversation_relay_stop": {},
}


@pytest.fixture
def api(telnyx_api: TelnyxApiStandIn) -> TelnyxApiStandIn:
    """The session's stand-in (tests/conftest.py), cleared for this test."""
    return telnyx_api


class RecordingClient(CallControlClient):
    """The real client, noting the timeout each attempt was given (None: the client's own)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.timeouts: list[urllib3.Timeout | None] = []

    def send(
        self,
        method: HttpMethod,
        call_control_id: str,
        action: str,
        body: Mapping[str, Any],
        *,
        required: Collection[str] = (),
        timeout: urllib3.Timeout | None = None,
    ) -> TelnyxResponse:
        self.timeouts.append(timeout)
        return super().send(method, call_control_id, action, body, required=required, timeout=timeout)


@pytest.fixture
def client(api: TelnyxApiStandIn) -> RecordingClient:
    return RecordingClient(api.api_key, base_url=api.base_url)


@pytest.fixture
def sender(client: CallControlClient) -> CommandSender:
    return CommandSender(client, base_delay_seconds=0.01, max_delay_seconds=0.05)


@pytest.fixture
def telnyx_client(api: TelnyxApiStandIn) -> Iterator[Telnyx]:
    """The SDK, as `voicebus.archive.recordings` uses it for fresh recording links."""
    sdk = build_client(api.api_key, base_url=api.base_url)
    yield sdk
    sdk.close()


@pytest.fixture
def webhook_id() -> str:
    return str(uuid.uuid4())


def auth(api: TelnyxApiStandIn) -> dict[str, str]:
    return {"Authorization": f"Bearer {api.api_key}"}


# ---------------------------------------------------------------------------
# Every action, as the stand-in receives it


def test_the_samples_cover_every_action() -> None:
    assert set(SAMPLE_PARAMS) == set(known_actions())


@pytest.mark.parametrize("action", sorted(SAMPLE_PARAMS))
def test_every_action_reaches_its_path_with_its_fields_command_id_and_client_state(
    api: TelnyxApiStandIn, sender: CommandSender, webhook_id: str, action: str
) -> None:
    command = parse_command(action, SAMPLE_PARAMS[action])
    state = {"flow": "main", "node": action} if command.takes_client_state else None

    outcome = sender.send(CALL_ID, command, webhook_id=webhook_id, client_state=state)

    assert outcome.accepted, outcome.errors
    assert (outcome.attempts, outcome.result) == (1, "ok")
    (request,) = api.requests()
    assert request.status == 200  # so the body also passed the spec's schema
    assert (request.method, request.path) == (command.http_method, f"/v2/calls/{CALL_ID}/actions/{action}")
    assert (request.action, request.call_control_id) == (action, CALL_ID)
    assert request.headers["authorization"] == f"Bearer {api.api_key}"
    assert request.headers["content-type"] == request.headers["accept"] == "application/json"
    expected = command.body()
    if command.takes_command_id:
        expected["command_id"] = ids.command_id(webhook_id, action)
    if state is not None:
        expected["client_state"] = client_state.encode(state)
    assert request.body == expected
    assert request.command_id == outcome.command_id
    if action == "client_state_update":
        assert request.client_state == {"flow": "main", "step": 4}
    else:
        assert request.client_state == state


def test_client_state_update_is_a_put(api: TelnyxApiStandIn, sender: CommandSender, webhook_id: str) -> None:
    sender.send(CALL_ID, parse_command("client_state_update", {"client_state": ["a", 1]}), webhook_id=webhook_id)
    (request,) = api.requests()
    assert request.method == "PUT"
    assert request.client_state == ["a", 1]


def test_transfer_sends_from_under_its_spec_name(api: TelnyxApiStandIn, sender: CommandSender, webhook_id: str) -> None:
    sender.send(CALL_ID, parse_command("transfer", {"to": "+15550100", "from": "+15550199"}), webhook_id=webhook_id)
    (request,) = api.requests()
    assert request.body["from"] == "+15550199"
    assert "from_" not in request.body


def test_a_redelivered_webhook_sends_the_same_command_id(
    api: TelnyxApiStandIn, sender: CommandSender, webhook_id: str
) -> None:
    speak = parse_command("speak", {"payload": "Hello", "voice": "female"})
    sender.send(CALL_ID, speak, webhook_id=webhook_id)
    sender.send(CALL_ID, speak, webhook_id=webhook_id)
    sender.send(CALL_ID, speak, webhook_id=webhook_id, discriminator="second")
    first, again, second = api.requests()
    assert first.command_id == again.command_id
    assert second.command_id != first.command_id


# ---------------------------------------------------------------------------
# The stand-in holds requests to the spec


def test_the_stand_in_refuses_a_wrong_enum_with_telnyxs_error(api: TelnyxApiStandIn) -> None:
    response = httpx.post(
        f"{api.base_url}/calls/{CALL_ID}/actions/record_start",
        json={"format": "ogg", "channels": "dual"},
        headers=auth(api),
    )
    assert response.status_code == 422
    assert response.json() == {
        "errors": [
            {
                "code": "10032",
                "title": "Invalid enumerated value",
                "detail": "The value must be one of: wav, mp3.",
                "source": {"pointer": "/format"},
            }
        ]
    }


def test_the_stand_in_refuses_missing_fields_and_wrong_types(api: TelnyxApiStandIn) -> None:
    response = httpx.post(
        f"{api.base_url}/calls/{CALL_ID}/actions/speak",
        json={"payload": "Hi", "voice_settings": {"type": "telnyx", "voice_speed": "fast"}},
        headers=auth(api),
    )
    assert response.status_code == 422
    problems = {(error["code"], error["source"]["pointer"]) for error in response.json()["errors"]}
    assert problems == {("10004", "/voice"), ("10015", "/voice_settings/voice_speed")}
    assert api.requests()[0].status == 422


def test_the_stand_in_refuses_what_the_sdk_sends_against_the_spec(telnyx_client: Telnyx) -> None:
    with pytest.raises(UnprocessableEntityError) as caught:
        telnyx_client.calls.actions.start_recording(CALL_ID, format="ogg", channels="dual")  # type: ignore[arg-type]
    assert caught.value.status_code == 422


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("POST", f"/v2/calls/{CALL_ID}/actions/dance", 404),
        ("POST", "/v2/calls/a/b/actions/speak", 404),
        ("POST", f"/v1/calls/{CALL_ID}/actions/speak", 404),
        ("GET", f"/v2/calls/{CALL_ID}/actions/speak", 405),
        ("POST", f"/v2/calls/{CALL_ID}/actions/client_state_update", 405),
    ],
)
def test_the_stand_in_refuses_unknown_paths_and_methods(
    api: TelnyxApiStandIn, method: str, path: str, status: int
) -> None:
    base = api.base_url.removesuffix("/v2")
    response = httpx.request(method, base + path, json={}, headers=auth(api))
    assert response.status_code == status
    assert response.json()["errors"][0]["title"]


def test_the_stand_in_refuses_a_missing_or_wrong_key(api: TelnyxApiStandIn) -> None:
    url = f"{api.base_url}/calls/{CALL_ID}/actions/hangup"
    assert httpx.post(url, json={}).status_code == 401
    assert httpx.post(url, json={}, headers={"Authorization": "Bearer KEY_wrong"}).status_code == 401
    assert httpx.post(url, json={}, headers=auth(api)).status_code == 200


def test_the_stand_in_answers_recordings_the_test_set(api: TelnyxApiStandIn, telnyx_client: Telnyx) -> None:
    api.set_recording(RECORDING_ID, {"mp3": "https://storage.example.test/fresh.mp3"}, channels="dual")
    recording = telnyx_client.recordings.retrieve(RECORDING_ID).data
    assert recording is not None
    assert recording.download_urls is not None
    assert recording.download_urls.mp3 == "https://storage.example.test/fresh.mp3"
    assert recording.channels == "dual"
    with pytest.raises(NotFoundError):
        telnyx_client.recordings.retrieve("4fa85f64-5717-4562-b3fc-2c963f66afa6")


def test_the_stand_in_refuses_a_recording_that_breaks_the_spec(api: TelnyxApiStandIn) -> None:
    with pytest.raises(ValueError, match="RecordingResponse"):
        api.set_recording(RECORDING_ID, {"mp3": "https://x.test/a.mp3"}, channels="triple")


def test_take_requests_reads_and_forgets(api: TelnyxApiStandIn, sender: CommandSender, webhook_id: str) -> None:
    sender.send(CALL_ID, HANGUP, webhook_id=webhook_id)
    assert len(api.take_requests()) == 1
    assert api.requests() == []


# ---------------------------------------------------------------------------
# Retries and failures


def test_429_and_500_are_retried_with_the_same_command_id(
    api: TelnyxApiStandIn, sender: CommandSender, webhook_id: str
) -> None:
    api.fail_next(Fault.rate_limited(), Fault.server_error(500), Fault.server_error(503))
    outcome = sender.send(CALL_ID, parse_command("speak", {"payload": "Hi", "voice": "female"}), webhook_id=webhook_id)
    assert outcome.accepted
    assert outcome.attempts == 4
    requests = api.requests()
    assert [request.status for request in requests] == [429, 500, 503, 200]
    assert {request.command_id for request in requests} == {ids.command_id(webhook_id, "speak")}


def test_a_dropped_connection_is_retried(api: TelnyxApiStandIn, sender: CommandSender, webhook_id: str) -> None:
    api.fail_next(Fault.dropped())
    outcome = sender.send(CALL_ID, HANGUP, webhook_id=webhook_id)
    assert outcome.accepted
    assert [request.status for request in api.requests()] == [None, 200]


def test_retry_after_on_a_429_is_the_least_backoff(
    api: TelnyxApiStandIn, client: CallControlClient, webhook_id: str
) -> None:
    slept: list[float] = []
    sender = CommandSender(client, base_delay_seconds=0.01, max_delay_seconds=0.05, sleep=slept.append)
    api.fail_next(Fault.rate_limited(retry_after_seconds=0.75))
    assert sender.send(CALL_ID, HANGUP, webhook_id=webhook_id).accepted
    assert len(slept) == 1
    assert slept[0] >= 0.75


def test_a_long_retry_after_is_left_to_the_event_source(
    api: TelnyxApiStandIn, client: CallControlClient, webhook_id: str
) -> None:
    slept: list[float] = []
    sender = CommandSender(client, max_retry_after_seconds=5, sleep=slept.append)
    api.fail_next(Fault.rate_limited(retry_after_seconds=60))
    with pytest.raises(CommandRetryableError) as caught:
        sender.send(CALL_ID, HANGUP, webhook_id=webhook_id)
    assert caught.value.status_code == 429
    assert slept == []
    assert len(api.requests()) == 1


def test_a_422_is_reported_as_rejected_and_not_retried(
    api: TelnyxApiStandIn, sender: CommandSender, webhook_id: str
) -> None:
    api.fail_next(Fault.call_ended())
    outcome = sender.send(CALL_ID, HANGUP, webhook_id=webhook_id)
    assert outcome.rejected
    assert outcome.attempts == 1
    assert outcome.errors[0].code == "90018"
    assert outcome.reason == "90018 Call has already ended: This call is no longer active and can't receive commands."
    assert len(api.requests()) == 1


def test_a_wrong_api_key_raises_an_error_naming_where_the_key_comes_from(
    api: TelnyxApiStandIn, webhook_id: str
) -> None:
    sender = CommandSender(CallControlClient("KEY_revoked", base_url=api.base_url))
    with pytest.raises(TelnyxAuthenticationError) as caught:
        sender.send(CALL_ID, HANGUP, webhook_id=webhook_id)
    assert isinstance(caught.value, PermanentError)
    message = str(caught.value)
    assert "TELNYX_API_KEY" in message
    assert "TELNYX_API_KEY_SECRET_ARN" in message
    assert "KEY_revoked" not in message
    assert [request.status for request in api.requests()] == [401]


def test_another_4xx_raises_rejected_without_retrying(
    api: TelnyxApiStandIn, sender: CommandSender, webhook_id: str
) -> None:
    api.fail_next(Fault(403, {"errors": [{"code": "403", "title": "Forbidden", "detail": "Not on this account."}]}))
    with pytest.raises(CommandRejectedError) as caught:
        sender.send(CALL_ID, HANGUP, webhook_id=webhook_id)
    assert caught.value.status_code == 403
    assert isinstance(caught.value, PermanentError)
    assert caught.value.errors[0].detail == "Not on this account."
    assert caught.value.command_id == ids.command_id(webhook_id, "hangup")
    assert len(api.requests()) == 1


def test_retries_end_with_a_retryable_error_after_max_attempts(
    api: TelnyxApiStandIn, client: CallControlClient, webhook_id: str
) -> None:
    sender = CommandSender(client, max_attempts=3, base_delay_seconds=0.01, max_delay_seconds=0.02)
    api.fail_next(*[Fault.server_error(503)] * 5)
    with pytest.raises(CommandRetryableError) as caught:
        sender.send(CALL_ID, HANGUP, webhook_id=webhook_id)
    assert (caught.value.attempts, caught.value.status_code) == (3, 503)
    assert isinstance(caught.value, RetryableError)
    assert "HTTP 503" in str(caught.value)
    assert len(api.requests()) == 3
    assert api.pending_faults() == 2


def test_retries_stop_when_the_invocation_runs_short_of_time(
    api: TelnyxApiStandIn, sender: CommandSender, webhook_id: str
) -> None:
    api.fail_next(Fault.server_error(500), Fault.server_error(500), Fault.server_error(500))

    def remaining_ms() -> int:
        """Plenty of time for two attempts, then less than the safety margin and one attempt."""
        return 30_000 if len(api.requests()) < 2 else 1_900

    with pytest.raises(CommandRetryableError) as caught:
        sender.send(CALL_ID, HANGUP, webhook_id=webhook_id, remaining_ms=remaining_ms)
    assert caught.value.attempts == 2
    assert len(api.requests()) == 2
    assert api.pending_faults() == 1


def test_no_retry_at_all_when_the_invocation_is_nearly_over(
    api: TelnyxApiStandIn, sender: CommandSender, webhook_id: str
) -> None:
    api.fail_next(Fault.rate_limited())
    with pytest.raises(CommandRetryableError):
        sender.send(CALL_ID, HANGUP, webhook_id=webhook_id, remaining_ms=lambda: 1_000)
    assert len(api.requests()) == 1


def test_each_attempt_times_out_before_the_invocation_does(
    client: RecordingClient, sender: CommandSender, webhook_id: str
) -> None:
    sender.send(CALL_ID, HANGUP, webhook_id=webhook_id)
    sender.send(CALL_ID, HANGUP, webhook_id=webhook_id, remaining_ms=lambda: 30_000)
    sender.send(CALL_ID, HANGUP, webhook_id=webhook_id, remaining_ms=lambda: 3_000)
    sender.send(CALL_ID, HANGUP, webhook_id=webhook_id, remaining_ms=lambda: 1_000)
    unbounded, plenty, short, nearly_over = client.timeouts
    assert unbounded is None and plenty is None  # the client's own: 2 s to connect, 5 s to read
    assert (client.connect_timeout, client.read_timeout) == (2.0, 5.0)
    assert short is not None and nearly_over is not None
    # 3 s left, less the 1.5 s safety margin, for connecting and reading together.
    assert (short.connect_timeout, short.read_timeout, short.total) == (1.5, 1.5, 1.5)
    # Less than the margin left: one short attempt (min_attempt_ms) rather than none.
    assert (nearly_over.connect_timeout, nearly_over.total) == (0.5, 0.5)


@pytest.fixture
def silent_base_url() -> Iterator[str]:
    """A port that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/v2"


def test_a_request_that_times_out_is_retried_then_retryable(silent_base_url: str, webhook_id: str) -> None:
    client = CallControlClient("KEY_local", base_url=silent_base_url, connect_timeout=0.2, read_timeout=0.2)
    sender = CommandSender(client, max_attempts=2, base_delay_seconds=0.01)
    with pytest.raises(CommandRetryableError) as caught:
        sender.send(CALL_ID, HANGUP, webhook_id=webhook_id)
    assert (caught.value.attempts, caught.value.status_code) == (2, None)
    assert isinstance(caught.value.__cause__, TelnyxConnectionError)
    assert isinstance(caught.value.__cause__.__cause__, ReadTimeoutError)


def test_an_unreachable_api_is_retried_then_retryable(webhook_id: str) -> None:
    client = CallControlClient("KEY_local", base_url=CLOSED_PORT_URL)
    sender = CommandSender(client, max_attempts=2, base_delay_seconds=0.01)
    with pytest.raises(CommandRetryableError) as caught:
        sender.send(CALL_ID, HANGUP, webhook_id=webhook_id)
    assert (caught.value.attempts, caught.value.status_code) == (2, None)
    assert isinstance(caught.value.__cause__, TelnyxConnectionError)


# ---------------------------------------------------------------------------
# The API key from Secrets Manager


@pytest.fixture
def secret_key_environment(
    moto_server: MotoServer, api: TelnyxApiStandIn, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, Any]]:
    """TELNYX_API_KEY unset, the ARN of a fresh secret in its place; yields (arn, the secrets client)."""
    secrets = boto3.client("secretsmanager")
    arn = secrets.create_secret(Name=f"voicebus-telnyx-{uuid.uuid4().hex[:10]}", SecretString=api.api_key)["ARN"]
    monkeypatch.delenv("TELNYX_API_KEY", raising=False)
    monkeypatch.setenv("TELNYX_API_KEY_SECRET_ARN", arn)
    monkeypatch.setenv("TELNYX_BASE_URL", api.base_url)
    parameters.clear_caches()  # type: ignore[no-untyped-call]  # a fresh provider, whose boto3 client sees moto's endpoint
    yield arn, secrets
    parameters.clear_caches()  # type: ignore[no-untyped-call]


def test_the_api_key_comes_from_secrets_manager(
    api: TelnyxApiStandIn, secret_key_environment: tuple[str, Any], webhook_id: str
) -> None:
    sender = CommandSender.from_environment()
    outcome = sender.send(CALL_ID, ANSWER, webhook_id=webhook_id)
    assert outcome.accepted
    (request,) = api.requests()
    assert request.headers["authorization"] == f"Bearer {api.api_key}"


def test_a_wrong_key_in_the_secret_is_reported_with_the_secret_arn(
    api: TelnyxApiStandIn, secret_key_environment: tuple[str, Any], webhook_id: str
) -> None:
    arn, secrets = secret_key_environment
    secrets.put_secret_value(SecretId=arn, SecretString="KEY_stale")
    sender = CommandSender.from_environment()
    with pytest.raises(TelnyxAuthenticationError, match="TELNYX_API_KEY_SECRET_ARN") as caught:
        sender.send(CALL_ID, ANSWER, webhook_id=webhook_id)
    assert arn in str(caught.value)
