"""Failure behaviour shown, not promised: injected faults, Telnyx's retries, redrive, replay.

Everything runs through the local stack over HTTP: the ingress, the bus and rules in
moto, the functions, DynamoDB. Figures go to the reliability summary at the end of
the pytest run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.exceptions import EndpointConnectionError, ReadTimeoutError

from tests.support.calls import CallScript
from tests.support.report import figures
from voicebus.calls.store import CallStatus, CallStore
from voicebus.ingress.receiver import IngressSettings, WebhookIngress
from voicebus.ingress.signature import sign
from voicebus_cli.demo import post
from voicebus_cli.local.moto_server import MotoServer
from voicebus_cli.local.stack import LocalStack
from voicebus_cli.local.storage import StorageServer
from voicebus_cli.operations import Target, redrive
from voicebus_cli.testkey import TestKeyPair
from voicebus_cli.webhooks import compact

pytestmark = pytest.mark.integration

CONSUMER_SERVICES = ["call_control", "media", "recording", "fork", "streaming", "transcription", "refer", "siprec"]


class ProcessingLog:
    """Counts each consumer's "event recorded" lines (logged only when an event is really processed)."""

    def __init__(self) -> None:
        self.processed: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    def attach(self) -> None:
        # One handler per service: Powertools keeps the appended keys (webhook_id) in each
        # logger's own formatter.
        for service in CONSUMER_SERVICES:
            logger = logging.getLogger(service)
            logger.addHandler(_ServiceLines(self, service, logger.handlers[0].formatter))

    def count(self, service: str, webhook_id: str) -> None:
        with self._lock:
            self.processed[(service, webhook_id)] += 1


class _ServiceLines(logging.Handler):
    def __init__(self, log: ProcessingLog, service: str, formatter: logging.Formatter | None) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(formatter)
        self._log = log
        self._service = service

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == "event recorded":
            self._log.count(self._service, json.loads(self.format(record))["webhook_id"])


class FlakyEvents:
    """An EventBridge client that fails a share of puts in the three ways a put can fail."""

    def __init__(self, client: Any, rate: float, seed: int = 11) -> None:
        self._client = client
        self._rate = rate
        self._random = random.Random(seed)
        self.injected: Counter[str] = Counter()

    def put_events(self, **kwargs: Any) -> Any:
        roll = self._random.random()
        if roll < self._rate / 3:
            self.injected["connection error before the put"] += 1
            raise EndpointConnectionError(endpoint_url="https://events.local")
        if roll < 2 * self._rate / 3:
            self.injected["entry refused (FailedEntryCount 1)"] += 1
            return {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "InternalFailure", "ErrorMessage": "x"}]}
        response = self._client.put_events(**kwargs)
        if roll < self._rate:
            self.injected["put done, answer lost (timeout)"] += 1
            raise ReadTimeoutError(endpoint_url="https://events.local")
        return response


