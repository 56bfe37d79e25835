"""IVR flows: the bundled flows load, broken flows say where they break, and the engine's decisions (pure)."""

from __future__ import annotations

import io
import textwrap
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import JsonValue

from voicebus.calls.client_state import encode
from voicebus.calls.events import WebhookData
from voicebus.commands.validation import CallCommand, parse_command
from voicebus.flows import steps
from voicebus.flows.engine import Decision, DecisionKind, FlowEngine
from voicebus.flows.loader import PLACEHOLDER, FlowCatalog, FlowLoadError, load_flow, load_flows
from voicebus.flows.position import FlowPosition, FlowStatus, StoredFlowState, position_from_client_state
from voicebus_cli.flows import FLOWS_DIR, check_flows, example_environment

ENV = example_environment()
SALES = ENV["FLOW_SALES_NUMBER"]
LIVE_MEDIA_NUMBER = ENV.get("FLOW_LIVE_MEDIA_NUMBER", "+15550100200")  # live_media.yaml's default
CALLED = "+15550002222"


@pytest.fixture(scope="module")
def catalog() -> FlowCatalog:
    return load_flows(FLOWS_DIR, ENV)


@pytest.fixture(scope="module")
def engine(catalog: FlowCatalog) -> FlowEngine:
    return FlowEngine(catalog)


# ---------------------------------------------------------------------------
# Loading


def test_the_template_gives_every_required_placeholder_of_the_bundled_flows_a_value() -> None:
    required = {
        match.group("name")
        for path in FLOWS_DIR.glob("*.yaml")
        for match in PLACEHOLDER.finditer(path.read_text())
        if match.group("default") is None
    }
    assert required == {"FLOW_SALES_NUMBER", "FLOW_ANNOUNCEMENT_AUDIO_URL", "FLOW_MEDIA_STREAM_URL"}
    assert required <= set(ENV)


def test_the_bundled_flows_load(catalog: FlowCatalog) -> None:
    assert sorted(flow.name for flow in catalog) == ["live_media", "main"]
    assert catalog.default.name == "main"
    main = catalog.flows["main"]
    menu = main.steps["menu"]
    assert isinstance(menu, steps.MenuStep)
    assert menu.branches == {"1": "sales", "2": "voicemail_prompt", "3": "opening_hours"}
    assert (menu.max_attempts, menu.on_exhausted) == (3, "goodbye")
    sales = main.steps["sales"]
    assert isinstance(sales, steps.TransferStep) and sales.params.params["to"] == SALES
    hours = main.steps["opening_hours"]
    assert isinstance(hours, steps.PlayStep)
    assert hours.params.params["audio_url"] == ENV["FLOW_ANNOUNCEMENT_AUDIO_URL"]
    voicemail = main.steps["voicemail"]
    assert isinstance(voicemail, steps.RecordStep)
    assert (voicemail.params.params["format"], voicemail.params.params["play_beep"]) == ("mp3", True)
    assert voicemail.finish_on_key == "#"
    assert catalog.flows["live_media"].match.to == [LIVE_MEDIA_NUMBER]


def _write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


GREETING_FLOW = """\
    name: main
    entry: greet
    steps:
      greet:
        type: speak
        params: {payload: Hello, voice: female, language: en-US}
        next: bye
      bye:
        type: hangup
"""


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        pytest.param(
            "type: speak",
            "type: speek",
            "step 'greet': type: unknown step type 'speek'; did you mean 'speak'?",
            id="type",
        ),
        pytest.param("next: bye", "next: nowhere", "step 'greet': next: no step named 'nowhere'", id="unknown-step"),
        pytest.param("entry: greet", "entry: hello", "entry: no step named 'hello' (steps: bye, greet)", id="entry"),
        pytest.param(
            "language: en-US", "language: english", "step 'greet': params.language: must be one of", id="enum"
        ),
        pytest.param("voice: female, ", "", "step 'greet': params.voice: is required", id="missing-field"),
        pytest.param(
            "language: en-US}",
            "language: en-US, volume: 3}",
            "step 'greet': params.volume: is not a field here",
            id="extra",
        ),
        pytest.param("next: bye", "next: bye\n    loop: 2", "step 'greet': loop: Extra inputs", id="extra-step-field"),
        pytest.param("type: hangup", "type: hangup\n  greet: {}", "found the key 'greet' twice", id="duplicate"),
        pytest.param("name: main", "name: Main Flow", "name: String should match pattern", id="name"),
        pytest.param("steps:", "steps: [", "not valid YAML", id="yaml"),
    ],
)
def test_a_broken_flow_names_the_file_the_step_and_the_field(tmp_path: Path, old: str, new: str, expected: str) -> None:
    text = textwrap.dedent(GREETING_FLOW)
    assert old in text
    path = _write(tmp_path, "main.yaml", text.replace(old, new, 1))

    with pytest.raises(FlowLoadError) as caught:
        load_flow(path, ENV)

    assert str(caught.value).startswith(f"{path}: ")
    assert expected in str(caught.value)


