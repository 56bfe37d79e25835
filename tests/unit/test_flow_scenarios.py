"""Flow scenarios: the shipped ones pass and cover every branch; a mismatch is a diff; Telnyx's client_state echo."""

from __future__ import annotations

import io
import shutil
import textwrap
from pathlib import Path

import pytest

from voicebus.calls.client_state import decode, encode
from voicebus_cli.__main__ import main
from voicebus_cli.flows import FLOWS_DIR
from voicebus_cli.scenario_call import ScenarioCall
from voicebus_cli.scenarios import (
    SCENARIOS_DIR,
    Scenario,
    ScenarioError,
    ScenarioEvent,
    SentCommand,
    load_scenario,
)
from voicebus_cli.scenarios_cli import run_test_flows


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def test_the_shipped_scenarios_pass_and_cover_every_branch_of_the_shipped_flows() -> None:
    out = io.StringIO()
    status = run_test_flows(out=out)
    report = out.getvalue()
    assert status == 0, report
    assert "FAIL" not in report
    assert "not covered" not in report
    covered = next(line for line in report.splitlines() if line.startswith("branches: "))
    first, _, rest = covered.removeprefix("branches: ").partition(" of ")
    assert first == rest.split()[0]
    assert len(list(SCENARIOS_DIR.glob("*.yaml"))) >= 6


def test_voicebus_test_flows_runs_them_from_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["test-flows"]) == 0
    assert "scenarios, 0 failed" in capsys.readouterr().out


SALES_WRONG_NUMBER = """
    description: expects the wrong sales number
    events:
      - send: call.initiated
        expect: [answer]
      - send: call.answered
        expect: [gather_using_speak]
      - send: call.gather.ended
        payload: {digits: "1", status: valid}
        expect:
          - {action: transfer, params: {to: "+15559999999"}}
      - send: call.hangup
        expect: [hangup]
"""


def test_a_mismatch_prints_a_diff_and_fails(tmp_path: Path) -> None:
    scenario = _write(tmp_path / "wrong.yaml", SALES_WRONG_NUMBER)
    out = io.StringIO()
    assert run_test_flows(scenario, out=out) == 1
    report = out.getvalue()
    assert "FAIL" in report
    assert "event 3 (call.gather.ended): the flow advanced: pressed 1" in report
    assert '-transfer {"to":"+15559999999"}' in report
    assert '+transfer {"to":"+15550100100"}' in report
    assert "event 4 (call.hangup): the flow ended" in report
    assert "-hangup" in report