class DynamoOutage:
    """While on, writes to one table fail as DynamoDB throttling (after the SDK's own retries)."""

    def __init__(self) -> None:
        self.on = threading.Event()
        self.table: str | None = None
        self.refused = 0

    def refuse(self, params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        """A botocore `before-call` handler: `params` is the serialised request."""
        if not self.on.is_set() or json.loads(params.get("body") or b"{}").get("TableName") != self.table:
            return None
        self.refused += 1
        error = {"Code": "ProvisionedThroughputExceededException", "Message": "Rate of requests exceeds throughput"}
        response = AWSResponse("https://dynamodb.local", 400, HTTPHeaders(), None)
        return response, {"Error": error, "ResponseMetadata": {"HTTPStatusCode": 400}}


@pytest.fixture
def outage() -> Iterator[DynamoOutage]:
    """Registered on the default boto3 session before the functions create their clients."""
    injector = DynamoOutage()
    if boto3.DEFAULT_SESSION is None:
        boto3.setup_default_session()
    session = boto3.DEFAULT_SESSION
    assert session is not None
    for operation in ("UpdateItem", "PutItem"):
        session.events.register(f"before-call.dynamodb.{operation}", injector.refuse)  # type: ignore[arg-type]
    yield injector
    for operation in ("UpdateItem", "PutItem"):
        session.events.unregister(f"before-call.dynamodb.{operation}", injector.refuse)  # type: ignore[arg-type]


@pytest.fixture
def running(moto_server: MotoServer, outage: DynamoOutage) -> Iterator[tuple[LocalStack, ProcessingLog]]:
    log = ProcessingLog()
    with LocalStack(moto=moto_server) as stack:
        stack.start(dict(os.environ))
        outage.table = stack.ref("CallsTable")
        log.attach()
        yield stack, log


def deliver_like_telnyx(stack: LocalStack, key: TestKeyPair, webhook: dict[str, Any], limit: int = 30) -> int:
    """POST until 2xx, re-signing each attempt and counting it in meta.attempt; returns attempts."""
    for attempt in range(1, limit + 1):
        webhook["meta"]["attempt"] = attempt
        body = compact(webhook)
        status, _ = post(stack.webhook_url, body, sign(body, key.signing_key, int(time.time())))
        if status == 200:
            return attempt
        assert status >= 500, f"a retryable failure must be a 5xx, got {status}"
    raise AssertionError(f"{webhook['data']['id']} never accepted")


def test_put_failures_and_a_dynamodb_outage_lose_nothing_and_process_once(
    running: tuple[LocalStack, ProcessingLog], outage: DynamoOutage, test_key: TestKeyPair
) -> None:
    stack, log = running
    row = figures("put faults + outage + redrive")
    ingress_module = stack.functions["IngressFunction"].module
    flaky = FlakyEvents(boto3.client("events"), rate=0.35)
    settings = IngressSettings.from_env(stack.functions["IngressFunction"].env)
    ingress_module.__dict__["ingress"] = WebhookIngress.from_settings(
        settings,
        flaky,  # type: ignore[arg-type]
        ingress_module.logger,
        ingress_module.metrics,
    )

    calls = [CallScript() for _ in range(6)]
    webhooks = [webhook for script in calls for webhook in script.basic_call()]
    attempts = Counter[int]()
    for index, webhook in enumerate(webhooks):
        # The calls table goes down for a stretch in the middle of the run.
        if index == len(webhooks) // 3:
            outage.on.set()
        if index == len(webhooks) // 2:
            assert stack.wait_until_idle(timeout=90)
            outage.on.clear()
        attempts[deliver_like_telnyx(stack, test_key, webhook)] += 1
    assert stack.wait_until_idle(timeout=90)

    # What the outage dead-lettered goes back on the bus, once the table is healthy.
    queues = [stack.ref("FailedInvocationQueue"), stack.ref("EventDeadLetterQueue")]
    report = redrive(Target(bus_name=stack.ref("EventBus"), queue_urls=queues), dry_run=False)
    assert report.redriven > 0, "the outage should have dead-lettered something"
    assert stack.wait_until_idle(timeout=90)

    store = CallStore(boto3.client("dynamodb"), stack.ref("CallsTable"))
    processed = log.processed
    lost = [w["data"]["id"] for w in webhooks if not any(wid == w["data"]["id"] for _, wid in processed)]
    duplicated = [key for key, count in processed.items() if count > 1]
    row.tried += len(webhooks)
    row.accepted += len(webhooks)
    row.lost += len(lost)
    row.duplicated += len(duplicated)
    row.notes += [f"{kind}: {count}" for kind, count in flaky.injected.items()]
    row.notes.append(f"Telnyx attempts per webhook: {dict(sorted(attempts.items()))}")
    row.notes.append(f"writes refused in the outage: {outage.refused}; redriven from DLQs: {report.redriven}")
    assert sum(flaky.injected.values()) > 10
    assert flaky.injected["put done, answer lost (timeout)"] > 0
    types = {w["data"]["id"]: w["data"]["event_type"] for w in webhooks}
    assert [types[i] for i in lost] == []
    assert [(service, types.get(wid), processed[(service, wid)]) for service, wid in duplicated] == []
    for script in calls:
        record = store.get_call(script.call_control_id)
        assert record is not None
        assert record.status is not None
        assert (record.status.value, record.status.hangup_cause) == (CallStatus.HUNG_UP, "normal_clearing")
        assert record.client_state is not None
        assert record.client_state.value == {"step": "voicemail"}
        timeline = [entry.event_id for entry in store.timeline(script.call_control_id)]
        assert timeline == [w["data"]["id"] for w in script.webhooks]


def test_a_replayed_request_is_deduplicated_within_the_window_and_refused_after(
    moto_server: MotoServer, test_key: TestKeyPair
) -> None:
    row = figures("replay")
    log = ProcessingLog()
    # A 3-second window keeps the test short; the rule is the same at 300 s.
    with LocalStack(moto=moto_server, function_env={"WEBHOOK_TOLERANCE_SECONDS": "3"}) as stack:
        stack.start(dict(os.environ))
        log.attach()
        webhook = CallScript().event("call.answered")
        body = compact(webhook)
        captured = sign(body, test_key.signing_key, int(time.time()))

        statuses = [post(stack.webhook_url, body, captured)[0] for _ in range(3)]
        assert stack.wait_until_idle(timeout=60)
        time.sleep(4.5)
        late_status, late_answer = post(stack.webhook_url, body, captured)

    row.tried += 4
    row.accepted += statuses.count(200)
    row.rejected[late_answer.get("error", "?")] += 1
    row.duplicated += sum(count - 1 for count in log.processed.values() if count > 1)
    assert statuses == [200, 200, 200]
    assert log.processed == Counter({("call_control", webhook["data"]["id"]): 1})
    assert (late_status, late_answer["error"]) == (401, "stale_timestamp")


class S3Outage:
    """While on, uploads to one bucket fail as S3 503 SlowDown (after the SDK's own retries)."""

    def __init__(self) -> None:
        self.on = threading.Event()
        self.bucket: str | None = None
        self.refused = 0

    def refuse(self, params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        """A botocore `before-call` handler: `params` is the serialised request."""
        if not self.on.is_set() or not self.bucket or f"/{self.bucket}" not in str(params.get("url", "")):
            return None
        self.refused += 1
        response = AWSResponse("https://s3.local", 503, HTTPHeaders(), None)
        return response, {"Error": {"Code": "SlowDown", "Message": "Please reduce your request rate."}}


def test_s3_errors_while_archiving_are_retried_dead_lettered_and_redriven(
    moto_server: MotoServer, test_key: TestKeyPair, storage: StorageServer
) -> None:
    row = figures("S3 outage while archiving")
    outage = S3Outage()
    if boto3.DEFAULT_SESSION is None:
        boto3.setup_default_session()
    session = boto3.DEFAULT_SESSION
    assert session is not None
    operations = ("PutObject", "CreateMultipartUpload", "UploadPart")
    for operation in operations:
        session.events.register(f"before-call.s3.{operation}", outage.refuse)  # type: ignore[arg-type]
    try:
        with LocalStack(moto=moto_server) as stack:
            stack.start(dict(os.environ))
            outage.bucket = stack.ref("ArchiveBucket")
            recordings = {}
            calls = [CallScript() for _ in range(3)]
            outage.on.set()
            for script in calls:
                published = storage.publish(f"outage-{script.session}", 9 * 1024 * 1024)  # two parts
                recordings[script.call_control_id] = published
                for webhook in script.basic_call(recording_url=published.url):
                    deliver_like_telnyx(stack, test_key, webhook)
            assert stack.wait_until_idle(timeout=90)
            outage.on.clear()
            queues = [stack.ref("FailedInvocationQueue"), stack.ref("EventDeadLetterQueue")]
            report = redrive(Target(bus_name=stack.ref("EventBus"), queue_urls=queues), dry_run=False)
            assert stack.wait_until_idle(timeout=90)

            s3 = boto3.client("s3")
            bucket = stack.ref("ArchiveBucket")
            store = CallStore(boto3.client("dynamodb"), stack.ref("CallsTable"))
            archived = 0
            for script in calls:
                record = store.get_call(script.call_control_id)
                assert record is not None
                [recording] = record.recordings
                where = (recording.model_extra or {})["archive"]["mp3"]
                key = where["s3_uri"].split("/", 3)[3]
                body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
                assert (
                    hashlib.sha256(body).hexdigest() == recordings[script.call_control_id].sha256() == where["sha256"]
                )
                archived += 1
            assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    finally:
        for operation in operations:
            session.events.unregister(f"before-call.s3.{operation}", outage.refuse)  # type: ignore[arg-type]

    row.tried += len(calls)
    row.accepted += archived
    row.lost += len(calls) - archived
    row.notes.append(f"uploads refused by the outage: {outage.refused}; redriven from DLQs: {report.redriven}")
    assert report.redriven == len(calls)
    assert outage.refused >= 3 * len(calls)  # first try + Lambda's 2 retries, each refused
