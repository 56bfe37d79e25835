"""The IVR's least-privilege grants in template.yaml: step-timeout schedules and `invoke` steps."""

from __future__ import annotations

from typing import Any

from voicebus_cli.local.template import Stack, load_template

TEMPLATE = load_template()
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]


def statements(logical: str) -> list[dict[str, Any]]:
    return list(RESOURCES[logical]["Properties"]["PolicyDocument"]["Statement"])


def test_invoke_steps_may_call_exactly_the_listed_functions_and_none_by_default() -> None:
    access = RESOURCES["FlowInvokeAccess"]
    assert access["Condition"] == "HasInvokableFunctions"
    [statement] = statements("FlowInvokeAccess")
    assert statement["Action"] == "lambda:InvokeFunction"
    assert statement["Resource"] == {"Fn::Split": [",", {"Ref": "InvokableFunctionArns"}]}
    assert not Stack(TEMPLATE, "t").condition("HasInvokableFunctions")  # the default: no function
    listed = {"InvokableFunctionArns": "arn:aws:lambda:us-east-1:123456789012:function:crm-lookup"}
    assert Stack(TEMPLATE, "t", parameters=listed).condition("HasInvokableFunctions")
    control = RESOURCES["CallControlFunction"]["Properties"]
    assert {"Fn::If": ["HasInvokableFunctions", {"Ref": "FlowInvokeAccess"}, {"Ref": "AWS::NoValue"}]} in control[
        "Policies"
    ]
    assert control["Environment"]["Variables"]["INVOKABLE_FUNCTIONS"] == {"Ref": "InvokableFunctionArns"}


def test_scheduler_may_only_invoke_the_call_control_function() -> None:
    role = RESOURCES["FlowTimeoutSchedulerRole"]["Properties"]
    [trust] = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    assert "Policies" not in role and "ManagedPolicyArns" not in role
    [invoke] = statements("FlowTimeoutInvokePolicy")
    assert invoke["Action"] == "lambda:InvokeFunction"
    assert invoke["Resource"] == [
        {"Fn::GetAtt": ["CallControlFunction", "Arn"]},
        {"Fn::Sub": "${CallControlFunction.Arn}:*"},  # its `live` alias, which the rules invoke
    ]


def test_call_control_manages_schedules_in_its_group_only_and_passes_only_the_scheduler_role() -> None:
    schedules, pass_role = statements("FlowTimeoutAccess")
    assert sorted(schedules["Action"]) == ["scheduler:CreateSchedule", "scheduler:DeleteSchedule"]
    assert schedules["Resource"] == {
        "Fn::Sub": "arn:${AWS::Partition}:scheduler:${AWS::Region}:${AWS::AccountId}:schedule/${FlowTimeoutSchedules}/*"
    }
    assert pass_role["Action"] == "iam:PassRole"
    assert pass_role["Resource"] == {"Fn::GetAtt": ["FlowTimeoutSchedulerRole", "Arn"]}
    assert pass_role["Condition"] == {"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}}
    variables = RESOURCES["CallControlFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["STEP_TIMEOUT_SCHEDULE_GROUP"] == {"Ref": "FlowTimeoutSchedules"}
    assert variables["STEP_TIMEOUT_ROLE_ARN"] == {"Fn::GetAtt": ["FlowTimeoutSchedulerRole", "Arn"]}
