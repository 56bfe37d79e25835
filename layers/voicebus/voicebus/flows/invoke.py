"""Calling your Lambda function from a flow's `invoke` step: synchronously, within a time budget.

The call-control function may invoke only the functions the stack names
(template parameter `InvokableFunctionArns`: its IAM policy lists exactly those, and
`INVOKABLE_FUNCTIONS` tells this module, so a flow naming another function fails
with a clear reason rather than an AccessDenied). The client never retries (a
retry would run your code twice and overrun the budget); an error, a timeout or a
result that is not a JSON object is an `InvokeResult` with `error`, and the step
takes its `on_error` branch.

The Lambda endpoint is boto3's: `AWS_ENDPOINT_URL_LAMBDA` (or `AWS_ENDPOINT_URL`)
points it elsewhere, as the tests do at a local server speaking the Invoke API.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from voicebus.flows.decision import InvokeRequest, InvokeResult

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient

ALLOWED_VARIABLE = "INVOKABLE_FUNCTIONS"
CONNECT_TIMEOUT_SECONDS = 1.0
MAX_RESULT_BYTES = 64 * 1024


def function_name(reference: str) -> str:
    """The function name in a name, a partial ARN or a full ARN (a version or alias qualifier dropped)."""
    parts = reference.split(":")
    if reference.startswith("arn:") and len(parts) >= 7:
        return parts[6]
    return parts[0] if len(parts) <= 2 else parts[2]


class LambdaInvoker:
    """Invokes the named functions with RequestResponse; one per container (a client per time budget)."""

    def __init__(self, allowed: frozenset[str] | None = None, region: str | None = None) -> None:
        """`allowed`: function names that may be invoked (None: any; the IAM policy still decides)."""
        self.allowed = allowed
        self._region = region
        self._clients: dict[int, LambdaClient] = {}

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> LambdaInvoker:
        environ = os.environ if environ is None else environ
        names = frozenset(name.strip() for name in environ.get(ALLOWED_VARIABLE, "").split(",") if name.strip())
        return cls(frozenset(function_name(name) for name in names))

    def _client(self, timeout_millis: int) -> LambdaClient:
        client = self._clients.get(timeout_millis)
        if client is None:
            config = Config(
                connect_timeout=CONNECT_TIMEOUT_SECONDS,
                read_timeout=max(timeout_millis / 1000, 0.1),
                retries={"total_max_attempts": 1, "mode": "standard"},
            )
            client = boto3.client("lambda", region_name=self._region, config=config)
            self._clients[timeout_millis] = client
        return client

    def __call__(self, request: InvokeRequest) -> InvokeResult:
        name = function_name(request.function)
        if self.allowed is not None and name not in self.allowed:
            shown = ", ".join(sorted(self.allowed)) or "none"
            return InvokeResult(error=f"{name} is not in {ALLOWED_VARIABLE} (allowed: {shown})")
        try:
            response = self._client(request.timeout_millis).invoke(
                FunctionName=request.function,
                InvocationType="RequestResponse",
                Payload=json.dumps(request.payload).encode(),
            )
            body = response["Payload"].read(MAX_RESULT_BYTES + 1)
        except (ClientError, BotoCoreError) as exc:  # a timeout is a ReadTimeoutError (BotoCoreError)
            return InvokeResult(error=f"invoking {name}: {type(exc).__name__}: {exc}")
        if "FunctionError" in response:
            return InvokeResult(error=f"{name} raised {response['FunctionError']}: {_short(body)}")
        if len(body) > MAX_RESULT_BYTES:
            return InvokeResult(error=f"{name} answered more than {MAX_RESULT_BYTES} bytes")
        try:
            value: Any = json.loads(body or b"null")
        except ValueError:
            return InvokeResult(error=f"{name} did not answer JSON: {_short(body)}")
        if not isinstance(value, dict):
            return InvokeResult(error=f"{name} answered {type(value).__name__}, not a JSON object")
        return InvokeResult(value=value)


def _short(body: bytes) -> str:
    text = body.decode("utf-8", "replace")
    return text if len(text) <= 200 else text[:197] + "..."
