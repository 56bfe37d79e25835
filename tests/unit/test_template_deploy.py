"""What a SAM user expects of template.yaml: exports, an existing bus, replay, metadata, env.json."""

from __future__ import annotations

import json
import re
from typing import Any

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit

from tests.support.routing import BUS
from voicebus_cli.local.template import Stack, load_template, resources_with_globals
from voicebus_cli.testkey import ROOT

TEMPLATE = load_template()
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
OUTPUTS: dict[str, Any] = TEMPLATE["Outputs"]


def _names_the_bus(key: str, value: Any) -> bool:
    if key == "Ref":
        return bool(value == "EventBus")
    if key == "Fn::GetAtt":
        return bool(value[0] == "EventBus")
    return key == "Fn::Sub" and "${EventBus" in json.dumps(value)


def _bus_uses(node: Any, inside_choice: bool = False) -> list[tuple[str, bool]]:
    """Every mention of the EventBus resource, and whether it sits in an `!If [CreateEventBus, ...]`."""
    found: list[tuple[str, bool]] = []
    if isinstance(node, list):
        for item in node:
            found += _bus_uses(item, inside_choice)
    elif isinstance(node, dict):
        choice = inside_choice or node.get("Fn::If", [None])[0] == "CreateEventBus"
        for key, value in node.items():
            if _names_the_bus(key, value):
                found.append((json.dumps(node), choice))
            else:
                found += _bus_uses(value, choice)
    return found


def test_every_reference_to_the_bus_picks_the_created_or_the_existing_one() -> None:
    uses = _bus_uses({key: value for key, value in TEMPLATE.items() if key != "Conditions"})
    assert len(uses) > 10
    assert [use for use, chosen in uses if not chosen] == []
    assert RESOURCES["EventBus"]["Condition"] == "CreateEventBus"
    assert TEMPLATE["Conditions"]["CreateEventBus"] == {"Fn::Equals": [{"Ref": "ExistingEventBusName"}, ""]}
    assert TEMPLATE["Parameters"]["ExistingEventBusName"]["Default"] == ""


def test_the_bus_choice_resolves_to_the_existing_bus_when_one_is_named() -> None:
    existing = Stack(TEMPLATE, "s", parameters={"ExistingEventBusName": "orders"})
    existing.attributes["EventBus"] = {"Arn": "never used"}
    assert not existing.includes(RESOURCES["EventBus"])
    assert existing.resolve(BUS) == "orders"
    assert existing.resolve(OUTPUTS["EventBusArn"]["Value"]) == "arn:aws:events:us-east-1:123456789012:event-bus/orders"
    created = Stack(TEMPLATE, "s", physical={"EventBus": "s-telnyx"})
    assert created.includes(RESOURCES["EventBus"])
    assert created.resolve(BUS) == "s-telnyx"


def test_the_archive_keeps_telnyx_webhooks_of_the_chosen_bus_for_the_configured_days() -> None:
    archive = RESOURCES["EventArchive"]["Properties"]
    assert archive["RetentionDays"] == {"Ref": "EventArchiveRetentionDays"}
    assert archive["SourceArn"]["Fn::If"][:2] == ["CreateEventBus", {"Fn::GetAtt": ["EventBus", "Arn"]}]
    assert archive["EventPattern"] == {"source": ["telnyx"]}, "a replayed call.command would send it again"
    parameter = TEMPLATE["Parameters"]["EventArchiveRetentionDays"]
    assert (parameter["Default"], parameter["MinValue"]) == (7, 0)
    assert OUTPUTS["EventArchiveArn"]["Value"] == {"Fn::GetAtt": ["EventArchive", "Arn"]}


def test_the_outputs_voicebus_replay_and_your_stacks_read_are_exported() -> None:
    exported = {name for name, output in OUTPUTS.items() if "Export" in output}
    expected = {"EventBusName", "EventBusArn", "EventArchiveArn", "CallsTableName", "IdempotencyTableName"}
    assert expected | {"ArchiveBucketName", "EventDeadLetterQueueArn"} <= exported
    for name in exported:
        assert OUTPUTS[name]["Export"]["Name"] == {"Fn::Sub": f"${{AWS::StackName}}-{name}"}, name


