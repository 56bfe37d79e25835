"""Which stack `voicebus redrive`, `replay` and `call` operate on: a deployed one, or the local one.

Where things are comes from one of three places, so the same commands work against
AWS and against `make local`:
  --stack NAME   the CloudFormation stack's outputs (your AWS credentials and region)
  --local        .voicebus/local.json, written by `make local` (moto endpoint and names)
  explicit flags --bus, --table, --queue-url
"""

from __future__ import annotations

import json
import os
import socket
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from voicebus_cli.cli_errors import CliError, LocalStackNotRunningError, UsageError
from voicebus_cli.testkey import ROOT

LOCAL_STATE_FILE = ROOT / ".voicebus" / "local.json"
STATE_FILE_VARIABLE = "VOICEBUS_LOCAL_STATE_FILE"
"""Where `--local` reads the local stack's names instead (tests, a second checkout's stack)."""


class TargetError(UsageError):
    """The command does not know which stack to talk to."""


def configure_aws(region: str | None, profile: str | None) -> None:
    """`--region` / `--profile`: set on boto3's default session, before any client is made."""
    if region or profile:
        boto3.setup_default_session(region_name=region, profile_name=profile)


@dataclass
class Target:
    """Names of a stack's resources, and the endpoint when it is the local stack."""

    bus_name: str | None = None
    table_name: str | None = None
    queue_urls: list[str] = field(default_factory=list)
    endpoint_url: str | None = None
    local: bool = False
    bus_arn: str | None = None
    archive_arn: str | None = None
    # Local stack only: "<FunctionLogicalId>/<EventName>" -> the rule's SQS queue its worker polls.
    rule_queues: dict[str, str] = field(default_factory=dict)
    function_arns: dict[str, str] = field(default_factory=dict)
    bus_record_file: Path | None = None
    # Where `voicebus redrive` parks events that failed again after its last allowed redrive.
    parking_queue_url: str | None = None

    def apply(self) -> None:
        """Point default boto3 clients at the local stack when that is the target."""
        if self.endpoint_url:
            os.environ["AWS_ENDPOINT_URL"] = self.endpoint_url
            for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
                os.environ.setdefault(name, "testing")
            os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


def from_stack_outputs(outputs: dict[str, Any]) -> Target:
    record_file = outputs.get("BusRecordFile")
    return Target(
        bus_name=outputs.get("EventBusName"),
        table_name=outputs.get("CallsTableName"),
        queue_urls=[outputs[key] for key in ("EventDeadLetterQueueUrl", "FailedInvocationQueueUrl") if key in outputs],
        endpoint_url=outputs.get("EndpointUrl"),
        bus_arn=outputs.get("EventBusArn"),
        archive_arn=outputs.get("EventArchiveArn"),
        rule_queues=dict(outputs.get("RuleQueues") or {}),
        function_arns=dict(outputs.get("FunctionArns") or {}),
        bus_record_file=Path(record_file) if record_file else None,
        parking_queue_url=outputs.get("ParkedEventQueueUrl"),
    )


def local_state_file() -> Path:
    override = os.environ.get(STATE_FILE_VARIABLE)
    return Path(override) if override else LOCAL_STATE_FILE


def load_local_state(state_file: Path | None = None) -> dict[str, Any]:
    """`.voicebus/local.json`, once its stack is known to answer."""
    state_file = state_file or local_state_file()
    if not state_file.exists():
        raise LocalStackNotRunningError(
            f"no local stack is running ({state_file} not found): start one with `make local`"
        )
    try:
        state = json.loads(state_file.read_text())
    except json.JSONDecodeError as error:
        raise CliError(f"{state_file} is not JSON ({error.msg}): restart the local stack with `make local`") from None
    if not isinstance(state, dict):
        raise CliError(f"{state_file} is not a JSON object: restart the local stack with `make local`")
    endpoint = state.get("EndpointUrl")
    if not isinstance(endpoint, str) or not endpoint:
        raise CliError(f"{state_file} names no EndpointUrl: restart the local stack with `make local`")
    if not endpoint_answers(endpoint):
        raise LocalStackNotRunningError(
            f"the local stack is not running: {state_file} names {endpoint}, which does not answer "
            "(left over from a stopped `make local`; start it again)"
        )
    return state


def endpoint_answers(url: str, timeout: float = 1.0) -> bool:
    """True when something accepts a TCP connection at the URL's host and port."""
    parsed = urllib.parse.urlsplit(url)
    if not parsed.hostname:
        return False
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def resolve_target(
    stack: str | None = None,
    local: bool = False,
    bus: str | None = None,
    table: str | None = None,
    queue_urls: list[str] | None = None,
    state_file: Path | None = None,
) -> Target:
    if local:
        target = from_stack_outputs(load_local_state(state_file))
        target.local = True
    elif stack:
        described = boto3.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]
        outputs = {item["OutputKey"]: item["OutputValue"] for item in described.get("Outputs", [])}
        target = from_stack_outputs(outputs)
    else:
        target = Target()
    target.bus_name = bus or target.bus_name
    target.table_name = table or target.table_name
    target.queue_urls = queue_urls or target.queue_urls
    return target