def test_every_wrong_param_of_a_step_is_named(tmp_path: Path) -> None:
    text = textwrap.dedent(GREETING_FLOW).replace("language: en-US}", "language: english, volume: 3}")
    with pytest.raises(FlowLoadError) as caught:
        load_flow(_write(tmp_path, "main.yaml", text), ENV)
    assert sorted((problem.step, problem.field) for problem in caught.value.problems) == [
        ("greet", "params.language"),
        ("greet", "params.volume"),
    ]


def test_params_that_are_not_a_mapping_are_refused(tmp_path: Path) -> None:
    text = textwrap.dedent(GREETING_FLOW).replace(
        "params: {payload: Hello, voice: female, language: en-US}", "params: hi"
    )
    with pytest.raises(FlowLoadError, match=r"step 'greet': params: params must be an object \(got 'hi'\)"):
        load_flow(_write(tmp_path, "main.yaml", text), ENV)


def test_a_wrong_enum_shows_the_value_given(tmp_path: Path) -> None:
    path = _write(tmp_path, "main.yaml", textwrap.dedent(GREETING_FLOW).replace("en-US", "english"))
    with pytest.raises(FlowLoadError, match=r"\(got 'english'\)"):
        load_flow(path, ENV)


def test_a_missing_variable_is_named(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "main.yaml",
        """\
        name: main
        entry: sales
        steps:
          sales:
            type: transfer
            params: {to: "${FLOW_MISSING_NUMBER}"}
        """,
    )
    with pytest.raises(FlowLoadError) as caught:
        load_flow(path, {})

    assert "step 'sales': params.to: ${FLOW_MISSING_NUMBER} is not set in the environment" in str(caught.value)
    assert caught.value.variables == ("FLOW_MISSING_NUMBER",)
    assert _transfer(path, {"FLOW_MISSING_NUMBER": "+15550100"}) == parse_command("transfer", {"to": "+15550100"})


def _transfer(path: Path, environ: dict[str, str]) -> CallCommand:
    step = load_flow(path, environ).steps["sales"]
    assert isinstance(step, steps.TransferStep)
    return step.params


