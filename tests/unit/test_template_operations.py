"""The dashboard, alarms, logs and scale defaults in template.yaml: well-formed, wired, retained, sized."""

from __future__ import annotations

import json
import re

from voicebus_cli.local.template import load_template, resources_with_globals

TEMPLATE = load_template()
RESOURCES = TEMPLATE["Resources"]
PARAMETERS = TEMPLATE["Parameters"]
# The load the defaults are sized for (README "Sizing"): 1,000 concurrent calls, about one
# webhook per call per second in bursts, each ingress invocation ~50 ms (a PutEvents round trip).
SIZED_FOR_CALLS = 1000
INGRESS_SECONDS = 0.05
# Lambda refuses a reservation that leaves less than 100 unreserved; 1,000 is the usual account quota.
ACCOUNT_CONCURRENCY, UNRESERVED_MINIMUM = 1000, 100


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


def test_the_webhook_throttle_defaults_admit_the_sized_load_and_its_bursts() -> None:
    rate = PARAMETERS["WebhookThrottlingRateLimit"]["Default"]
    burst = PARAMETERS["WebhookThrottlingBurstLimit"]["Default"]
    assert rate >= SIZED_FOR_CALLS
    assert burst >= 2 * rate
    settings = RESOURCES["WebhookApi"]["Properties"]["DefaultRouteSettings"]
    assert settings == {
        "ThrottlingRateLimit": {"Ref": "WebhookThrottlingRateLimit"},
        "ThrottlingBurstLimit": {"Ref": "WebhookThrottlingBurstLimit"},
    }


def test_the_ingress_reserves_enough_concurrency_for_the_throttle_by_default() -> None:
    """Reserved, a flood of consumer invocations cannot starve the webhook endpoint (and 429s stay the API's)."""
    reserved = PARAMETERS["IngressReservedConcurrency"]["Default"]
    burst = PARAMETERS["WebhookThrottlingBurstLimit"]["Default"]
    assert reserved >= burst * INGRESS_SECONDS
    assert reserved <= ACCOUNT_CONCURRENCY - UNRESERVED_MINIMUM
    ingress = RESOURCES["IngressFunction"]["Properties"]
    assert ingress["ReservedConcurrentExecutions"] == {
        "Fn::If": ["ReserveIngressConcurrency", {"Ref": "IngressReservedConcurrency"}, {"Ref": "AWS::NoValue"}]
    }
