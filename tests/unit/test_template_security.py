"""Security by default, read from template.yaml itself."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.support.security import (
    CALL_STORE_ACTIONS,
    CALL_STORE_QUERIES_AN_INDEX,
    IDEMPOTENCY_ACTIONS,
    LAYER,
    TemplateSecurity,
    statements,
)
from voicebus_cli.local.template import load_template
from voicebus_cli.testkey import ROOT

CHECKOV_CONFIG = ROOT / ".checkov.yaml"

TEMPLATE = load_template()
RESOURCES: dict[str, dict[str, Any]] = TEMPLATE["Resources"]
SECURITY = TemplateSecurity(TEMPLATE)
FUNCTIONS = SECURITY.functions


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_function_policies_are_scoped_to_one_resource_each(name: str) -> None:
    SECURITY.check_policies_are_scoped_to_one_resource_each(name)


def test_the_code_derived_needs_are_what_the_stores_call() -> None:
    """Guards the derivation itself: if this fails, the scan of the code is wrong, not the template."""
    assert {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query"} <= CALL_STORE_ACTIONS
    assert CALL_STORE_QUERIES_AN_INDEX
    assert "dynamodb:DeleteItem" in IDEMPOTENCY_ACTIONS
    assert SECURITY.needed("IngressFunction") == {}
    # Record-only families keep no idempotency records (conditional lane writes make recording
    # safe to repeat); families whose work must not repeat (commands, uploads) do.
    assert set(SECURITY.needed("MediaFunction")) == {"CallsTable", "CallsTable/index"}
    for guarded in ("CallControlFunction", "RecordingFunction", "TranscriptionFunction", "CommandFunction"):
        assert "IdempotencyTable" in SECURITY.needed(guarded), guarded


def test_functions_without_idempotency_are_not_granted_the_idempotency_table() -> None:
    for name in FUNCTIONS:
        policies = SECURITY.functions[name]["Properties"].get("Policies", [])
        granted = {"Ref": "IdempotencyAccess"} in policies
        assert granted == ("IdempotencyTable" in SECURITY.needed(name)), name


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_each_function_is_granted_exactly_the_dynamodb_actions_its_code_calls(name: str) -> None:
    SECURITY.check_dynamodb_grants_are_what_the_code_calls(name)


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_only_functions_that_archive_may_write_the_archive(name: str) -> None:
    SECURITY.check_only_archivers_write_the_archive(name)


def test_no_function_traces_so_none_has_tracing_on() -> None:
    """No code creates a Powertools Tracer: Active tracing would only add the X-Ray daemon's cost."""
    assert not any("Tracer" in source.read_text() for source in (LAYER / "voicebus").rglob("*.py"))
    for name in FUNCTIONS:
        SECURITY.check_not_traced(name)


def test_no_statement_allows_a_wildcard_action() -> None:
    SECURITY.check_no_statement_allows_a_wildcard_action()


def test_archive_bucket_is_private_encrypted_versioned_and_tls_only() -> None:
    bucket = RESOURCES["ArchiveBucket"]["Properties"]
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert len(bucket["PublicAccessBlockConfiguration"]) == 4
    assert bucket["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    assert bucket["VersioningConfiguration"]["Status"] == "Enabled"
    [deny] = statements(RESOURCES["ArchiveBucketPolicy"]["Properties"]["PolicyDocument"])
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
    for name in FUNCTIONS:
        SECURITY.check_no_api_key_in_the_environment(name)


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
