"""The whole bundle on one machine: moto as AWS, the HTTP API on 127.0.0.1, workers for every rule.

Everything comes from template.yaml: resources, each function's environment and
concurrency limit, the rules and their patterns, retry counts, failure destinations
and rule dead-letter queues. Commands go to the Telnyx stand-in unless a real API key
is given. Each function runs in a pool of execution environments of its own
(`environments`), so the HTTP API never waits behind a consumer. When moto loses its
state, the stack provisions again and delivers what was not processed (`recovery`).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TextIO

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from voicebus_cli.local import command_probe
from voicebus_cli.local.bus_record import EVERY_EVENT, BusRecorder
from voicebus_cli.local.dead_letters import RuleTarget, function_arn
from voicebus_cli.local.environments import FunctionPool, SharedConcurrency
from voicebus_cli.local.http_api import LocalHttpApi
from voicebus_cli.local.journal import Journal
from voicebus_cli.local.moto_server import MotoServer
from voicebus_cli.local.provision import ProvisionedStack, provision, route_to_queue
from voicebus_cli.local.recovery import PutLog, Route, undelivered
from voicebus_cli.local.schedules import ScheduleFirer
from voicebus_cli.local.telnyx_api import TelnyxApiStandIn
from voicebus_cli.local.template import ACCOUNT_ID, Stack, load_template
from voicebus_cli.local.workers import (
    DEFAULT_ASYNC_RETRIES,
    DeadLetter,
    Invocation,
    InvocationLedger,
    RuleWorker,
    WorkerCallbacks,
    WorkerFault,
)
from voicebus_cli.testkey import ROOT, load_test_key

# An ARN, not a secret: locally the functions read TELNYX_API_KEY from the environment instead.
LOCAL_SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:voicebus-local-telnyx-api-key-AbCdEf"  # noqa: S105
# A function whose code folder has this subfolder re-imports itself when a file in it changes.
WATCHED_FOLDER = "flows"
# What functions without ReservedConcurrentExecutions share between them (AWS: the account's
# unreserved concurrency, 1,000 by default; here what one moto on a small machine keeps up with).
UNRESERVED_CONCURRENCY = 4
# The most execution environments of any one function here, the ingress's reservation (100) included:
# environments are threads of one process talking to one moto, so more of them only queue inside moto
# (where the ingress's bounded put then times out) instead of in front of the function.
MAX_LOCAL_CONCURRENCY = 8
# How often the stack looks whether moto is still there with its state.
AWS_WATCH_SECONDS = 1.0
_NO_QUEUE = frozenset({"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"})
_PROBE_CONFIG = Config(connect_timeout=1, read_timeout=3, retries={"max_attempts": 1})


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
    # Told everything that happens (webhooks, runs, commands, bus events, dead letters, reloads).
    journal: Journal | None = None
    # The webhook signing key the ingress trusts; the committed TEST key when None.
    public_key_b64: str | None = None
    # With an API key, commands go to `telnyx_base_url` (your Telnyx account) and no stand-in runs.
    telnyx_api_key: str | None = field(default=None, repr=False)
    telnyx_base_url: str | None = None
    api_port: int = 0
    # Where every event put on the bus is written as a JSON line (none when None).
    bus_record_file: Path | None = None
    # Logical id -> a folder to run that function's code from instead of the template's CodeUri.
    code_dirs: dict[str, Path] = field(default_factory=dict)
    moto: MotoServer | None = None
    telnyx_api: TelnyxApiStandIn | None = None
    provisioned: ProvisionedStack | None = None
    api: LocalHttpApi | None = None
    recorder: BusRecorder | None = None
    # Logical id -> the function's execution environments (limit: ReservedConcurrentExecutions, else
    # drawn from `unreserved_concurrency`, shared by every function without a reservation).
    functions: dict[str, FunctionPool] = field(default_factory=dict)
    unreserved_concurrency: int = UNRESERVED_CONCURRENCY
    max_concurrency: int = MAX_LOCAL_CONCURRENCY
    # Every event put on the bus from this process, and every rule's route: what a recovery delivers again.
    put_log: PutLog = field(default_factory=PutLog)
    routes: dict[str, Route] = field(default_factory=dict)
    recoveries: int = 0
    redelivered: int = 0
    workers: list[RuleWorker] = field(default_factory=list)
    # "<FunctionLogicalId>/<EventName>" -> the rule and its dead-letter paths.
    targets: dict[str, RuleTarget] = field(default_factory=dict)
    # Every run of every function behind a rule (also passed to `on_invocation`), dead letters, faults.
    ledger: InvocationLedger = field(default_factory=InvocationLedger)
    _owns_moto: bool = False
    _owns_telnyx_api: bool = False
    _stop_listening: Callable[[], None] | None = None
    _watching: threading.Event = field(default_factory=threading.Event)
    _watcher: threading.Thread | None = None
    _aws_watcher: threading.Thread | None = None
    _extra_routes: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    # Fires due step time-limit schedules, as EventBridge Scheduler does (moto only keeps them).
    schedules: ScheduleFirer | None = None

    def start(self, environ: MutableMapping[str, str]) -> LocalStack:
        """Start moto (unless given one), provision, load the functions, serve and poll.

        `environ` is updated with what points boto3 at moto (AWS_ENDPOINT_URL and credentials).
        """
        if self.moto is None:
            self.moto = MotoServer().start()
            self._owns_moto = True
        environ.update(self.moto.environment())
        self.put_log.open()
        self.provisioned = provision(Stack(load_template(), self.name, parameters=self._parameters()))
        self._mark_state()
        telnyx_env = self._telnyx_env()
        if self.journal is not None:
            self._stop_listening = command_probe.listen(self.journal.command)
        if self.bus_record_file is not None:
            self._extra_routes.append((self.ref("EventBus"), f"{self.name}-bus-record", EVERY_EVENT))
            self.recorder = BusRecorder(
                self.ref("EventBus"),
                f"{self.name}-bus-record",
                self.bus_record_file,
                on_event=self.journal.bus_event if self.journal else lambda event: None,
            ).start()
        unreserved = SharedConcurrency(self.unreserved_concurrency)
        for logical, function in self.provisioned.functions.items():
            env = {**function.environment, **telnyx_env, **self.function_env}
            code = self.code_dirs.get(logical, ROOT / function.code_uri)
            watch = code / WATCHED_FOLDER
            reserved = self._reserved_concurrency(logical)
            self.functions[logical] = FunctionPool(
                logical,
                code,
                function.handler,
                env,
                min(reserved, self.max_concurrency) if reserved else unreserved.limit,
                stdout=self.function_output,
                watch=watch if watch.is_dir() else None,
                on_reload=self.journal.reload if self.journal else None,
                shared=None if reserved else unreserved,
            )
            self.functions[logical].warm()  # a function that cannot start says so now
        self.api = LocalHttpApi(
            self.functions["IngressFunction"],
            port=self.api_port,
            on_exchange=self.journal.exchange if self.journal else None,
        ).start()
        for logical, function in self.provisioned.functions.items():
            for event_name, queue_url in function.rule_queues.items():
                self._add_worker(logical, event_name, queue_url)
        callbacks = WorkerCallbacks(self._on_invocation, self._on_dead_letter, self._on_fault)
        self.schedules = ScheduleFirer(self, callbacks).start()
        self._watcher = threading.Thread(target=self._watch_code, daemon=True, name="code-watcher")
        self._watcher.start()
        self._aws_watcher = threading.Thread(target=self._watch_aws, daemon=True, name="aws-watcher")
        self._aws_watcher.start()
        return self

    def _reserved_concurrency(self, logical: str) -> int:
        """ReservedConcurrentExecutions from the template (0 when it sets none)."""
        assert self.provisioned is not None
        stack = self.provisioned.stack
        reserved = stack.resolve(stack.resources[logical].get("Properties", {}).get("ReservedConcurrentExecutions"))
        return max(0, int(reserved)) if isinstance(reserved, int | str) else 0

    def _parameters(self) -> dict[str, str]:
        return {
            "TelnyxPublicKey": self.public_key_b64 or load_test_key().public_key_b64,
            "TelnyxApiKeySecretArn": LOCAL_SECRET_ARN,
            **self.parameters,
        }

    def _telnyx_env(self) -> dict[str, str]:
        if self.telnyx_api_key is not None:
            from voicebus.commands.client import DEFAULT_BASE_URL

            return {"TELNYX_API_KEY": self.telnyx_api_key, "TELNYX_BASE_URL": self.telnyx_base_url or DEFAULT_BASE_URL}
        if self.telnyx_api is None:
            self.telnyx_api = TelnyxApiStandIn().start()
            self._owns_telnyx_api = True
        return {"TELNYX_API_KEY": self.telnyx_api.api_key, "TELNYX_BASE_URL": self.telnyx_api.base_url}

    def add_rule(self, function: str, event_name: str, pattern: dict[str, Any]) -> RuleTarget:
        """Route more events to a function (as one more EventBridgeRule would), with its async config
        and the template's EventDeadLetterQueue as the rule's dead-letter queue."""
        rule_name = f"{self.name}-{function}-{event_name}"[:64]
        queue_url = route_to_queue(self.ref("EventBus"), rule_name, pattern)
        self._extra_routes.append((self.ref("EventBus"), rule_name, pattern))
        dead_letters = self.ref("EventDeadLetterQueue")
        return self._add_worker(function, event_name, queue_url, dead_letters, pattern)

    def _add_worker(
        self,
        logical: str,
        event_name: str,
        queue_url: str,
        dead_letter_url: str | None = None,
        pattern: dict[str, Any] | None = None,
    ) -> RuleTarget:
        target = self._target(logical, event_name, queue_url, dead_letter_url)
        self.targets[target.key] = target
        self.routes[target.key] = self._route(logical, event_name, pattern)
        callbacks = WorkerCallbacks(self._on_invocation, self._on_dead_letter, self._on_fault)
        self.workers.append(RuleWorker(self.functions[logical], target, queue_url, callbacks).start())
        return target

    def _target(self, logical: str, event_name: str, queue_url: str, dead_letter_url: str | None) -> RuleTarget:
        assert self.provisioned is not None
        stack = self.provisioned.stack
        properties: Mapping[str, Any] = stack.resources[logical].get("Properties", {})
        rule_name = queue_url.rsplit("/", 1)[-1]  # provision names the queue after its rule
        event = properties.get("Events", {}).get(event_name, {}).get("Properties", {})
        bus = str(stack.resolve(event.get("EventBusName", {"Ref": "EventBus"})))
        rule_arn = boto3.client("events").describe_rule(Name=rule_name, EventBusName=bus)["Arn"]
        if dead_letter_url is None and "DeadLetterConfig" in event:
            dead_letter_url = self._queue_url(stack.resolve(event["DeadLetterConfig"]["Arn"]))
        config = properties.get("EventInvokeConfig", {})
        destination = config.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
        arn = self.function_arns()[logical]
        alias = properties.get("AutoPublishAlias")
        return RuleTarget(
            function=logical,
            event_name=event_name,
            rule_arn=rule_arn,
            target_arn=f"{arn}:{stack.resolve(alias)}" if alias else arn,
            function_arn=arn,
            region=stack.region,
            retries=int(config.get("MaximumRetryAttempts", DEFAULT_ASYNC_RETRIES)),
            failure_queue_url=self._queue_url(stack.resolve(destination)) if destination is not None else None,
            dead_letter_queue_url=dead_letter_url,
        )

    def _route(self, logical: str, event_name: str, pattern: dict[str, Any] | None) -> Route:
        if pattern is not None:  # add_rule's: on the stack's bus
            return Route(logical, self.ref("EventBus"), pattern)
        assert self.provisioned is not None
        stack = self.provisioned.stack
        event = stack.resources[logical].get("Properties", {}).get("Events", {}).get(event_name, {})
        rule = stack.resolve(event.get("Properties", {}))
        return Route(logical, str(rule.get("EventBusName", "default")), rule["Pattern"])

    def _queue_url(self, arn: Any) -> str | None:
        assert self.provisioned is not None
        return next(
            (
                attributes["QueueUrl"]
                for attributes in self.provisioned.stack.attributes.values()
                if attributes.get("Arn") == str(arn) and "QueueUrl" in attributes
            ),
            None,
        )

    def function_arns(self) -> dict[str, str]:
        """Logical id -> the ARN the function would have (its physical name is `<stack>-<logical id>`)."""
        assert self.provisioned is not None
        region = self.provisioned.stack.region
        return {logical: function_arn(region, ACCOUNT_ID, f"{self.name}-{logical}") for logical in self.functions}

    @property
    def rule_queues(self) -> dict[str, str]:
        """ "<FunctionLogicalId>/<EventName>" -> the SQS queue URL its rule delivers to."""
        return {f"{worker.target.key}": worker.queue_url for worker in self.workers}

    # -- what the workers report

    def _on_invocation(self, run: Invocation) -> None:
        self.ledger.record(run)
        if self.journal is not None:
            self.journal.invocation(run)
        self.on_invocation(run)

    def _on_dead_letter(self, letter: DeadLetter) -> None:
        self.ledger.record_dead_letter(letter)
        if self.journal is not None:
            self.journal.dead_letter(letter)

    def _on_fault(self, fault: WorkerFault) -> None:
        self.ledger.record_fault(fault)
        if self.function_output is not None:
            self.function_output.write(f"worker fault in {fault.target.key} ({fault.stage}):\n{fault.detail}\n")
            self.function_output.flush()
        if self.journal is not None:
            self.journal.fault(fault)

    def _watch_aws(self) -> None:
        """Restart a moto that died (if this stack started it); provision again when moto lost its state."""
        while not self._watching.wait(AWS_WATCH_SECONDS):
            try:
                boto3.client("sqs", config=_PROBE_CONFIG).get_queue_url(QueueName=self._marker)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in _NO_QUEUE:
                    self._guarded(self.recover)
            except Exception:  # moto away (killed, frozen, restarting): restart it if it died
                if self._owns_moto and self.moto is not None and not self.moto.alive:
                    self._guarded(self.moto.restart)
                    if self.journal is not None:
                        self.journal.add("AWS", f"moto had stopped: restarted at {self.moto.endpoint_url}")

    @property
    def _marker(self) -> str:
        return f"{self.name}-local-state"

    def _mark_state(self) -> None:
        """A queue nothing else touches: gone means moto lost everything (a table a test deletes is not that)."""
        boto3.client("sqs").create_queue(QueueName=self._marker)

    def _guarded(self, step: Callable[[], Any]) -> None:
        try:
            step()
        except Exception as exc:  # tried again on the next look
            if self.journal is not None:
                self.journal.add("AWS", f"recovery step failed, will retry: {type(exc).__name__}: {exc}")

    def recover(self) -> int:
        """Provision the template again (same names), then deliver again what no function has processed.

        Returns how many deliveries were made again. See `recovery` for what cannot come back.
        """
        assert self.provisioned is not None
        stack = self.provisioned.stack
        if "EventBus" not in stack.physical:  # ExistingEventBusName: the named bus went with moto too
            for bus in {route.bus for route in self.routes.values()} - {"default"}:
                boto3.client("events").create_event_bus(Name=bus)
        self.provisioned = provision(Stack(load_template(), self.name, parameters=self._parameters()))
        for bus, rule_name, pattern in self._extra_routes:
            route_to_queue(bus, rule_name, pattern)
        if self.schedules is not None:
            self.schedules.create_queues()
        self._mark_state()
        ready = time.time()
        done = set(self.ledger.processed())
        for worker in self.workers:
            done |= {(worker.target.function, key) for key in worker.in_flight()}
        queues = {worker.target.key: worker.queue_url for worker in self.workers}
        sqs = boto3.client("sqs")
        again = undelivered(self.put_log.entries(before=ready), self.routes, done, stack.region)
        for route_key, event in again:
            sqs.send_message(QueueUrl=queues[route_key], MessageBody=json.dumps(event))
        self.recoveries += 1
        self.redelivered += len(again)
        if self.journal is not None:
            self.journal.add("AWS", f"moto had lost its state: provisioned again, {len(again)} deliveries made again")
        return len(again)

    def _watch_code(self) -> None:
        """Re-import changed functions between events too, so a broken flow file shows up when saved."""
        while not self._watching.wait(1.0):
            for function in list(self.functions.values()):
                try:
                    function.refresh()
                except Exception as exc:  # reported as a reload failure, never fatal
                    if self.journal is not None:
                        self.journal.reload(function.name, exc)

    @property
    def webhook_url(self) -> str:
        assert self.api is not None
        return f"{self.api.url}/webhooks/telnyx"

    def ref(self, logical_id: str) -> str:
        assert self.provisioned is not None
        return self.provisioned.ref(logical_id)

    def wait_until_idle(self, timeout: float = 30.0, quiet_for: float = 1.5) -> bool:
        """True once no worker (nor the bus recorder) has had anything to do for `quiet_for` seconds."""
        sqs = boto3.client("sqs")
        queues = [worker.queue_url for worker in self.workers]
        if self.recorder is not None:
            queues.append(self.recorder.queue_url)
        attributes: list[Literal["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]] = [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
        ]
        deadline = time.monotonic() + timeout
        quiet_since: float | None = None
        while time.monotonic() < deadline:
            pending = any(worker.busy for worker in self.workers) or any(
                int(sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=attributes)["Attributes"].get(name, "0"))
                for queue in queues
                for name in attributes
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
        """Workers first (nothing new runs), then what they talk to, moto last."""
        self._watching.set()
        if self.schedules is not None:
            self.schedules.stop()
        for worker in self.workers:
            worker.stop()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        if self._aws_watcher is not None:
            self._aws_watcher.join(timeout=5)
        self.put_log.close()
        if self.recorder is not None:
            self.recorder.stop()
        if self.api is not None:
            self.api.stop()
        if self._stop_listening is not None:
            self._stop_listening()
        if self._owns_telnyx_api and self.telnyx_api is not None:
            self.telnyx_api.stop()
        if self._owns_moto and self.moto is not None:
            self.moto.stop()

    def __enter__(self) -> LocalStack:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()