def test_placeholders_take_defaults_and_only_flow_variables(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "main.yaml",
        """\
        name: main
        entry: sales
        steps:
          sales:
            type: transfer
            params: {to: "${FLOW_NUMBER:-+15550100}", from: "${FLOW_FROM:-}"}
        """,
    )
    assert _transfer(path, {}).body() == {"to": "+15550100", "from": ""}
    assert _transfer(path, {"FLOW_NUMBER": "+15550999", "FLOW_FROM": "+15550111"}).body() == {
        "to": "+15550999",
        "from": "+15550111",
    }

    path.write_text(path.read_text().replace("${FLOW_NUMBER:-+15550100}", "${TELNYX_API_KEY}"))
    with pytest.raises(FlowLoadError, match=r"params.to: \$\{TELNYX_API_KEY\}: only FLOW_\* variables can be used"):
        load_flow(path, {"TELNYX_API_KEY": "KEY_secret"})


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        pytest.param(
            """\
            menu:
              type: menu
              params: {payload: Press 1, voice: female, maximum_tries: 3}
              branches: {1: bye}
              on_exhausted: bye
            """,
            "step 'menu': params.maximum_tries: the flow repeats the menu itself; set the step's max_attempts",
            id="menu-tries",
        ),
        pytest.param(
            """\
            menu:
              type: menu
              params: {payload: Press 1, voice: female}
              branches: {1: bye}
              on_exhausted: nowhere
            """,
            "step 'menu': on_exhausted: no step named 'nowhere'",
            id="menu-exhausted",
        ),
        pytest.param(
            """\
            menu:
              type: menu
              params: {payload: Press 1, voice: female}
              branches: {"1": bye, "x": bye}
              on_exhausted: bye
            """,
            "step 'menu': branches.x.[key]: String should match pattern",
            id="menu-key",
        ),
        pytest.param(
            """\
            menu:
              type: play
              params: {loop: 2}
            """,
            "step 'menu': params: one of audio_url, media_name or playback_content is required",
            id="play-source",
        ),
        pytest.param(
            """\
            menu:
              type: streaming_start
              params: {stream_url: "wss://x", stream_track: left}
            """,
            "step 'menu': params.stream_track: must be one of ['inbound_track', 'outbound_track', 'both_tracks']",
            id="streaming-enum",
        ),
        pytest.param(
            """\
            menu:
              type: record
              params: {format: ogg, channels: single}
            """,
            "step 'menu': params.format: must be one of ['wav', 'mp3'] (got 'ogg')",
            id="record-enum",
        ),
        pytest.param(
            """\
            menu:
              type: record
              params: {format: mp3}
              finish_on_key: "#"
            """,
            "step 'menu': params.channels: is required",
            id="record-missing",
        ),
        pytest.param(
            """\
            menu:
              type: fork_start
              params: {rx: "udp:192.0.2.1:9000", tx: "udp:192.0.2.1:9001"}
              next: tag
            tag:
              type: set_client_state
              values: {tier: gold}
              next: menu
            """,
            "step 'menu': next: menu -> tag -> menu loops without waiting for any event",
            id="loop",
        ),
    ],
)
def test_step_checks_name_the_step_and_field(tmp_path: Path, steps: str, expected: str) -> None:
    text = "name: main\nentry: menu\nsteps:\n" + textwrap.indent(textwrap.dedent(steps), "  ")
    text += "  bye:\n    type: hangup\n"
    path = _write(tmp_path, "main.yaml", text)
    with pytest.raises(FlowLoadError) as caught:
        load_flow(path, ENV)
    assert expected in str(caught.value)


def test_the_catalog_needs_a_default_and_distinct_matches(tmp_path: Path) -> None:
    _write(tmp_path, "sales.yaml", GREETING_FLOW.replace("name: main", "name: sales"))
    with pytest.raises(FlowLoadError, match=r"flow 'sales' matches no call: give it match\.to or match\.connection_id"):
        load_flows(tmp_path, ENV)

    matched = GREETING_FLOW.replace("name: main", 'name: sales\n    match: {to: ["+15550100"]}')
    _write(tmp_path, "sales.yaml", matched)
    with pytest.raises(FlowLoadError, match=f"^{tmp_path}: no flow named 'main', the default for unmatched calls"):
        load_flows(tmp_path, ENV)

    _write(tmp_path, "main.yaml", GREETING_FLOW)
    _write(tmp_path, "support.yaml", matched.replace("name: sales", "name: support"))
    with pytest.raises(FlowLoadError, match=r"support.yaml: match.to: '\+15550100' is already matched by flow 'sales'"):
        load_flows(tmp_path, ENV)

    (tmp_path / "support.yaml").unlink()
    _write(tmp_path, "second.yaml", GREETING_FLOW)
    with pytest.raises(FlowLoadError, match=r"second\.yaml: main\.yaml already defines a flow named 'main'"):
        load_flows(tmp_path, ENV)


def test_no_flow_files_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FlowLoadError, match=r"no \*\.yaml flow files"):
        load_flows(tmp_path, ENV)


def test_a_flow_is_chosen_by_number_then_connection_then_default(tmp_path: Path) -> None:
    _write(tmp_path, "main.yaml", GREETING_FLOW)
    _write(tmp_path, "sales.yaml", GREETING_FLOW.replace("name: main", 'name: sales\n    match: {to: ["+15550100"]}'))
    _write(tmp_path, "sip.yaml", GREETING_FLOW.replace("name: main", 'name: sip\n    match: {connection_id: ["77"]}'))
    catalog = load_flows(tmp_path, ENV)

    assert catalog.choose("+15550100", "77").name == "sales"
    assert catalog.choose("+15550999", "77").name == "sip"
    assert catalog.choose("+15550999", "78").name == "main"
    assert catalog.choose(None, None).name == "main"


# ---------------------------------------------------------------------------
# check-flows


