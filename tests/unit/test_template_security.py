"""Security by default, read from template.yaml itself."""

from __future__ import annotations

from typing import Any

import pytest

from voicebus_cli.local.template import load_template

TEMPLATE = load_template()
RESOURCES: dict[str, dict[str, Any]] = TEMPLATE["Resources"]
FUNCTIONS = {name: r for name, r in RESOURCES.items() if r["Type"] == "AWS::Serverless::Function"}


def _statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    statements = document.get("Statement", [])
    return statements if isinstance(statements, list) else [statements]


def _policies(name: str) -> list[dict[str, Any]]:
    """A function's policies, with both branches of a conditional (`!If`) one."""
    policies = []
    for policy in FUNCTIONS[name]["Properties"].get("Policies", []):
        if isinstance(policy, dict) and "Fn::If" in policy:
            policies += [branch for branch in policy["Fn::If"][1:] if branch != {"Ref": "AWS::NoValue"}]
        else:
            policies.append(policy)
    return policies


def _one_resource(target: Any) -> bool:
    """A Ref / GetAtt / Sub naming exactly one resource or parameter of the template."""
    if not isinstance(target, dict) or len(target) != 1:
        return False
    [(function, argument)] = target.items()
    if function == "Fn::Sub":
        return isinstance(argument, str) and argument.count("${") == 1
    return function in {"Ref", "Fn::GetAtt"}


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_function_policies_are_scoped_to_one_resource_each(name: str) -> None:
    for policy in _policies(name):
        assert isinstance(policy, dict), f"{name}: managed policy by name {policy!r}"
        if "Statement" in policy:
            # Inline statements only where no SAM template fits (S3 archive: exact object actions).
            for statement in policy["Statement"]:
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                assert all("*" not in action for action in actions), f"{name}: {actions}"
                assert _one_resource(statement["Resource"]), f"{name}: {statement['Resource']!r}"
            continue
        [(template_name, arguments)] = policy.items()
        assert template_name.endswith("Policy"), f"{name}: {template_name} is not a SAM policy template"
        assert isinstance(arguments, dict)
        assert len(arguments) == 1, f"{name}: {template_name} must name exactly one resource"
        [target] = arguments.values()
        assert _one_resource(target), f"{name}: {template_name} must reference one resource, not {target!r}"


def test_no_statement_allows_a_wildcard_action() -> None:
    for name, resource in RESOURCES.items():
        properties = resource.get("Properties", {})
        for key in ("PolicyDocument", "AssumeRolePolicyDocument"):
            for statement in _statements(properties.get(key, {})):
                if statement.get("Effect") != "Allow":
                    continue
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                assert all("*" not in action for action in actions), f"{name}: {actions}"


def test_archive_bucket_is_private_encrypted_versioned_and_tls_only() -> None:
    bucket = RESOURCES["ArchiveBucket"]["Properties"]
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert len(bucket["PublicAccessBlockConfiguration"]) == 4
    assert bucket["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    assert bucket["VersioningConfiguration"]["Status"] == "Enabled"
    [deny] = _statements(RESOURCES["ArchiveBucketPolicy"]["Properties"]["PolicyDocument"])
    assert deny["Effect"] == "Deny"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


@pytest.mark.parametrize("name", ["CallsTable", "IdempotencyTable"])
def test_tables_are_encrypted_with_ttl_and_backups(name: str) -> None:
    table = RESOURCES[name]["Properties"]
    assert table["SSESpecification"]["SSEEnabled"] is True
    assert table["TimeToLiveSpecification"]["Enabled"] is True
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True


def test_queues_are_encrypted() -> None:
    queues = [r for r in RESOURCES.values() if r["Type"] == "AWS::SQS::Queue"]
    assert queues
    assert all(q["Properties"].get("SqsManagedSseEnabled") or q["Properties"].get("KmsMasterKeyId") for q in queues)


def test_the_api_key_is_a_secret_reference_never_a_value() -> None:
    parameters = TEMPLATE["Parameters"]
    assert parameters["TelnyxApiKeySecretArn"]["AllowedPattern"].startswith("^arn:aws")
    assert "Default" not in parameters["TelnyxApiKeySecretArn"]
    for name, resource in FUNCTIONS.items():
        variables = resource["Properties"].get("Environment", {}).get("Variables", {})
        assert "TELNYX_API_KEY" not in variables, f"{name} puts the API key in its environment"


def test_every_checkov_skip_gives_a_reason() -> None:
    skips = [
        (name, skip)
        for name, resource in RESOURCES.items()
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])
    ]
    assert skips
    assert all(len(skip.get("comment", "")) > 40 for _, skip in skips), "each skip needs a written reason"


def test_webhook_endpoint_is_throttled_and_logged_without_headers() -> None:
    api = RESOURCES["WebhookApi"]["Properties"]
    assert {"ThrottlingRateLimit", "ThrottlingBurstLimit"} <= set(api["DefaultRouteSettings"])
    log_format = api["AccessLogSettings"]["Format"]
    assert "header" not in log_format.lower()
    assert "body" not in log_format.lower()
