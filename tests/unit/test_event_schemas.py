"""The bus's event schemas (schemas/, JSON Schema draft 4): fresh, valid, and true to what is put on the bus."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any
from unittest.mock import MagicMock

import pytest
from jsonschema import Draft4Validator  # type: ignore[import-untyped]  # no stubs in the dev group

from voicebus.calls.families import EventFamily, family_of
from voicebus.commands.requests import CommandRequestEvent, CommandRequestProcessor
from voicebus.commands.sender import CommandOutcome, OutcomeStatus, TelnyxErrorDetail
from voicebus_cli import event_schemas
from voicebus_cli.local.template import load_template
from voicebus_cli.testkey import ROOT

SCHEMAS = event_schemas.OUTPUT_DIR
BUS_EVENTS = sorted((ROOT / "events" / "bus").glob("*.json"))
COMMAND_EVENTS = sorted((ROOT / "events" / "commands").glob("*.json"))


def validator(file: str) -> Draft4Validator:
    schema = json.loads((SCHEMAS / file).read_text())
    Draft4Validator.check_schema(schema)
    return Draft4Validator(schema)


def family_validator(detail_type: str) -> Draft4Validator:
    return validator(f"telnyx.{family_of(detail_type).value}.json")


def test_the_committed_files_are_a_fresh_generation() -> None:
    fresh = event_schemas.generate()
    assert {path.name for path in fresh} == {path.name for path in SCHEMAS.iterdir()}, "stale or stray files"
    stale = [path.name for path, text in fresh.items() if path.read_text() != text]
    assert stale == [], "run `python -m voicebus_cli.event_schemas`"
    assert event_schemas.write(check=True) == 0


def test_there_is_one_schema_per_family_and_per_command_event() -> None:
    names = {path.name for path in SCHEMAS.glob("*.json")}
    assert {f"telnyx.{family.value}.json" for family in EventFamily} <= names
    assert {"voicebus.call.command.json", "voicebus.call.command.succeeded.json"} <= names
    assert "voicebus.call.command.failed.json" in names


@pytest.mark.parametrize("path", sorted(SCHEMAS.glob("*.json")), ids=lambda path: path.name)
def test_each_schema_is_draft_4_describing_the_whole_event(path: Path) -> None:
    schema = json.loads(path.read_text())
    assert schema["$schema"] == "http://json-schema.org/draft-04/schema#"
    Draft4Validator.check_schema(schema)
    assert {"detail-type", "source", "detail"} <= set(schema["required"])
    assert len(json.dumps(schema, separators=(",", ":"))) <= event_schemas.MAX_CONTENT


@pytest.mark.parametrize("path", BUS_EVENTS, ids=[path.name for path in BUS_EVENTS])
def test_every_sample_bus_event_validates_against_its_family(path: Path) -> None:
    event = json.loads(path.read_text())
    errors = [error.message for error in family_validator(event["detail-type"]).iter_errors(event)]
    assert errors == []


@pytest.mark.parametrize("path", COMMAND_EVENTS, ids=[path.name for path in COMMAND_EVENTS])
def test_every_sample_command_validates(path: Path) -> None:
    event = json.loads(path.read_text())
    assert list(validator("voicebus.call.command.json").iter_errors(event)) == []


def test_the_schemas_refuse_what_is_not_their_event() -> None:
    hangup = json.loads((ROOT / "events" / "bus" / "call.hangup.json").read_text())
    wrong_type = copy.deepcopy(hangup)
    wrong_type["detail"]["data"]["event_type"] = "call.answered.typo"
    wrong_payload = copy.deepcopy(hangup)
    wrong_payload["detail"]["data"]["payload"]["hangup_cause"] = 42
    other_family = {**hangup, "detail-type": "call.recording.saved"}
    for event in (wrong_type, wrong_payload, other_family):
        assert not family_validator("call.hangup").is_valid(event)
    claimed = {**hangup, "detail-type": "call.hangup"}
    assert not validator("telnyx.timeline.json").is_valid(claimed)
    command = json.loads(COMMAND_EVENTS[0].read_text())
    command["detail"]["action"] = "no_such_action"
    assert not validator("voicebus.call.command.json").is_valid(command)


# ---------------------------------------------------------------- what the command function actually puts
def _answers(outcome: CommandOutcome | None, action: str = "hangup", params: dict[str, Any] | None = None) -> Any:
    """Run the real processor on a request; return the entries it put on the bus."""
    sender = MagicMock()
    sender.send.return_value = outcome
    events = MagicMock()
    events.put_events.return_value = {"FailedEntryCount": 0, "Entries": [{"EventId": "1"}]}
    processor = CommandRequestProcessor(sender, MagicMock(), events, "bus", MagicMock())
    request = json.loads(COMMAND_EVENTS[0].read_text())
    request["detail"].update(action=action, params=params or {})
    context = MagicMock()
    context.get_remaining_time_in_millis.return_value = 30_000
    processor.process(CommandRequestEvent.model_validate(request), context)
    [call] = events.put_events.call_args_list
    [entry] = call.kwargs["Entries"]
    return {"detail-type": entry["DetailType"], "source": entry["Source"], "detail": json.loads(entry["Detail"])}


ENDED = TelnyxErrorDetail("90018", "Call has already ended", None)


def _outcome(status: OutcomeStatus, errors: tuple[TelnyxErrorDetail, ...] = ()) -> CommandOutcome:
    return CommandOutcome("hangup", "v3:sample-call-control-id-0001", "cmd-1", status, 1, errors=errors)


@pytest.mark.parametrize(
    ("outcome", "params", "detail_type"),
    [
        (_outcome(OutcomeStatus.ACCEPTED), None, "call.command.succeeded"),
        (_outcome(OutcomeStatus.REJECTED, (ENDED,)), None, "call.command.failed"),
        (_outcome(OutcomeStatus.REJECTED), None, "call.command.failed"),
        (None, {"no_such_param": 1}, "call.command.failed"),  # invalid params: refused before sending
    ],
)  # fmt: skip
def test_the_answers_the_command_function_puts_validate(
    outcome: CommandOutcome | None, params: dict[str, Any] | None, detail_type: str
) -> None:
    answer = _answers(outcome, params=params)
    assert answer["detail-type"] == detail_type
    errors = [error.message for error in validator(f"voicebus.{detail_type}.json").iter_errors(answer)]
    assert errors == []


def test_the_registry_stack_holds_every_schema_inline() -> None:
    registry = load_template(event_schemas.REGISTRY_TEMPLATE)
    schemas = {
        r["Properties"]["SchemaName"]: json.loads(r["Properties"]["Content"])
        for r in registry["Resources"].values()
        if r["Type"] == "AWS::EventSchemas::Schema"
    }
    on_disk = [json.loads(path.read_text()) for path in SCHEMAS.glob("*.json")]
    assert sorted(schemas.values(), key=json.dumps) == sorted(on_disk, key=json.dumps)
    assert all(
        r["Properties"]["Type"] == "JSONSchemaDraft4"
        for r in registry["Resources"].values()
        if "Type" in r.get("Properties", {})
    )
    nested = load_template()["Resources"]["EventSchemas"]
    assert nested["Type"] == "AWS::Serverless::Application"
    assert nested["Properties"]["Location"] == "schemas/registry.yaml"
