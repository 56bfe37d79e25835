"""Security by default, read from template.yaml itself."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import botocore
import botocore.session
import pytest
import yaml
from aws_lambda_powertools.utilities.idempotency.persistence import dynamodb as idempotency_persistence

from voicebus_cli.local.template import load_template, resources_with_globals
from voicebus_cli.testkey import ROOT

CHECKOV_CONFIG = ROOT / ".checkov.yaml"

TEMPLATE = load_template()
RESOURCES: dict[str, dict[str, Any]] = TEMPLATE["Resources"]
FUNCTIONS = {
    name: r for name, r in resources_with_globals(TEMPLATE).items() if r["Type"] == "AWS::Serverless::Function"
}
LAYER = ROOT / "layers" / "voicebus"
# SAM policy templates whose actions are broader than any function's code needs.
BROAD_TEMPLATES = {"DynamoDBCrudPolicy", "DynamoDBWritePolicy", "S3CrudPolicy", "S3FullAccessPolicy"}


def _statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    statements = document.get("Statement", [])
    return statements if isinstance(statements, list) else [statements]


def _branches(item: Any) -> list[Any]:
    """An item, or both branches of a conditional (`!If`) one, less AWS::NoValue."""
    if isinstance(item, dict) and "Fn::If" in item:
        return [branch for branch in item["Fn::If"][1:] if branch != {"Ref": "AWS::NoValue"}]
    return [item]


def _policies(name: str) -> list[dict[str, Any]]:
    """A function's policies; a `!Ref` to a managed policy of the template stands for its document."""
    policies = []
    for policy in FUNCTIONS[name]["Properties"].get("Policies", []):
        for branch in _branches(policy):
            managed = RESOURCES.get(branch.get("Ref", "")) if isinstance(branch, dict) else None
            if managed is not None and managed["Type"] == "AWS::IAM::ManagedPolicy":
                branch = managed["Properties"]["PolicyDocument"]
            policies.append(branch)
    return policies


def _function_statements(name: str) -> list[dict[str, Any]]:
    return [
        statement
        for policy in _policies(name)
        if "Statement" in policy
        for item in _statements(policy)
        for statement in _branches(item)
    ]


def _actions(statement: dict[str, Any]) -> list[str]:
    actions = statement["Action"]
    return actions if isinstance(actions, list) else [actions]


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
            # Statements only where no SAM template fits (DynamoDB and S3: the exact actions the code calls).
            for item in _statements(policy):
                for statement in _branches(item):
                    assert all("*" not in action for action in _actions(statement)), f"{name}: {statement}"
                    assert _one_resource(statement["Resource"]), f"{name}: {statement['Resource']!r}"
            continue
        [(template_name, arguments)] = policy.items()
        assert template_name.endswith("Policy"), f"{name}: {template_name} is not a SAM policy template"
        assert template_name not in BROAD_TEMPLATES, f"{name}: {template_name} grants more than the code calls"
        assert isinstance(arguments, dict)
        assert len(arguments) == 1, f"{name}: {template_name} must name exactly one resource"
        [target] = arguments.values()
        assert _one_resource(target), f"{name}: {template_name} must reference one resource, not {target!r}"


# ---------------------------------------------------------------- DynamoDB: granted = what the code calls
def _dynamodb_operations() -> dict[str, str]:
    """snake_case method name -> IAM action, for every DynamoDB API operation."""
    model = botocore.session.get_session().get_service_model("dynamodb")
    return {botocore.xform_name(operation): f"dynamodb:{operation}" for operation in model.operation_names}


def _calls_in(sources: list[Path]) -> tuple[set[str], bool]:
    """The DynamoDB actions `sources` call (directly or through a paginator), and whether they query an index."""
    operations = _dynamodb_operations()
    actions: set[str] = set()
    uses_index = False
    for source in sources:
        for node in ast.walk(ast.parse(source.read_text())):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            method = node.func.attr
            if method == "get_paginator" and node.args and isinstance(node.args[0], ast.Constant):
                method = str(node.args[0].value)
            if method in operations:
                actions.add(operations[method])
            uses_index |= any(keyword.arg == "IndexName" for keyword in node.keywords)
    return actions, uses_index


# The calls table is the only table voicebus's own code touches; the idempotency table is Powertools'.
CALL_STORE_ACTIONS, CALL_STORE_QUERIES_AN_INDEX = _calls_in(sorted((LAYER / "voicebus").rglob("*.py")))
IDEMPOTENCY_ACTIONS, _ = _calls_in([Path(idempotency_persistence.__file__)])


