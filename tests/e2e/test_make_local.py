"""`python -m voicebus_cli local` as a developer runs it: ready, Ctrl-C, your own Telnyx keys."""

from __future__ import annotations

import base64
import json
import os
import queue
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from tests.support.calls import CallScript
from voicebus.ingress.signature import sign
from voicebus_cli.demo import post
from voicebus_cli.local.moto_server import free_port
from voicebus_cli.local.telnyx_api import TelnyxApiStandIn
from voicebus_cli.testkey import ROOT, TestKeyPair
from voicebus_cli.webhooks import compact

pytestmark = pytest.mark.integration

READY = "what happens:"


class LocalRun:
    """`voicebus local` in its own process group, as a terminal runs it; its output read as it comes."""

    def __init__(self, state_file: Path, env: dict[str, str]) -> None:
        environ = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "TELNYX_"))}
        environ.update({"VOICEBUS_LOCAL_STATE_FILE": str(state_file), "PYTHONUNBUFFERED": "1", **env})
        self.state_file = state_file
        self.process = subprocess.Popen(
            [sys.executable, "-m", "voicebus_cli", "local"],
            cwd=ROOT,
            env=environ,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group: Ctrl-C goes to the whole group
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, text: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
            if text in line:
                return
        raise AssertionError(f"{text!r} never printed; output so far:\n" + "\n".join(self.lines))

    def state(self) -> dict[str, object]:
        result = json.loads(self.state_file.read_text())
        assert isinstance(result, dict)
        return result

    def ctrl_c(self, timeout: float = 60) -> tuple[int, list[str]]:
        """SIGINT to the process group, as the terminal sends it; the exit code and what was printed after."""
        before = len(self.lines)
        os.killpg(self.process.pid, signal.SIGINT)
        code = self.process.wait(timeout=timeout)
        while (line := self._queue.get(timeout=10)) is not None:
            self.lines.append(line)
        return code, self.lines[before:]

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


@pytest.fixture
def state_file(tmp_path: Path) -> Path:
    return tmp_path / "state" / "local.json"


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/moto-api/", timeout=2):
            return True
    except OSError:
        return False


def test_ctrl_c_stops_everything_with_one_line(state_file: Path) -> None:
    run = LocalRun(state_file, {})
    try:
        run.wait_for(READY)
        endpoint = str(run.state()["EndpointUrl"])
        assert _answers(endpoint)
        code, after = run.ctrl_c()
    finally:
        run.kill()
    output = "\n".join(run.lines)
    assert code == 0, output
    assert "Traceback" not in output
    assert [line for line in after if line.strip()] == ["stopping the local stack ... stopped"]
    assert not _answers(endpoint)  # moto, the child, is stopped too
    assert not state_file.exists()


@pytest.fixture
def real_api() -> Iterator[TelnyxApiStandIn]:
    """Plays the real Telnyx API: a key of its own, which only the environment tells the stack."""
    with TelnyxApiStandIn(api_key=f"KEY{secrets.token_hex(16)}") as api:
        yield api


def test_a_real_telnyx_account_on_day_one(state_file: Path, real_api: TelnyxApiStandIn, test_key: TestKeyPair) -> None:
    account_key = SigningKey.generate()
    public_key = base64.b64encode(bytes(account_key.verify_key)).decode("ascii")
    run = LocalRun(
        state_file,
        {
            "TELNYX_PUBLIC_KEY": public_key,
            "TELNYX_API_KEY": real_api.api_key,
            "TELNYX_BASE_URL": real_api.base_url,
            "VOICEBUS_PUBLIC_URL": "https://my-tunnel.example.test",
            "VOICEBUS_PORT": str(free_port()),
        },
    )
    try:
        run.wait_for(READY)
        state = run.state()
        webhook_url = str(state["WebhookUrl"])
        assert state["PublicWebhookUrl"] == "https://my-tunnel.example.test/webhooks/telnyx"
        assert any("https://my-tunnel.example.test/webhooks/telnyx" in line for line in run.lines)

        script = CallScript()
        ours = compact(script.event("call.initiated", state="parked", direction="incoming", to="+15550002222"))
        assert post(webhook_url, ours, sign(ours, account_key, int(time.time())))[0] == 200
        forged = compact(script.event("call.hangup", hangup_cause="normal_clearing"))
        assert post(webhook_url, forged, sign(forged, test_key.signing_key, int(time.time())))[0] == 401
        run.wait_for("command sent    answer")
        sent = [r for r in real_api.requests() if r.call_control_id == script.call_control_id]
        assert [(r.action, r.status) for r in sent] == [("answer", 200)]
        code, _ = run.ctrl_c()
    finally:
        run.kill()
    assert code == 0
    output = "\n".join(run.lines)
    assert real_api.api_key not in output
    for folder in (state_file.parent, ROOT / ".voicebus"):
        written = [path for path in folder.rglob("*") if path.is_file()]
        assert all(real_api.api_key.encode() not in path.read_bytes() for path in written), written
    assert (state_file.parent / "local-functions.log").exists()  # the logs were written, without the key
