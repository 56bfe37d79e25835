"""`make demo` stays true: the demo runs in a fresh process and passes its own checks, the failed transfer too."""

from __future__ import annotations

import subprocess
import sys

import pytest

from voicebus_cli.testkey import ROOT

pytestmark = pytest.mark.integration


def test_the_demo_plays_its_call_and_passes() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "voicebus_cli", "demo"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    for check in (
        "Telnyx received exactly answer, menu, prompt, record",
        "the recording is in S3, byte for byte",
        "a transfer whose far leg hung up got an apology, then a hang-up",
    ):
        assert f"ok   {check}" in out
    # The failure is the shipped scenario, played through the stack: the far leg's hang-up, then the apology.
    assert "call.hangup on leg b -> 200" in out
    assert "Telnyx received speak" in out and "Telnyx received hangup {}" in out
    assert "a duplicate, answered by idempotency" in out
    assert "demo passed" in out