def test_a_branch_no_scenario_takes_fails_the_run(tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    shutil.copytree(FLOWS_DIR, flows, ignore=shutil.ignore_patterns("scenarios"))
    only = _write(
        tmp_path / "scenarios" / "sales.yaml",
        """
        description: only the sales key
        events:
          - send: call.initiated
            expect: [answer]
          - send: call.answered
            expect: [gather_using_speak]
          - send: call.gather.ended
            payload: {digits: "1", status: valid}
            expect: [transfer]
        """,
    )
    out = io.StringIO()
    assert run_test_flows(only.parent, flows_dir=flows, require_coverage=True, out=out) == 1
    report = out.getvalue()
    assert "ok   " in report  # the scenario itself passes
    assert "not covered: main/menu branches.2 -> voicemail_prompt" in report
    assert "not covered: main/menu on_exhausted -> goodbye" in report
    assert "not covered: main/menu retry -> menu" in report
    assert "not covered: main/menu branches.1 -> sales" not in report
    # The same scenario alone, without the coverage requirement, passes.
    assert run_test_flows(only, flows_dir=flows, out=io.StringIO()) == 0


def test_a_broken_scenario_names_the_file_and_the_event(tmp_path: Path) -> None:
    broken = _write(
        tmp_path / "broken.yaml",
        """
        description: refers to a webhook that does not exist
        events:
          - send: call.initiated
          - again: answered
        """,
    )
    with pytest.raises(ScenarioError, match=r"broken.yaml: .*`again: answered` names no earlier event"):
        load_scenario(broken)


def _call() -> ScenarioCall:
    scenario = Scenario.model_validate({"description": "echo", "events": [{"send": "call.initiated"}]})
    return ScenarioCall(scenario, "echo-test")


def _event(call: ScenarioCall, **fields: object) -> str | None:
    payload = call.webhook(ScenarioEvent.model_validate(fields))["data"]["payload"]
    state = payload.get("client_state")
    assert state is None or isinstance(state, str)
    return state


def test_each_webhook_echoes_the_client_state_of_the_command_that_caused_it() -> None:
    call = _call()
    assert _event(call, send="call.initiated") is None  # nothing sent yet: no client_state
    answer, menu, menu2, transfer = (encode({"n": n}) for n in range(4))
    call.record([SentCommand("a", "answer", {"client_state": answer}, "answer")])
    call.record([SentCommand("a", "gather_using_speak", {"client_state": menu}, "menu")])
    # call.answered answers `answer`, although the menu was sent since; a gather result answers the gather.
    assert _event(call, send="call.answered") == answer
    assert _event(call, send="call.gather.ended") == menu
    call.record([SentCommand("a", "gather_using_speak", {"client_state": menu2}, "menu")])
    assert _event(call, send="call.gather.ended") == menu2
    assert _event(call, send="call.gather.ended", client_state_of="menu@1") == menu  # a late one
    # Webhooks no command causes carry the call's latest.
    assert _event(call, send="call.dtmf.received") == menu2
    call.record([SentCommand("a", "transfer", {"client_state": transfer}, "sales")])
    assert _event(call, send="call.hangup") == transfer
    # The far leg of a transfer carries the transfer's client_state, or its target_leg_client_state when set.
    assert _event(call, send="call.hangup", leg="b") == transfer
    far = encode({"far": True})
    call.record([SentCommand("a", "transfer", {"client_state": transfer, "target_leg_client_state": far}, "sales")])
    assert _event(call, send="call.hangup", leg="b") == far
    assert _event(call, send="call.hangup") == transfer
    # Your own, as is (a string) or JSON-encoded; or none at all.
    assert _event(call, send="call.dtmf.received", client_state="opaque==") == "opaque=="
    assert decode(_event(call, send="call.dtmf.received", client_state={"crm": 7}) or "").value == {"crm": 7}
    assert _event(call, send="call.dtmf.received", client_state=None) is None


def test_again_delivers_the_very_same_webhook() -> None:
    call = _call()
    first = call.webhook(ScenarioEvent.model_validate({"send": "call.answered", "name": "answered"}))
    ended = call.webhook(ScenarioEvent.model_validate({"send": "call.speak.ended"}))
    assert call.webhook(ScenarioEvent.model_validate({"again": "answered"})) is first
    assert call.webhook(ScenarioEvent.model_validate({"again": True})) is first
    late = call.webhook(ScenarioEvent.model_validate({"send": "call.speak.started", "late": True}))
    assert late["data"]["occurred_at"] < ended["data"]["occurred_at"]
    assert late["data"]["id"] not in {first["data"]["id"], ended["data"]["id"]}


INVOKE_FLOW = """
    name: main
    entry: answer
    steps:
      answer: {type: answer, next: lookup}
      lookup:
        type: invoke
        function: crm-lookup
        sets: [name]
        branch_on: tier
        branches: {gold: vip}
        next: greet
        on_error: sorry
      greet:
        type: speak
        params: {payload: "Hello ${vars.name}.", voice: AWS.Polly.Joanna-Neural, language: en-US}
        next: bye
      vip:
        type: speak
        params: {payload: "Welcome back, ${vars.name}.", voice: AWS.Polly.Joanna-Neural, language: en-US}
        next: bye
      sorry:
        type: speak
        params: {payload: Sorry., voice: AWS.Polly.Joanna-Neural, language: en-US}
        next: bye
      bye: {type: hangup}
"""


def _invoke_scenario(answer: str, expected: str) -> str:
    return f"""
        description: "the function answers {answer}"
        functions:
          crm-lookup: {answer}
        events:
          - send: call.initiated
            expect: [answer]
          - send: call.answered
            expect: [{expected}]
          - send: call.speak.ended
            payload: {{status: completed}}
            expect: [hangup]
        """


def test_invoke_steps_get_the_scenarios_function_answers_and_every_branch_is_counted(tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    _write(flows / "main.yaml", INVOKE_FLOW)
    scenarios = tmp_path / "scenarios"
    _write(
        scenarios / "silver.yaml",
        _invoke_scenario(
            "{result: {name: Ada, tier: silver}}",
            '{action: speak, step: greet, params: {payload: "Hello Ada."}}',
        ),
    )
    _write(
        scenarios / "gold.yaml",
        _invoke_scenario(
            "{result: {name: Ada, tier: gold}}",
            '{action: speak, step: vip, params: {payload: "Welcome back, Ada."}}',
        ),
    )
    out = io.StringIO()
    assert run_test_flows(scenarios, flows_dir=flows, require_coverage=True, out=out) == 1
    report = out.getvalue()
    assert "2 scenarios, 0 failed" in report
    assert "not covered: main/answer next -> lookup" not in report
    assert "not covered: main/lookup next -> greet" not in report
    assert "not covered: main/lookup branches.gold -> vip" not in report
    assert "not covered: main/lookup on_error -> sorry" in report  # nobody tried a failing function
    _write(scenarios / "down.yaml", _invoke_scenario("{error: timed out}", "{action: speak, step: sorry}"))
    out = io.StringIO()
    run_test_flows(scenarios, flows_dir=flows, require_coverage=True, out=out)
    assert "3 scenarios, 0 failed" in out.getvalue()
    assert "main/lookup on_error -> sorry" not in out.getvalue()


def test_play_says_what_it_cannot_play(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VOICEBUS_LOCAL_STATE_FILE", str(tmp_path / "local.json"))
    assert main(["play", str(SCENARIOS_DIR / "main_sales.yaml"), "--local"]) == 1
    assert "no local stack is running" in capsys.readouterr().err
    assert main(["play", str(SCENARIOS_DIR / "main_answer_timeout.yaml"), "--local"]) == 1  # time limits play too
    assert "no local stack is running" in capsys.readouterr().err
    assert main(["play", str(SCENARIOS_DIR / "main_sales.yaml")]) == 2  # --local is the only target, and required
