"""Creating template.yaml's resources in moto server, from the template's own properties.

Each supported resource type maps its CloudFormation properties onto the API
call that creates it; the function's environment and the EventBridge rules come
from the same template, so the local stack cannot drift from what `sam deploy`
creates. Rules that target Lambda in AWS target an SQS queue here, which a local
worker polls (moto's Lambda needs Docker).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3

from voicebus_cli.local.template import ACCOUNT_ID, Stack, TemplateError

RULE_QUEUE_VISIBILITY_SECONDS = 30


@dataclass(frozen=True)
class LocalFunction:
    """One AWS::Serverless::Function as the local stack runs it."""

    logical_id: str
    code_uri: str
    handler: str
    environment: dict[str, str]
    # Rule name -> SQS queue URL that stands in for the Lambda target.
    rule_queues: dict[str, str] = field(default_factory=dict)


@dataclass
class ProvisionedStack:
    stack: Stack
    functions: dict[str, LocalFunction] = field(default_factory=dict)

    def ref(self, logical_id: str) -> str:
        return self.stack.physical[logical_id]


def _bus(stack: Stack, logical: str, props: dict[str, Any]) -> None:
    name = str(stack.resolve(props["Name"]))
    arn = boto3.client("events").create_event_bus(Name=name)["EventBusArn"]
    stack.physical[logical] = name
    stack.attributes[logical] = {"Arn": arn, "Name": name}


def _table(stack: Stack, logical: str, props: dict[str, Any]) -> None:
    props = stack.resolve(props)
    name = str(props.get("TableName") or f"{stack.name}-{logical}")
    client = boto3.client("dynamodb")
    kwargs: dict[str, Any] = {
        "TableName": name,
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": props.get("BillingMode", "PROVISIONED"),
    }
    if "GlobalSecondaryIndexes" in props:
        kwargs["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
    if props.get("SSESpecification", {}).get("SSEEnabled"):
        kwargs["SSESpecification"] = {"Enabled": True}
    arn = client.create_table(**kwargs)["TableDescription"]["TableArn"]
    ttl = props.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled"):
        client.update_time_to_live(
            TableName=name,
            TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
        )
    stack.physical[logical] = name
    stack.attributes[logical] = {"Arn": arn}


def _bucket(stack: Stack, logical: str, props: dict[str, Any]) -> None:
    props = stack.resolve(props)
    name = str(props.get("BucketName") or f"{stack.name}-{logical}").lower()
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=name)
    encryption = props.get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration")
    if encryption:
        encryption_rules: list[Any] = [
            {
                "ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"],
                "BucketKeyEnabled": bool(rule.get("BucketKeyEnabled", False)),
            }
            for rule in encryption
        ]
        configuration: Any = {"Rules": encryption_rules}
        s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration=configuration)
    if "PublicAccessBlockConfiguration" in props:
        s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=props["PublicAccessBlockConfiguration"])
    if "OwnershipControls" in props:
        s3.put_bucket_ownership_controls(Bucket=name, OwnershipControls=props["OwnershipControls"])
    if "LifecycleConfiguration" in props:
        rules: list[Any] = [_lifecycle_rule(rule) for rule in props["LifecycleConfiguration"]["Rules"]]
        s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={"Rules": rules})
    if "VersioningConfiguration" in props:
        s3.put_bucket_versioning(
            Bucket=name, VersioningConfiguration={"Status": props["VersioningConfiguration"]["Status"]}
        )
    stack.physical[logical] = name
    stack.attributes[logical] = {"Arn": f"arn:aws:s3:::{name}", "BucketName": name}


def _lifecycle_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """CloudFormation's lifecycle rule shape as the S3 API takes it."""
    api: dict[str, Any] = {"ID": rule["Id"], "Status": rule["Status"], "Filter": {"Prefix": rule.get("Prefix", "")}}
    if "AbortIncompleteMultipartUpload" in rule:
        api["AbortIncompleteMultipartUpload"] = rule["AbortIncompleteMultipartUpload"]
    if "NoncurrentVersionExpiration" in rule:
        api["NoncurrentVersionExpiration"] = {"NoncurrentDays": rule["NoncurrentVersionExpiration"]["NoncurrentDays"]}
    if "Transitions" in rule:
        api["Transitions"] = [
            {"Days": int(t["TransitionInDays"]), "StorageClass": t["StorageClass"]} for t in rule["Transitions"]
        ]
    if "ExpirationInDays" in rule:
        api["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
    return api


def _bucket_policy(stack: Stack, logical: str, props: dict[str, Any]) -> None:
    """The bucket policy, less TLS-only statements: moto serves plain HTTP, so they would deny every call."""
    props = stack.resolve(props)
    document = dict(props["PolicyDocument"])
    document["Statement"] = [
        statement
        for statement in document["Statement"]
        if statement.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") != "false"
    ]
    if document["Statement"]:
        boto3.client("s3").put_bucket_policy(Bucket=props["Bucket"], Policy=json.dumps(document))
    stack.physical[logical] = str(props["Bucket"])


def _queue(stack: Stack, logical: str, props: dict[str, Any]) -> None:
    props = stack.resolve(props)
    name = str(props.get("QueueName") or f"{stack.name}-{logical}")
    url = boto3.client("sqs").create_queue(QueueName=name)["QueueUrl"]
    stack.physical[logical] = url
    stack.attributes[logical] = {
        "Arn": f"arn:aws:sqs:{stack.region}:{ACCOUNT_ID}:{name}",
        "QueueName": name,
        "QueueUrl": url,
    }


def _no_local_counterpart(stack: Stack, logical: str, props: dict[str, Any]) -> None:
    """Resources with nothing to create locally still get a name for !Ref.

    Among them: the bus's archive (local replays read the bus record instead) and the
    schema registry's nested stack (moto has no EventSchemas).
    """
    stack.physical[logical] = f"{stack.name}-{logical}"
    stack.attributes[logical] = {"Arn": f"arn:aws:local:{stack.region}:{ACCOUNT_ID}:{logical}"}


def _schedule_group(stack: Stack, logical: str, props: dict[str, Any]) -> None:
    """The IVR's step-timeout schedule group: moto keeps schedules (voicebus.flows.timeouts.fire_due runs them)."""
    props = stack.resolve(props)
    name = str(props.get("Name") or f"{stack.name}-{logical}")
    arn = boto3.client("scheduler").create_schedule_group(Name=name)["ScheduleGroupArn"]
    stack.physical[logical] = name
    stack.attributes[logical] = {"Arn": arn}


PROVISIONERS: dict[str, Callable[[Stack, str, dict[str, Any]], None]] = {
    "AWS::Scheduler::ScheduleGroup": _schedule_group,
    "AWS::Events::EventBus": _bus,
    "AWS::DynamoDB::Table": _table,
    "AWS::S3::Bucket": _bucket,
    "AWS::S3::BucketPolicy": _bucket_policy,
    "AWS::SQS::Queue": _queue,
}


def provision(stack: Stack) -> ProvisionedStack:
    """Create every supported resource, then bind each function's env and rules."""
    # A resource whose Condition fails is not created (the bus, when ExistingEventBusName names one).
    pending = {logical: resource for logical, resource in stack.resources.items() if stack.includes(resource)}
    while pending:
        progressed = False
        for logical, resource in list(pending.items()):
            kind = resource["Type"]
            if kind == "AWS::Serverless::Function":
                pending.pop(logical)
                progressed = True
                continue
            provisioner = PROVISIONERS.get(kind, _no_local_counterpart)
            try:
                provisioner(stack, logical, resource.get("Properties", {}))
            except TemplateError:
                continue  # refers to something not created yet; try again next pass
            pending.pop(logical)
            progressed = True
        if not progressed:
            raise TemplateError(f"cannot resolve references among {sorted(pending)}")
    provisioned = ProvisionedStack(stack)
    for logical, resource in stack.resources.items():
        if resource["Type"] == "AWS::Serverless::Function" and stack.includes(resource):
            provisioned.functions[logical] = _function(stack, logical, resource.get("Properties", {}))
    return provisioned


UNSET_WHEN_EMPTY = frozenset({"AWS_ENDPOINT_URL", "TELNYX_BASE_URL"})
"""Variables template.yaml declares empty so that `sam local --env-vars` may set them."""
LOCAL_VALUES = {"RECORDING_HTTP_HOSTS": "127.0.0.1"}
"""Set here where template.yaml declares them empty: the local recording storage serves plain http on 127.0.0.1."""


def function_environment(stack: Stack, props: dict[str, Any]) -> dict[str, str]:
    """Globals' variables overlaid with the function's own, resolved to local names."""
    global_vars = stack.template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    own_vars = props.get("Environment", {}).get("Variables", {})
    resolved = {name: str(stack.resolve(value)) for name, value in {**global_vars, **own_vars}.items()}
    resolved.update({name: value for name, value in LOCAL_VALUES.items() if resolved.get(name) == ""})
    # Declared empty for `sam local --env-vars` only: empty means unset, and must not hide the local endpoints.
    return {name: value for name, value in resolved.items() if value or name not in UNSET_WHEN_EMPTY}


def _function(stack: Stack, logical: str, props: dict[str, Any]) -> LocalFunction:
    rule_queues: dict[str, str] = {}
    for event_name, event in props.get("Events", {}).items():
        if event["Type"] != "EventBridgeRule":
            continue
        rule_props = stack.resolve(event["Properties"])
        rule_name = f"{stack.name}-{logical}-{event_name}"[:64]
        rule_queues[event_name] = route_to_queue(
            bus_name=str(rule_props.get("EventBusName", "default")),
            rule_name=rule_name,
            pattern=rule_props["Pattern"],
        )
    return LocalFunction(
        logical_id=logical,
        code_uri=str(props["CodeUri"]),
        handler=str(props.get("Handler", "app.lambda_handler")),
        environment=function_environment(stack, props),
        rule_queues=rule_queues,
    )


def route_to_queue(bus_name: str, rule_name: str, pattern: dict[str, Any]) -> str:
    """A rule on `bus_name` with `pattern`, delivering to a new SQS queue; returns its URL."""
    sqs = boto3.client("sqs")
    events = boto3.client("events")
    # A message stays invisible while its worker holds it (runs, retries, waits for AWS to take a
    # dead letter): the worker renews this before it runs out, and deletes the message once settled.
    visibility = str(RULE_QUEUE_VISIBILITY_SECONDS)
    queue_url = sqs.create_queue(QueueName=rule_name, Attributes={"VisibilityTimeout": visibility})["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name=rule_name, EventBusName=bus_name, EventPattern=json.dumps(pattern))
    events.put_targets(Rule=rule_name, EventBusName=bus_name, Targets=[{"Id": "local-worker", "Arn": queue_arn}])
    return queue_url