def test_check_flows_prints_a_line_per_flow() -> None:
    out, err = io.StringIO(), io.StringIO()
    assert check_flows(FLOWS_DIR, out=out, err=err) == 0
    lines = out.getvalue().splitlines()
    assert lines == [
        f"live_media.yaml: flow 'live_media', 5 steps from 'answer', takes calls to {LIVE_MEDIA_NUMBER}",
        "main.yaml: flow 'main', 12 steps from 'answer', takes every other call (default)",
        f"2 flows OK in {FLOWS_DIR}",
    ]
    assert err.getvalue() == ""


def test_check_flows_fails_with_the_error(tmp_path: Path) -> None:
    _write(tmp_path, "main.yaml", textwrap.dedent(GREETING_FLOW).replace("en-US", "english"))
    out, err = io.StringIO(), io.StringIO()
    assert check_flows(tmp_path, ENV, out=out, err=err) == 1
    assert out.getvalue() == ""
    assert err.getvalue().startswith(f"check-flows: {tmp_path / 'main.yaml'}: step 'greet': params.language:")


# ---------------------------------------------------------------------------
# Positions in client_state


def test_a_position_travels_as_client_state() -> None:
    position = FlowPosition(flow="main", step="menu", attempt=2, seq=5)
    assert position.client_state() == {"flow": "main", "step": "menu", "attempt": 2, "seq": 5}
    assert position_from_client_state(encode(position.client_state())) == position
    with_data = position.model_copy(update={"data": {"tier": "gold"}})
    assert with_data.client_state()["data"] == {"tier": "gold"}


@pytest.mark.parametrize("raw", [None, "", "%%", encode("menu"), encode({"step": "menu"}), encode([1, 2])])
def test_client_state_that_is_not_a_position_is_none(raw: str | None) -> None:
    assert position_from_client_state(raw) is None


# ---------------------------------------------------------------------------
# The engine


class SimulatedCall:
    """The engine's view of one call, as the runner keeps it (without DynamoDB and Telnyx).

    Telnyx echoes the client_state of the last command on later webhooks; so does this.
    """

    def __init__(self, engine: FlowEngine, to: str = CALLED, connection_id: str = "1494404757140276705") -> None:
        self.engine = engine
        self.to = to
        self.connection_id = connection_id
        self.state: StoredFlowState | None = None
        self.client_state: str | None = None
        self.clock = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
        self.hung_up = False

    def webhook(self, event_type: str, **payload: Any) -> WebhookData:
        self.clock += timedelta(milliseconds=250)
        fields = {"call_control_id": "v3:unit", "to": self.to, "connection_id": self.connection_id}
        if self.client_state is not None:
            fields["client_state"] = self.client_state
        return WebhookData.model_validate(
            {
                "id": str(uuid.uuid4()),
                "event_type": event_type,
                "occurred_at": self.clock,
                "payload": {**fields, **payload},
            }
        )

    def deliver(self, data: WebhookData) -> Decision:
        decision = self.engine.decide(data, self.state, call_hung_up=self.hung_up)
        if decision.writes_state:
            assert decision.state is not None
            self.state = StoredFlowState.model_validate({**decision.state.model_dump(), "event_id": data.id})
        if decision.commands:
            self.client_state = encode(decision.client_state)
        if data.event_type == "call.hangup":
            self.hung_up = True
        return decision

    def event(self, event_type: str, **payload: Any) -> Decision:
        return self.deliver(self.webhook(event_type, **payload))

    def answered(self) -> Decision:
        self.event("call.initiated", direction="incoming")
        return self.event("call.answered")


def sent(decision: Decision) -> list[tuple[str, CallCommand]]:
    return [(planned.step, planned.command) for planned in decision.commands]


def at(decision: Decision) -> tuple[str, str, int, int] | None:
    state = decision.state
    return (state.flow, state.step, state.attempt, state.seq) if state is not None else None


MENU = parse_command(
    "gather_using_speak",
    {
        "payload": "Thank you for calling. Press 1 for sales, 2 to leave a message, or 3 for our opening hours.",
        "voice": "AWS.Polly.Joanna-Neural",
        "language": "en-US",
        "timeout_millis": 8000,
        "maximum_tries": 1,
        "maximum_digits": 1,
    },
)
RETRY = "Sorry, I did not get that. Press 1 for sales, 2 to leave a message, or 3 for our opening hours."


