"""The whole bundle on one machine: moto as AWS, the HTTP API on 127.0.0.1, workers for every rule.

Everything comes from template.yaml: resources, each function's environment,
the rules and their patterns, retry counts and failure destinations.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TextIO

from voicebus_cli.local.functions import LoadedFunction
from voicebus_cli.local.http_api import LocalHttpApi
from voicebus_cli.local.moto_server import MotoServer
from voicebus_cli.local.provision import ProvisionedStack, provision
from voicebus_cli.local.telnyx_api import TelnyxApiStandIn
from voicebus_cli.local.template import Stack, load_template
from voicebus_cli.local.workers import DEFAULT_ASYNC_RETRIES, Invocation, InvocationLedger, RuleWorker
from voicebus_cli.testkey import load_test_key

# An ARN, not a secret: locally the functions read TELNYX_API_KEY from the environment instead.
LOCAL_SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:voicebus-local-telnyx-api-key-AbCdEf"  # noqa: S105


@dataclass
class LocalStack:
    """Starts everything it needs and stops everything it started."""

    name: str = field(default_factory=lambda: f"voicebus-{uuid.uuid4().hex[:6]}")
    parameters: dict[str, str] = field(default_factory=dict)
    # Extra environment for every function (e.g. the Telnyx stand-in's URL and key).
    function_env: dict[str, str] = field(default_factory=dict)
    on_invocation: Callable[[Invocation], None] = lambda invocation: None
    # The functions' logs and EMF metrics (CloudWatch's job in AWS); stdout when None.
    function_output: TextIO | None = None
    moto: MotoServer | None = None
    telnyx_api: TelnyxApiStandIn | None = None
    provisioned: ProvisionedStack | None = None
    api: LocalHttpApi | None = None
    functions: dict[str, LoadedFunction] = field(default_factory=dict)
    workers: list[RuleWorker] = field(default_factory=list)
    # Every run of every function behind a rule (also passed to `on_invocation`).
    ledger: InvocationLedger = field(default_factory=InvocationLedger)
    _owns_moto: bool = False
    _owns_telnyx_api: bool = False

    def start(self, environ: dict[str, str]) -> LocalStack:
        """Start moto (unless given one), provision, load the functions, serve and poll.

        `environ` is updated with what points boto3 at moto (AWS_ENDPOINT_URL and credentials).
        """
        if self.moto is None:
            self.moto = MotoServer().start()
            self._owns_moto = True
        environ.update(self.moto.environment())
        if self.telnyx_api is None:
            self.telnyx_api = TelnyxApiStandIn().start()
            self._owns_telnyx_api = True
        telnyx_env = {"TELNYX_API_KEY": self.telnyx_api.api_key, "TELNYX_BASE_URL": self.telnyx_api.base_url}
        parameters = {
            "TelnyxPublicKey": load_test_key().public_key_b64,
            "TelnyxApiKeySecretArn": LOCAL_SECRET_ARN,
            **self.parameters,
        }
        self.provisioned = provision(Stack(load_template(), self.name, parameters=parameters))
        for logical, function in self.provisioned.functions.items():
            env = {**function.environment, **telnyx_env, **self.function_env}
            self.functions[logical] = LoadedFunction(
                logical, function.code_uri, function.handler, env, stdout=self.function_output
            )
        self.api = LocalHttpApi(self.functions["IngressFunction"]).start()
        for logical, function in self.provisioned.functions.items():
            retries, failure_queue = self._async_config(logical)
            for queue_url in function.rule_queues.values():
                worker = RuleWorker(self.functions[logical], queue_url, retries, failure_queue, self._journal)
                self.workers.append(worker.start())
        return self

    def _journal(self, run: Invocation) -> None:
        self.ledger.record(run)
        self.on_invocation(run)

    def _async_config(self, logical: str) -> tuple[int, str | None]:
        assert self.provisioned is not None
        properties: Mapping[str, Any] = self.provisioned.stack.resources[logical].get("Properties", {})
        config = {
            **self.provisioned.stack.template.get("Globals", {}).get("Function", {}).get("EventInvokeConfig", {}),
            **properties.get("EventInvokeConfig", {}),
        }
        retries = int(config.get("MaximumRetryAttempts", DEFAULT_ASYNC_RETRIES))
        destination = config.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
        queue_url = None
        if destination is not None:
            arn = str(self.provisioned.stack.resolve(destination))
            queue_url = next(
                (
                    self.provisioned.stack.attributes[name]["QueueUrl"]
                    for name, attributes in self.provisioned.stack.attributes.items()
                    if attributes.get("Arn") == arn and "QueueUrl" in attributes
                ),
                None,
            )
        return retries, queue_url

    @property
    def webhook_url(self) -> str:
        assert self.api is not None
        return f"{self.api.url}/webhooks/telnyx"

    def ref(self, logical_id: str) -> str:
        assert self.provisioned is not None
        return self.provisioned.ref(logical_id)

    def wait_until_idle(self, timeout: float = 30.0, quiet_for: float = 1.5) -> bool:
        """True once no worker has had anything to do for `quiet_for` seconds."""
        import boto3

        sqs = boto3.client("sqs")
        deadline = time.monotonic() + timeout
        quiet_since: float | None = None
        while time.monotonic() < deadline:
            pending = any(worker.busy for worker in self.workers) or any(
                int(
                    sqs.get_queue_attributes(
                        QueueUrl=worker.queue_url,
                        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
                    )["Attributes"].get(attribute, "0")
                )
                for worker in self.workers
                for attribute in ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible")
            )
            now = time.monotonic()
            if pending:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = now
            elif now - quiet_since >= quiet_for:
                return True
            time.sleep(0.1)
        return False

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        if self.api is not None:
            self.api.stop()
        if self._owns_moto and self.moto is not None:
            self.moto.stop()
        if self._owns_telnyx_api and self.telnyx_api is not None:
            self.telnyx_api.stop()

    def __enter__(self) -> LocalStack:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()