def test_the_serverless_repo_metadata_is_complete() -> None:
    metadata = TEMPLATE["Metadata"]["AWS::ServerlessRepo::Application"]
    assert metadata["SpdxLicenseId"] == "Apache-2.0"
    for key in ("LicenseUrl", "ReadmeUrl"):
        assert (ROOT / metadata[key]).is_file(), key
    assert re.fullmatch(r"\d+\.\d+\.\d+", metadata["SemanticVersion"])
    assert {"Name", "Description", "Author", "Labels", "HomePageUrl", "SourceCodeUrl"} <= set(metadata)
    assert all(metadata[key].startswith("https://") for key in ("HomePageUrl", "SourceCodeUrl"))


def test_env_json_names_only_what_the_stack_outputs() -> None:
    """Each placeholder names a real output; every table the functions are told about has one."""
    parameters = json.loads((ROOT / "events" / "env.json").read_text())["Parameters"]
    placeholders = {
        name: match.group(1)
        for name, value in parameters.items()
        if (match := re.fullmatch(r"replace-with-the-(\w+)-stack-output", value))
    }
    assert set(placeholders.values()) <= set(OUTPUTS)
    table_variables = {
        name: value["Ref"]
        for name, value in TEMPLATE["Globals"]["Function"]["Environment"]["Variables"].items()
        if isinstance(value, dict) and RESOURCES.get(value.get("Ref", ""), {}).get("Type") == "AWS::DynamoDB::Table"
    }
    assert table_variables, "the functions are told their tables' names"
    for variable, table in table_variables.items():
        output = placeholders.get(variable)
        assert output is not None, f"env.json has no stack-output placeholder for {variable}"
        assert OUTPUTS[output]["Value"] == {"Ref": table}, variable


def test_only_the_recording_function_carries_the_telnyx_sdk() -> None:
    """Commands go over urllib3; the SDK only refreshes expired recording links (voicebus.archive.recordings)."""
    functions = {n: r for n, r in resources_with_globals(TEMPLATE).items() if r["Type"] == "AWS::Serverless::Function"}
    with_sdk = {name for name, f in functions.items() if {"Ref": "TelnyxSdkLayer"} in f["Properties"]["Layers"]}
    assert with_sdk == {"RecordingFunction"}
    assert "SDK" not in TEMPLATE["Parameters"]["EnableSnapStart"]["Description"]


def test_the_archived_bytes_widget_searches_the_dimensions_the_metric_is_emitted_with(capsys: Any) -> None:
    """ArchivedBytes is added beside the consumer's EventType dimension (Powertools metrics share their set)."""
    consumer, archive = Metrics(namespace="voicebus", service="recording"), Metrics(namespace="voicebus")
    consumer.add_dimension(name="EventType", value="call.recording.saved")  # as voicebus.calls.consumer does
    archive.add_metric(name="ArchivedBytes", unit=MetricUnit.Bytes, value=1024)  # as voicebus.archive does
    consumer.flush_metrics()
    [emitted] = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "ArchivedBytes" in line]
    [directive] = emitted["_aws"]["CloudWatchMetrics"]
    [dimensions] = directive["Dimensions"]

    body = RESOURCES["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"][0]
    widgets = json.loads(re.sub(r"\$\{[^}]+\}", "x", body))["widgets"]
    [widget] = [w for w in widgets if w["properties"].get("title") == "Archived bytes"]
    [[query]] = widget["properties"]["metrics"]
    searched = re.fullmatch(r"SEARCH\('\{(\w+),([\w,]+)\} MetricName=\"(\w+)\"', 'Sum', \d+\)", query["expression"])
    assert searched is not None, query
    namespace, searched_dimensions, metric = searched.groups()
    assert (namespace, metric) == (directive["Namespace"], "ArchivedBytes")
    assert sorted(searched_dimensions.split(",")) == sorted(dimensions)


def test_the_consumer_adds_only_the_event_type_dimension() -> None:
    """What the widget test assumes of the family consumers (voicebus.calls.handler, which
    voicebus.calls.consumer extends with idempotency): every archive metric passes through it."""
    calls = ROOT / "layers" / "voicebus" / "voicebus" / "calls"
    source = "".join((calls / name).read_text() for name in ("handler.py", "consumer.py"))
    assert re.findall(r"add_dimension\(name=\"(\w+)\"", source) == ["EventType"]