def test_an_incoming_call_is_answered(engine: FlowEngine) -> None:
    call = SimulatedCall(engine)
    decision = call.event("call.initiated", direction="incoming", state="parked")

    assert decision.kind is DecisionKind.STARTED
    assert sent(decision) == [("answer", parse_command("answer"))]
    assert at(decision) == ("main", "answer", 1, 1)
    assert decision.client_state == {
        "voicebus": {"flow": "main", "step": "answer", "attempt": 1, "seq": 1},
        "call": "v3:unit",
    }


@pytest.mark.parametrize(
    ("event_type", "direction"),
    [("call.initiated", "outgoing"), ("call.answered", "outgoing"), ("call.answered", "incoming")],
)
def test_only_an_incoming_call_initiated_starts_a_flow(engine: FlowEngine, event_type: str, direction: str) -> None:
    decision = SimulatedCall(engine).event(event_type, direction=direction)
    assert (decision.kind, decision.state, decision.commands) == (DecisionKind.IGNORED, None, ())


def test_answered_speaks_the_menu(engine: FlowEngine) -> None:
    decision = SimulatedCall(engine).answered()

    assert decision.kind is DecisionKind.ADVANCED
    assert sent(decision) == [("menu", MENU)]
    assert at(decision) == ("main", "menu", 1, 2)


def test_pressing_1_transfers_to_sales(engine: FlowEngine) -> None:
    call = SimulatedCall(engine)
    call.answered()
    decision = call.event("call.gather.ended", status="valid", digits="1")

    far_leg = encode({"voicebus": {"flow": "main", "step": "sales", "attempt": 1, "seq": 3}, "call": "v3:unit"})
    transfer = {"to": SALES, "timeout_secs": 30, "target_leg_client_state": far_leg}
    assert sent(decision) == [("sales", parse_command("transfer", transfer))]
    assert at(decision) == ("main", "sales", 1, 3)
    assert call.event("call.bridged").kind is DecisionKind.HANDED_OVER
    assert call.event("call.speak.ended", status="completed").kind is DecisionKind.IGNORED


def test_pressing_2_records_a_voicemail_finished_with_pound(engine: FlowEngine) -> None:
    call = SimulatedCall(engine)
    call.answered()
    prompt = call.event("call.gather.ended", status="valid", digits="2")
    assert [step for step, _ in sent(prompt)] == ["voicemail_prompt"]
    assert sent(prompt)[0][1].action == "speak"

    record = call.event("call.speak.ended", status="completed")
    assert sent(record) == [
        (
            "voicemail",
            parse_command(
                "record_start", {"format": "mp3", "channels": "single", "play_beep": True, "max_length": 300}
            ),
        )
    ]
    assert at(record) == ("main", "voicemail", 1, 4)

    assert call.event("call.dtmf.received", digit="5").kind is DecisionKind.IGNORED
    stop = call.event("call.dtmf.received", digit="#")
    assert (stop.kind, sent(stop)) == (DecisionKind.FINISHING, [("voicemail", parse_command("record_stop"))])
    assert stop.state is not None and stop.state.status is FlowStatus.FINISHING
    assert at(stop) == ("main", "voicemail", 1, 4)  # the same visit: the recording's events still match
    assert call.event("call.dtmf.received", digit="#").kind is DecisionKind.IGNORED

    thanks = call.event("call.recording.saved", recording_id="rec-1")
    assert [step for step, _ in sent(thanks)] == ["voicemail_thanks"]
    assert thanks.state is not None and thanks.state.status is FlowStatus.ACTIVE
    hangup = call.event("call.speak.ended", status="completed")
    assert sent(hangup) == [("hangup", parse_command("hangup"))]

    ended = call.event("call.hangup", hangup_cause="normal_clearing")
    assert (ended.kind, ended.commands, at(ended)) == (DecisionKind.ENDED, (), ("main", "hangup", 1, 6))
    assert ended.state is not None and ended.state.status is FlowStatus.ENDED


def test_a_voicemail_ended_by_hanging_up_sends_nothing_more(engine: FlowEngine) -> None:
    call = SimulatedCall(engine)
    call.answered()
    call.event("call.gather.ended", status="valid", digits="2")
    call.event("call.speak.ended", status="completed")

    assert call.event("call.hangup").kind is DecisionKind.ENDED
    saved = call.event("call.recording.saved", recording_id="rec-1")
    assert (saved.kind, saved.reason) == (DecisionKind.IGNORED, "the call has hung up")


