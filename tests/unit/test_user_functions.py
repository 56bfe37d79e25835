"""Your own function on the bus, the documented way: the bundle's checks still hold.

examples/call-summary/add-to-template.yaml (the snippet the README quotes) is pasted
into a copy of template.yaml; the copy must pass the same routing and least-privilege
checks as template.yaml itself (and checkov with .checkov.yaml, when installed), with
the new functions judged by their rules and code, not by name. The same handlers, as
a stack of their own (examples/call-summary/template.yaml), import only what
template.yaml exports.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.routing import (
    Routing,
    bus_event,
    check_every_rule_retries_for_an_hour_then_dead_letters_on_the_bus,
    check_reaches_its_recorder_and_only_what_acts_on_it,
    check_recorded_by_exactly_one_function,
)
from tests.support.security import TemplateSecurity
from voicebus.calls.families import CLAIMED_EVENT_TYPES
from voicebus_cli.local.template import TEMPLATE_FILE, load_template
from voicebus_cli.testkey import ROOT

EXAMPLE = ROOT / "examples" / "call-summary"
SNIPPET = EXAMPLE / "add-to-template.yaml"
CHECKOV = ROOT / ".tools" / "checkov" / "bin" / "checkov"
USER_FUNCTIONS = {"CallEndedFunction", "RecordingSavedFunction"}
EVERY_TYPE = sorted(CLAIMED_EVENT_TYPES | {"call.hold", "conference.created", "call.some.future.event"})


def with_snippet(template_text: str, snippet: str) -> str:
    """template.yaml with the snippet pasted at the end of Resources (just before Outputs)."""
    head, outputs = template_text.split("\nOutputs:\n", 1)
    return f"{head.rstrip()}\n\n{snippet.rstrip()}\n\nOutputs:\n{outputs}"


@pytest.fixture(scope="module")
def extended_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("extended") / "template.yaml"
    path.write_text(with_snippet(TEMPLATE_FILE.read_text(), SNIPPET.read_text()))
    return path


@pytest.fixture(scope="module")
def extended(extended_file: Path) -> dict[str, Any]:
    template = load_template(extended_file)
    assert set(template["Resources"]) >= USER_FUNCTIONS, "the snippet's functions were not pasted"
    return template


@pytest.fixture(scope="module")
def routing(extended: dict[str, Any]) -> Routing:
    return Routing(extended)


def test_the_snippet_adds_user_functions_not_recorders(routing: Routing) -> None:
    assert routing.user_functions == USER_FUNCTIONS | {"CommandFunction"}
    assert not USER_FUNCTIONS & set(routing.families)


def test_each_user_function_hears_its_event_type(routing: Routing) -> None:
    assert "CallEndedFunction" in routing.targets(bus_event("call.hangup"))
    assert "RecordingSavedFunction" in routing.targets(bus_event("call.recording.saved"))
    assert not USER_FUNCTIONS & routing.targets(bus_event("call.answered"))
    assert not USER_FUNCTIONS & routing.recorders(bus_event("call.hangup"))


@pytest.mark.parametrize("detail_type", EVERY_TYPE)
def test_every_event_type_is_still_recorded_by_exactly_one_function(routing: Routing, detail_type: str) -> None:
    check_recorded_by_exactly_one_function(routing, detail_type)
    check_reaches_its_recorder_and_only_what_acts_on_it(routing, detail_type)


def test_the_user_rules_retry_and_dead_letter_on_the_chosen_bus(routing: Routing) -> None:
    check_every_rule_retries_for_an_hour_then_dead_letters_on_the_bus(routing)


def test_every_function_of_the_extended_template_passes_the_security_checks(extended: dict[str, Any]) -> None:
    security = TemplateSecurity(extended)
    assert set(security.functions) >= USER_FUNCTIONS
    for name in security.functions:
        security.check_every_function(name)
    security.check_no_statement_allows_a_wildcard_action()


@pytest.mark.skipif(not CHECKOV.exists(), reason="checkov is installed by `make setup`")
def test_checkov_passes_the_extended_template_with_the_shared_skips(extended_file: Path) -> None:
    command = [str(CHECKOV), "--config-file", str(ROOT / ".checkov.yaml"), "--file", str(extended_file)]
    command += ["--framework", "cloudformation", "--compact", "--quiet", "--skip-download", "--output", "json"]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    report = json.loads(result.stdout)
    summary = report["summary"]
    failed = [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]
    assert summary["failed"] == 0, failed
    assert summary["passed"] > 0


def _handler(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLE / "functions" / name / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.lambda_handler


def test_the_example_handlers_read_the_sample_events(capsys: pytest.CaptureFixture[str]) -> None:
    hangup = json.loads((ROOT / "events" / "bus" / "call.hangup.json").read_text())
    saved = json.loads((ROOT / "events" / "bus" / "call.recording.saved.json").read_text())

    ended = _handler("call_ended")(hangup, None)
    recording = _handler("recording_saved")(saved, None)

    assert ended["hangup_cause"] == hangup["detail"]["data"]["payload"]["hangup_cause"]
    assert recording["recording_id"] == saved["detail"]["data"]["payload"]["recording_id"]
    assert recording["formats"]
    assert '"message": "call ended"' in capsys.readouterr().out


def test_the_example_stack_imports_only_what_voicebus_exports() -> None:
    exports = {
        name: output["Export"]["Name"] for name, output in load_template()["Outputs"].items() if "Export" in output
    }
    assert all(export == {"Fn::Sub": f"${{AWS::StackName}}-{name}"} for name, export in exports.items())
    imported = re.findall(r"\$\{VoicebusStackName\}-(\w+)", (EXAMPLE / "template.yaml").read_text())
    assert set(imported) == {"EventBusName", "EventDeadLetterQueueArn"}
    assert set(imported) <= set(exports)
