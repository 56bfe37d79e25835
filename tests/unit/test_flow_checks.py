"""`voicebus check-flows` refuses what a live call would be refused for, each shown with a small bad flow."""

from __future__ import annotations

import io
import textwrap
from pathlib import Path

import pytest

from voicebus.flows.checks import check_flow, reachable_steps
from voicebus.flows.loader import load_flows
from voicebus_cli.flows import FLOWS_DIR, check_flows, example_environment

ENV = example_environment()
SAY = "voice: AWS.Polly.Joanna-Neural, language: en-US"


def run_check(tmp_path: Path, steps: str, *, entry: str = "answer") -> tuple[int, str]:
    """check-flows on a directory holding one `main` flow with these steps; (exit status, stderr)."""
    body = textwrap.indent(textwrap.dedent(steps).strip("\n"), "  ")
    (tmp_path / "main.yaml").write_text(f"name: main\nentry: {entry}\nsteps:\n{body}\n")
    out, err = io.StringIO(), io.StringIO()
    status = check_flows(tmp_path, ENV, out=out, err=err)
    return status, err.getvalue()


def test_the_shipped_flows_pass_every_check() -> None:
    catalog = load_flows(FLOWS_DIR, ENV)
    for flow in catalog:
        assert check_flow(flow) == [], flow.name
        assert reachable_steps(flow) == set(flow.steps)


def test_an_unreachable_step_is_refused(tmp_path: Path) -> None:
    status, err = run_check(
        tmp_path,
        f"""
        answer: {{type: answer, next: bye}}
        forgotten: {{type: speak, params: {{payload: Nobody hears this., {SAY}}}, next: bye}}
        bye: {{type: hangup}}
        """,
    )
    assert status == 1
    assert "step 'forgotten': unreachable: no step leads here from the entry 'answer'" in err


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        ("answer: {type: answer, next: menu_typo}\nbye: {type: hangup}", "step 'answer': next: no step named"),
        (
            f"answer: {{type: answer, next: menu}}\n"
            f"menu: {{type: menu, params: {{payload: Press 1., {SAY}}}, branches: {{'1': nowhere}},"
            " on_exhausted: bye}\n"
            "bye: {type: hangup}",
            "step 'menu': branches.1: no step named 'nowhere'",
        ),
    ],
    ids=["next", "branch"],
)
def test_a_next_or_branch_to_a_missing_step_is_refused(tmp_path: Path, steps: str, expected: str) -> None:
    status, err = run_check(tmp_path, steps)
    assert status == 1
    assert expected in err


def test_a_loop_with_no_exit_is_refused(tmp_path: Path) -> None:
    status, err = run_check(
        tmp_path,
        f"""
        answer: {{type: answer, next: hello}}
        hello: {{type: speak, params: {{payload: Hello., {SAY}}}, next: music}}
        music: {{type: play, params: {{audio_url: "https://example.com/a.mp3"}}, next: hello}}
        """,
    )
    assert status == 1
    assert "step 'hello': next: hello -> music -> hello loops with no exit" in err


def test_a_menu_whose_every_way_leads_back_is_a_loop_with_no_exit(tmp_path: Path) -> None:
    status, err = run_check(
        tmp_path,
        f"""
        answer: {{type: answer, next: menu}}
        menu:
          type: menu
          params: {{payload: Press 1 to hear this again., {SAY}}}
          branches: {{"1": again}}
          on_exhausted: menu
        again: {{type: speak, params: {{payload: Again., {SAY}}}, next: menu}}
        """,
    )
    assert status == 1
    assert "loops with no exit" in err
    assert "menu -> again -> menu" in err


def test_a_step_that_rests_is_an_exit(tmp_path: Path) -> None:
    """live_media's greeting has no next: the call rests there until it hangs up, which is not a loop."""
    status, err = run_check(
        tmp_path,
        f"""
        answer: {{type: answer, next: greet}}
        greet: {{type: speak, params: {{payload: Hello., {SAY}}}}}
        """,
    )
    assert (status, err) == (0, "")


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        (
            "answer: {type: answer, next: voicemail}\n"
            "voicemail: {type: record, params: {format: mp3, channels: single, max_length: 20000}, next: bye}\n"
            "bye: {type: hangup}",
            "step 'voicemail': params.max_length:",
        ),
        (
            "answer: {type: answer, next: tone}\n"
            "tone: {type: send_dtmf, params: {digits: '1', duration_millis: 50}, next: bye}\n"
            "bye: {type: hangup}",
            "step 'tone': params.duration_millis:",
        ),
        (
            f"answer: {{type: answer, next: menu}}\n"
            f"menu: {{type: menu, params: {{payload: Enter your code., {SAY}}}, branches: {{'{'1' * 129}': bye}},"
            " on_exhausted: bye}\n"
            "bye: {type: hangup}",
            "step 'menu': params.maximum_digits:",
        ),
        (
            "answer: {type: answer, next: tag}\n"
            f"tag: {{type: set_client_state, values: {{blob: '{'x' * 4000}'}}, next: bye}}\n"
            "bye: {type: hangup}",
            "the flow's client_state is too large",
        ),
    ],
    ids=["record-max-length", "dtmf-duration", "menu-digits", "client-state-size"],
)
def test_params_that_break_the_specs_limits_are_refused(tmp_path: Path, steps: str, expected: str) -> None:
    status, err = run_check(tmp_path, steps)
    assert status == 1
    assert expected in err


def test_a_variable_nothing_sets_is_refused(tmp_path: Path) -> None:
    status, err = run_check(
        tmp_path,
        f"""
        answer: {{type: answer, next: code}}
        code: {{type: gather, params: {{maximum_digits: 4}}, save_as: pin, next: greet}}
        greet: {{type: speak, params: {{payload: "Hello ${{vars.name}}.", {SAY}}}, next: bye}}
        bye: {{type: hangup}}
        """,
    )
    assert status == 1
    assert "step 'greet': params.payload: ${vars.name}: no step of the flow sets 'name' (set: digits, pin)" in err


def test_a_variable_a_step_sets_passes(tmp_path: Path) -> None:
    status, err = run_check(
        tmp_path,
        f"""
        answer: {{type: answer, next: lookup}}
        lookup: {{type: invoke, function: crm-lookup, sets: [name], next: greet, on_error: bye}}
        greet: {{type: speak, params: {{payload: "${{vars.name}} pressed ${{vars.digits}}.", {SAY}}}, next: bye}}
        bye: {{type: hangup}}
        """,
    )
    assert "${vars.digits}: no step of the flow sets 'digits'" in err  # no menu or gather here
    status, err = run_check(
        tmp_path,
        f"""
        answer: {{type: answer, next: lookup}}
        lookup: {{type: invoke, function: crm-lookup, sets: [name], next: greet, on_error: bye}}
        greet: {{type: speak, params: {{payload: "Hello ${{vars.name}}.", {SAY}}}, next: bye}}
        bye: {{type: hangup}}
        """,
    )
    assert (status, err) == (0, "")
