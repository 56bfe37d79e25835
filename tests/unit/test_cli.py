"""The `voicebus` CLI as a user meets it: help, version, exit codes, one-line errors, safe shell output."""

from __future__ import annotations

import argparse
import hashlib
import http.server
import json
import shlex
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from voicebus.calls.commands_log import REDACTED, redact
from voicebus.ingress.signature import WebhookVerifier, decode_public_key
from voicebus_cli.__main__ import build_parser, main
from voicebus_cli.operations import Target
from voicebus_cli.redrive import DeadLetter, Redriver
from voicebus_cli.testkey import ROOT, TestKeyPair, load_test_key
from voicebus_cli.webhooks import raw_body, webhook_event_files

VOICEBUS = Path(sys.executable).with_name("voicebus")
COMMANDS = ["sign", "resign-events", "derive-bus-events", "redrive", "replay", "call", "check-flows"]
COMMANDS += ["command-schemas", "local", "demo", "test-flows", "play"]


@pytest.fixture
def body_file(tmp_path: Path) -> Path:
    path = tmp_path / "it's a body; rm -rf x.json"
    path.write_text(json.dumps({"data": {"id": "1", "event_type": "call.hangup"}}))
    return path


def test_version_and_help_on_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == "voicebus 0.1.0"
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert sorted(commands.choices) == sorted(COMMANDS)
    for command in COMMANDS:
        assert main([command, "--help"]) == 0
        assert f"usage: voicebus {command}" in capsys.readouterr().out


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert main(["no-such-command"]) == 2
    assert main(["replay", "--local"]) == 2  # --since and --until are required
    capsys.readouterr()
    assert main(["replay", "--since", "2026-01-02", "--until", "2026-01-01"]) == 2
    assert capsys.readouterr().err == "voicebus replay: --since must be earlier than --until\n"
    assert main(["redrive"]) == 2
    assert "redrive needs the dead-letter queues" in capsys.readouterr().err


