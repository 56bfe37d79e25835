"""The dashboard and alarms in template.yaml are well-formed and wired to the optional SNS topic."""

from __future__ import annotations

import json
import re

from voicebus_cli.local.template import load_template

RESOURCES = load_template()["Resources"]


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
