"""`voicebus play SCENARIO --local`: a shipped scenario played through a running `voicebus local`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.test_make_local import READY, LocalRun
from voicebus_cli.scenarios import SCENARIOS_DIR
from voicebus_cli.testkey import ROOT

pytestmark = pytest.mark.integration


def play(scenario: Path, state_file: Path) -> subprocess.CompletedProcess[str]:
    environ = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "TELNYX_"))}
    return subprocess.run(
        [sys.executable, "-m", "voicebus_cli", "play", str(scenario), "--local"],
        cwd=ROOT,
        env={**environ, "VOICEBUS_LOCAL_STATE_FILE": str(state_file)},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_a_scenario_plays_through_the_local_stack(tmp_path: Path) -> None:
    state_file = tmp_path / "state" / "local.json"
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(
        "description: expects another sales number\n"
        "events:\n"
        "  - {send: call.initiated, expect: [answer]}\n"
        "  - {send: call.answered, expect: [gather_using_speak]}\n"
        "  - send: call.gather.ended\n"
        "    payload: {digits: '1', status: valid}\n"
        "    expect: [{action: transfer, params: {to: '+15559999999'}}]\n"
    )
    run = LocalRun(state_file, {})
    try:
        run.wait_for(READY)
        # The transfer fails (its far leg hangs up): leg b's webhooks carry the transfer's
        # target_leg_client_state, which play echoes as Telnyx does; the caller hears an apology.
        done = play(SCENARIOS_DIR / "main_sales_failed.yaml", state_file)
        refused = play(wrong, state_file)
        run.ctrl_c()
    finally:
        run.kill()
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "  5 call.hangup on leg b -> 200" in out
    assert "Telnyx received transfer" in out
    assert "Telnyx received speak" in out  # the transfer's on_failure: sorry, then the hang-up
    assert "Telnyx received hangup {}" in out
    assert out.count("Telnyx received") == 5  # answer, menu, transfer, apology, hang-up: the duplicate sent nothing
    assert "play: 7 webhooks, 5 commands, as expected" in out

    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "MISMATCH (- expected, + received)" in refused.stdout
    assert '-transfer {"to":"+15559999999"}' in refused.stdout
    assert '+transfer {"to":"+15550100100"}' in refused.stdout


def test_scenarios_with_step_time_limits_play_through_the_local_stack(tmp_path: Path) -> None:
    state_file = tmp_path / "state" / "local.json"
    run = LocalRun(state_file, {})
    try:
        run.wait_for(READY)
        # No waiting out the limits: play fires each call's pending schedule in the stack's moto now.
        sales = play(SCENARIOS_DIR / "main_sales_timeout.yaml", state_file)
        answer = play(SCENARIOS_DIR / "main_answer_timeout.yaml", state_file)
        run.ctrl_c()
    finally:
        run.kill()
    assert sales.returncode == 0, sales.stdout + sales.stderr
    out = sales.stdout
    assert "  4 the step's time limit (its scheduled check fires) -> fired" in out
    assert "  5 the step's time limit (its scheduled check fires) -> fired" in out
    assert "Telnyx received speak" in out  # sales unavailable, then the apology
    assert "play: 6 webhooks, 6 commands, as expected" in out

    assert answer.returncode == 0, answer.stdout + answer.stderr
    assert "Telnyx received hangup {}" in answer.stdout
    assert "play: 3 webhooks, 2 commands, as expected" in answer.stdout