def test_the_installed_script_answers(tmp_path: Path) -> None:
    assert VOICEBUS.exists(), "uv sync installs [project.scripts] voicebus into the venv"
    done = subprocess.run([str(VOICEBUS), "--version"], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert (done.returncode, done.stdout.strip()) == (0, "voicebus 0.1.0")


def test_sign_prints_a_curl_command_the_shell_cannot_misread(
    body_file: Path, capsys: pytest.CaptureFixture[str], test_key: TestKeyPair
) -> None:
    url = "http://127.0.0.1:1/webhooks/telnyx?a=1&b='2' $(touch pwned)"
    assert main(["sign", str(body_file), "--url", url]) == 0
    words = shlex.split(capsys.readouterr().out)
    assert words[:6] == ["curl", "-sS", "--fail-with-body", "-X", "POST", url]
    assert words[-2:] == ["--data-binary", f"@{body_file}"]
    headers = dict(words[i + 1].split(": ", 1) for i, word in enumerate(words) if word == "-H")
    verifier = WebhookVerifier(decode_public_key(test_key.public_key_b64))
    verifier.verify(body_file.read_bytes(), headers)  # raises unless the printed signature is right


class Recorder(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[bytes, dict[str, str]]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        Recorder.received.append((body, dict(self.headers.items())))
        status = 200 if json.loads(body)["data"]["id"] == "1" else 401
        answer = b'{"status":"accepted"}' if status == 200 else b'{"error":"bad_signature"}'
        self.send_response(status)
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def endpoint() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/webhooks/telnyx"
    server.shutdown()
    server.server_close()


def test_sign_send_posts_the_signed_body_and_prints_the_answer(
    body_file: Path, endpoint: str, capsys: pytest.CaptureFixture[str], test_key: TestKeyPair
) -> None:
    Recorder.received.clear()
    assert main(["sign", str(body_file), "--url", endpoint, "--send"]) == 0
    assert capsys.readouterr().out == 'HTTP 200\n{"status":"accepted"}\n'
    [(body, headers)] = Recorder.received
    assert body == body_file.read_bytes()
    WebhookVerifier(decode_public_key(test_key.public_key_b64)).verify(body, headers)

    body_file.write_text(json.dumps({"data": {"id": "2"}}))
    assert main(["sign", str(body_file), "--url", endpoint, "--send"]) == 1  # the server said no
    assert capsys.readouterr().out.startswith("HTTP 401\n")
    assert main(["sign", str(body_file), "--send"]) == 2


def test_file_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sign", str(tmp_path / "missing.json")]) == 1
    assert capsys.readouterr().err == f"voicebus sign: no such file: {tmp_path / 'missing.json'}\n"
    (tmp_path / "bad.json").write_text("{not json")
    assert main(["sign", str(tmp_path / "bad.json")]) == 1
    assert (
        capsys.readouterr().err
        == "voicebus sign: not JSON: Expecting property name enclosed in double quotes at line 1 column 2\n"
    )
    assert main(["sign", str(tmp_path / "missing.json"), "--url", "http://127.0.0.1:9", "--send"]) == 1


def test_aws_without_region_or_credentials_is_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setattr("boto3.DEFAULT_SESSION", None)
    assert main(["call", "v3:x", "--table", "t"]) == 1
    assert capsys.readouterr().err.startswith("voicebus call: no AWS region: pass --region")
    assert main(["--profile", "no-such-profile", "call", "v3:x", "--table", "t"]) == 2
    assert "no-such-profile" in capsys.readouterr().err
    monkeypatch.setattr("boto3.DEFAULT_SESSION", None)
    assert main(["call", "v3:x", "--table", "t", "--region", "eu-west-1"]) == 1
    assert capsys.readouterr().err.startswith("voicebus call: no AWS credentials")
    monkeypatch.setattr("boto3.DEFAULT_SESSION", None)


def test_resign_writes_signed_copies_and_leaves_the_samples_alone(tmp_path: Path) -> None:
    samples = webhook_event_files()
    before = {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in samples}
    out = tmp_path / "resigned"
    assert main(["resign-events", "--out", str(out)]) == 0
    assert {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in samples} == before
    tracked = subprocess.run(["git", "diff", "--quiet", "--", *map(str, samples)], cwd=ROOT, check=False)
    assert tracked.returncode in (0, 128)  # 128: not a git checkout (an unpacked release)
    verifier = WebhookVerifier(decode_public_key(load_test_key().public_key_b64))
    assert sorted(path.name for path in out.glob("*.json")) == sorted(before)
    for path in out.glob("*.json"):
        event = json.loads(path.read_text())
        verifier.verify(raw_body(event), event["headers"])  # fresh: within the 300 s window now


def test_secrets_are_redacted_at_any_depth() -> None:
    params = {"to": "+1", "sip_auth_password": "p", "x": [{"stream_auth_token": "t"}], "api_key_ref": "name"}
    assert redact(params) == {
        "to": "+1",
        "sip_auth_password": REDACTED,
        "x": [{"stream_auth_token": REDACTED}],
        "api_key_ref": REDACTED,
    }


class FakeLambda:
    def __init__(self) -> None:
        self.invocations: list[dict[str, Any]] = []

    def invoke(self, **request: Any) -> dict[str, Any]:
        self.invocations.append(request)
        return {"StatusCode": 202}


def test_against_aws_a_dead_letter_is_invoked_on_its_own_function_asynchronously() -> None:
    event = {"source": "telnyx", "detail-type": "call.hangup", "detail": {"data": {"id": "w-1"}}}
    arn = "arn:aws:lambda:eu-west-1:111122223333:function:voicebus-CallControlFunction-AbC:$LATEST"
    letter = DeadLetter("q", "m-1", "r-1", event, target_arn=arn)
    fake = FakeLambda()
    assert Redriver(Target(), lambda_client=fake)(letter) == "function voicebus-CallControlFunction-AbC"
    [call] = fake.invocations
    assert (call["FunctionName"], call["InvocationType"], json.loads(call["Payload"])) == (arn, "Event", event)
