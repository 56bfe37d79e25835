"""The dashboard, alarms and logs in template.yaml: well-formed, wired to the optional SNS topic, retained."""

from __future__ import annotations

import json
import re

from voicebus_cli.local.template import load_template, resources_with_globals

TEMPLATE = load_template()
RESOURCES = TEMPLATE["Resources"]


def test_dashboard_body_is_json_once_substituted() -> None:
    body, variables = RESOURCES["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    names = set(re.findall(r"\$\{([^}]+)\}", body))
    local = {name for name in names if "." not in name and not name.startswith("AWS::")}
    assert local <= set(variables), "every ${Name} must be defined in the Sub's variable map"
    widgets = json.loads(re.sub(r"\$\{[^}]+\}", "x", body))["widgets"]
    titles = {widget["properties"]["title"] for widget in widgets}
    assert {
        "Webhooks accepted and rejected by reason",
        "Events recorded per detail-type",
        "Function errors",
        "Function duration (p95)",
        "Dead-letter queue depths",
        "Archived bytes",
    } <= titles
    assert [w["type"] for w in widgets].count("alarm") == 1
    alarm_names = set(re.findall(r"\$\{(\w+)\.Arn\}", body))
    assert alarm_names == {name for name, r in RESOURCES.items() if r["Type"] == "AWS::CloudWatch::Alarm"}


def test_every_alarm_notifies_the_optional_topic() -> None:
    alarms = {name: r for name, r in RESOURCES.items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    assert {
        "EventDeadLetterAlarm",
        "FailedInvocationAlarm",
        "IngressServerErrorsAlarm",
        "SignatureFailuresAlarm",
        "ArchiveFailuresAlarm",
    } <= set(alarms)
    for name, alarm in alarms.items():
        actions = alarm["Properties"]["AlarmActions"]
        assert actions == {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}, name


def test_every_function_logs_where_log_retention_days_applies() -> None:
    functions = {n: r for n, r in resources_with_globals(TEMPLATE).items() if r["Type"] == "AWS::Serverless::Function"}
    assert functions
    for name, function in functions.items():
        group = function["Properties"]["LoggingConfig"]["LogGroup"]
        assert RESOURCES[group["Ref"]]["Type"] == "AWS::Logs::LogGroup", name
    log_groups = [r for r in RESOURCES.values() if r["Type"] == "AWS::Logs::LogGroup"]
    assert all(group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"} for group in log_groups)