def _imports(name: str) -> set[str]:
    """Every module the function's handler imports, following voicebus's own modules (the layer)."""
    properties = FUNCTIONS[name]["Properties"]
    entry = ROOT / properties["CodeUri"] / f"{properties['Handler'].rsplit('.', 1)[0]}.py"
    seen: set[str] = set()
    pending = [entry]
    while pending:
        tree = ast.parse(pending.pop().read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            else:
                continue
            for module in names:
                if module in seen:
                    continue
                seen.add(module)
                if module.split(".")[0] == "voicebus":
                    path = LAYER.joinpath(*module.split("."))
                    source = next((p for p in (path / "__init__.py", path.with_suffix(".py")) if p.exists()), None)
                    if source is not None:
                        pending.append(source)
    return seen


def _granted(name: str) -> dict[str, set[str]]:
    """DynamoDB actions granted to the function, by resource (table logical id, `<table>/index`)."""
    granted: dict[str, set[str]] = {}
    for statement in _function_statements(name):
        actions = {action for action in _actions(statement) if action.startswith("dynamodb:")}
        if not actions:
            continue
        target = statement["Resource"]
        if "Fn::GetAtt" in target:
            key = target["Fn::GetAtt"][0]
        else:
            text = target["Fn::Sub"]
            key = text[2 : text.index(".")] + "/index" if "/index/" in text else text
        granted.setdefault(key, set()).update(actions)
    return granted


def _needed(name: str) -> dict[str, set[str]]:
    imports = _imports(name)
    needed: dict[str, set[str]] = {}
    if "voicebus.calls.store" in imports:
        needed["CallsTable"] = CALL_STORE_ACTIONS
        if CALL_STORE_QUERIES_AN_INDEX:
            needed["CallsTable/index"] = {"dynamodb:Query"}
    if any(module.startswith("aws_lambda_powertools.utilities.idempotency") for module in imports):
        needed["IdempotencyTable"] = IDEMPOTENCY_ACTIONS
    return needed


def test_the_code_derived_needs_are_what_the_stores_call() -> None:
    """Guards the derivation itself: if this fails, the scan of the code is wrong, not the template."""
    assert {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query"} <= CALL_STORE_ACTIONS
    assert CALL_STORE_QUERIES_AN_INDEX
    assert "dynamodb:DeleteItem" in IDEMPOTENCY_ACTIONS
    assert _needed("IngressFunction") == {}
    assert set(_needed("MediaFunction")) == {"CallsTable", "CallsTable/index", "IdempotencyTable"}


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_each_function_is_granted_exactly_the_dynamodb_actions_its_code_calls(name: str) -> None:
    granted, needed = _granted(name), _needed(name)
    for table, actions in granted.items():
        unused = actions - needed.get(table, set())
        assert not unused, f"{name}: {sorted(unused)} on {table}, which its code never calls"
    assert granted == needed, f"{name}: missing { ({t: a - granted.get(t, set()) for t, a in needed.items()}) }"


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_only_functions_that_archive_may_write_the_archive(name: str) -> None:
    writes_archive = any(
        "s3:PutObject" in _actions(statement) and "ArchiveBucket" in str(statement["Resource"])
        for statement in _function_statements(name)
    )
    assert writes_archive == any(module.startswith("voicebus.archive.") for module in _imports(name)), name


def test_no_function_traces_so_none_has_tracing_on() -> None:
    """No code creates a Powertools Tracer: Active tracing would only add the X-Ray daemon's cost."""
    assert not any("Tracer" in source.read_text() for source in (LAYER / "voicebus").rglob("*.py"))
    assert all(f["Properties"].get("Tracing", "PassThrough") != "Active" for f in FUNCTIONS.values())


def test_no_statement_allows_a_wildcard_action() -> None:
    for name, resource in RESOURCES.items():
        properties = resource.get("Properties", {})
        for key in ("PolicyDocument", "AssumeRolePolicyDocument"):
            for item in _statements(properties.get(key, {})):
                for statement in _branches(item):
                    if statement.get("Effect") != "Allow":
                        continue
                    assert all("*" not in action for action in _actions(statement)), f"{name}: {statement}"


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


def test_every_skip_in_the_checkov_config_gives_a_reason() -> None:
    """The skips that hold for every function are stated once, each under the comment that says why."""
    text = CHECKOV_CONFIG.read_text()
    config = yaml.safe_load(text)
    assert "CKV_AWS_50" in config["skip-check"], "Tracing is off on purpose: say so"
    reasons: dict[str, str] = {}
    comment: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            comment.append(stripped.lstrip("# "))
        elif stripped.startswith("- "):
            reasons[stripped[2:].strip()] = " ".join(comment)
            comment = []
        else:
            comment = []
    assert set(reasons) == set(config["skip-check"])
    assert all(len(reason) > 40 for reason in reasons.values()), reasons
    resource_skips = {
        skip["id"]
        for resource in RESOURCES.values()
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])
    }
    assert not resource_skips & set(reasons), "a skip stated for every resource need not be repeated on one"


def test_the_checkov_config_is_what_make_validate_passes() -> None:
    assert f"--config-file {CHECKOV_CONFIG.name}" in (ROOT / "Makefile").read_text()


def test_webhook_endpoint_is_throttled_and_logged_without_headers() -> None:
    api = RESOURCES["WebhookApi"]["Properties"]
    assert {"ThrottlingRateLimit", "ThrottlingBurstLimit"} <= set(api["DefaultRouteSettings"])
    log_format = api["AccessLogSettings"]["Format"]
    assert "header" not in log_format.lower()
    assert "body" not in log_format.lower()