def test_pressing_3_plays_the_hours_then_the_menu_again(engine: FlowEngine) -> None:
    call = SimulatedCall(engine)
    call.answered()
    hours = call.event("call.gather.ended", status="valid", digits="3")
    assert sent(hours) == [
        ("opening_hours", parse_command("playback_start", {"audio_url": ENV["FLOW_ANNOUNCEMENT_AUDIO_URL"]}))
    ]

    again = call.event("call.playback.ended", status="completed")
    assert sent(again) == [("menu", MENU)]
    assert at(again) == ("main", "menu", 1, 4)


@pytest.mark.parametrize(
    "failures",
    [
        [{"status": "timeout"}, {"status": "invalid", "digits": "7"}, {"status": "valid", "digits": "9"}],
        [{"status": "timeout"}] * 3,
    ],
)
def test_three_failed_attempts_say_goodbye_and_hang_up(engine: FlowEngine, failures: list[dict[str, str]]) -> None:
    call = SimulatedCall(engine)
    call.answered()
    second = call.event("call.gather.ended", **failures[0])
    assert sent(second) == [("menu", MENU.with_params(payload=RETRY))]
    assert at(second) == ("main", "menu", 2, 3)
    third = call.event("call.gather.ended", **failures[1])
    assert at(third) == ("main", "menu", 3, 4)

    goodbye = call.event("call.gather.ended", **failures[2])
    assert [step for step, _ in sent(goodbye)] == ["goodbye"]
    assert "after 3 attempts" in goodbye.reason
    assert sent(call.event("call.speak.ended", status="completed")) == [("hangup", parse_command("hangup"))]


@pytest.mark.parametrize("status", ["cancelled", "cancelled_amd"])
def test_a_gather_or_prompt_cut_short_moves_nothing(engine: FlowEngine, status: str) -> None:
    call = SimulatedCall(engine)
    call.answered()
    assert call.event("call.gather.ended", status=status).kind is DecisionKind.IGNORED
    call.event("call.gather.ended", status="valid", digits="2")
    assert call.event("call.speak.ended", status=status).kind is DecisionKind.IGNORED


def test_a_stale_event_for_an_earlier_attempt_moves_nothing(engine: FlowEngine) -> None:
    call = SimulatedCall(engine)
    call.answered()
    first_attempt = call.client_state
    call.event("call.gather.ended", status="timeout")

    late = call.webhook("call.gather.ended", status="valid", digits="1", client_state=first_attempt)
    decision = call.deliver(late)

    assert (decision.kind, decision.commands) == (DecisionKind.IGNORED, ())
    assert decision.reason == (
        "stale: the event answers main/menu attempt 1 (seq 2), the flow is at main/menu attempt 2 (seq 3)"
    )


def test_a_late_event_from_an_earlier_visit_of_the_same_step_moves_nothing(engine: FlowEngine) -> None:
    call = SimulatedCall(engine)
    call.answered()
    first_visit = call.client_state
    call.event("call.gather.ended", status="valid", digits="3")
    call.event("call.playback.ended", status="completed")  # back at the menu, attempt 1 again

    late = call.webhook("call.gather.ended", status="valid", digits="3", client_state=first_visit)
    assert call.deliver(late).kind is DecisionKind.IGNORED


def test_an_event_without_a_position_moves_nothing(engine: FlowEngine) -> None:
    call = SimulatedCall(engine)
    call.answered()
    foreign = call.webhook("call.gather.ended", status="valid", digits="1", client_state=encode({"mine": 1}))
    assert call.deliver(foreign).kind is DecisionKind.IGNORED


def test_the_event_that_moved_the_flow_replays_the_same_commands(engine: FlowEngine) -> None:
    call = SimulatedCall(engine)
    call.answered()
    pressed = call.webhook("call.gather.ended", status="valid", digits="1")
    first = call.deliver(pressed)

    again = engine.decide(pressed, call.state)

    assert again.kind is DecisionKind.REPLAYED
    assert again.commands == first.commands
    assert again.client_state == first.client_state
    assert not again.writes_state


def test_a_replay_of_the_first_event_answers_again(engine: FlowEngine) -> None:
    call = SimulatedCall(engine)
    initiated = call.webhook("call.initiated", direction="incoming")
    first = call.deliver(initiated)
    again = engine.decide(initiated, call.state)
    assert (again.kind, again.commands) == (DecisionKind.REPLAYED, first.commands)


def test_a_redelivered_event_after_the_flow_moved_on_is_stale(engine: FlowEngine) -> None:
    call = SimulatedCall(engine)
    call.answered()
    pressed = call.webhook("call.gather.ended", status="valid", digits="2")
    call.deliver(pressed)
    call.event("call.speak.ended", status="completed")

    assert engine.decide(pressed, call.state).kind is DecisionKind.IGNORED


def test_nothing_is_decided_after_a_hangup(engine: FlowEngine) -> None:
    call = SimulatedCall(engine)
    call.answered()
    ended = call.event("call.hangup", hangup_cause="normal_clearing")
    assert (ended.kind, at(ended)) == (DecisionKind.ENDED, ("main", "menu", 1, 2))

    call.hung_up = False  # even without the call's status, the ended flow refuses
    decision = call.event("call.gather.ended", status="valid", digits="1")
    assert (decision.kind, decision.reason) == (DecisionKind.IGNORED, "the flow has ended")
    assert call.event("call.hangup").kind is DecisionKind.IGNORED


def test_a_hangup_without_a_flow_is_ignored(engine: FlowEngine) -> None:
    assert SimulatedCall(engine).event("call.hangup").kind is DecisionKind.IGNORED


def test_other_events_do_not_move_flows(engine: FlowEngine) -> None:
    call = SimulatedCall(engine)
    call.answered()
    assert call.event("call.speak.started").reason == "call.speak.started does not move flows"
    assert call.event("call.dtmf.received", digit="1").kind is DecisionKind.IGNORED  # menus wait for the gather


def test_the_live_media_flow_starts_transcription_and_a_stream_then_greets(engine: FlowEngine) -> None:
    call = SimulatedCall(engine, to=LIVE_MEDIA_NUMBER)
    started = call.event("call.initiated", direction="incoming")
    assert at(started) == ("live_media", "answer", 1, 1)

    decision = call.event("call.answered")

    assert [(step, command.action) for step, command in sent(decision)] == [
        ("clean_audio", "suppression_start"),
        ("transcription", "transcription_start"),
        ("stream", "streaming_start"),
        ("greeting", "speak"),
    ]
    assert sent(decision)[2][1] == parse_command(
        "streaming_start", {"stream_url": ENV["FLOW_MEDIA_STREAM_URL"], "stream_track": "both_tracks"}
    )
    discriminators = [planned.discriminator for planned in decision.commands]
    assert discriminators == ["clean_audio", "transcription", "stream", "greeting"]
    assert decision.client_state == {
        "voicebus": {"flow": "live_media", "step": "greeting", "attempt": 1, "seq": 5},
        "call": "v3:unit",
    }
    rested = call.event("call.speak.ended", status="completed")  # the greeting has no next: the flow rests
    assert rested.commands == () and rested.state is not None and rested.state.deadline is None


def test_set_client_state_adds_data_to_every_later_command(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "main.yaml",
        """\
        name: main
        entry: tag
        steps:
          tag:
            type: set_client_state
            values: {tier: gold}
            next: answer
          answer:
            type: answer
            next: denoise
          denoise:
            type: suppression_start
            params: {direction: inbound}
            next: dtmf
          dtmf:
            type: send_dtmf
            params: {digits: "1w2"}
            next: bye
          bye:
            type: hangup
        """,
    )
    call = SimulatedCall(FlowEngine(load_flows(tmp_path, {})))
    started = call.event("call.initiated", direction="incoming")
    expected_state: dict[str, JsonValue] = {
        "flow": "main",
        "step": "answer",
        "attempt": 1,
        "seq": 2,
        "data": {"tier": "gold"},
    }
    assert started.client_state == {"voicebus": expected_state, "call": "v3:unit"}
    assert sent(started) == [
        ("tag", parse_command("client_state_update", {"client_state": started.client_state})),
        ("answer", parse_command("answer")),
    ]

    answered = call.event("call.answered")
    assert [step for step, _ in sent(answered)] == ["denoise", "dtmf", "bye"]
    assert answered.state is not None and answered.state.client_state()["data"] == {"tier": "gold"}
    assert answered.state.position() == FlowPosition(flow="main", step="bye", attempt=1, seq=5, data={"tier": "gold"})
