"""Failure behaviour shown, not promised: injected faults, Telnyx's retries, redrive, replay.

Everything runs through the local stack over HTTP: the ingress, the bus and rules in
moto, the functions, DynamoDB. Figures go to the reliability summary at the end of
the pytest run.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.exceptions import EndpointConnectionError, ReadTimeoutError

from tests.support.calls import CallScript, as_bus_event, in_order_state, recorded_state
from tests.support.report import figures
from tests.support.routing import targets
from tests.support.security import guarded_functions
from voicebus.calls.records import CallStatus
from voicebus.calls.store import CallStore
from voicebus.ingress.receiver import WebhookIngress
from voicebus.ingress.settings import IngressSettings
from voicebus.ingress.signature import sign
from voicebus_cli.demo import post
from voicebus_cli.local.moto_server import MotoServer
from voicebus_cli.local.stack import LocalStack
from voicebus_cli.local.storage import StorageServer
from voicebus_cli.operations import Target
from voicebus_cli.redrive import redrive
from voicebus_cli.testkey import TestKeyPair
from voicebus_cli.webhooks import compact

pytestmark = pytest.mark.integration


def use_ingress(stack: LocalStack, client: Any, clock: Callable[[], float] = time.time) -> None:
    """Rebuild the ingress in every execution environment (and each later cold start) from its own
    settings, with `client` for puts and `clock` for the window."""
    function = stack.functions["IngressFunction"]
    settings = IngressSettings.from_env(function.env)

    def rebuild(module: ModuleType) -> None:
        ingress = WebhookIngress.from_settings(settings, client, module.logger, module.metrics, clock)
        module.__dict__["ingress"] = ingress

    function.on_init(rebuild)


class Clock:
    """The ingress's clock, set by the test: the replay window without waiting for it."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def expected_processing(webhooks: list[dict[str, Any]]) -> Counter[tuple[str, str]]:
    """Once per function that template.yaml's rules route each webhook to."""
    return Counter(
        {(function, webhook["data"]["id"]): 1 for webhook in webhooks for function in targets(as_bus_event(webhook))}
    )


class FlakyEvents:
    """An EventBridge client that fails a share of puts in the three ways a put can fail."""

    def __init__(self, client: Any, rate: float, seed: int = 11) -> None:
        self._client = client
        self._rate = rate
        self._random = random.Random(seed)
        self.injected: Counter[str] = Counter()
        # Webhook id -> puts that reached the bus (more than one when an answer was lost).
        self.on_bus: Counter[str] = Counter()

    def put_events(self, **kwargs: Any) -> Any:
        roll = self._random.random()
        if roll < self._rate / 3:
            self.injected["connection error before the put"] += 1
            raise EndpointConnectionError(endpoint_url="https://events.local")
        if roll < 2 * self._rate / 3:
            self.injected["entry refused (FailedEntryCount 1)"] += 1
            return {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "InternalFailure", "ErrorMessage": "x"}]}
        response = self._client.put_events(**kwargs)
        if response["FailedEntryCount"] == 0:
            self.on_bus.update(json.loads(entry["Detail"])["data"]["id"] for entry in kwargs["Entries"])
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
def running(moto_server: MotoServer, outage: DynamoOutage) -> Iterator[LocalStack]:
    with LocalStack(moto=moto_server) as stack:
        stack.start(dict(os.environ))
        outage.table = stack.ref("CallsTable")
        yield stack


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


def to_the_failed_targets(stack: LocalStack, queues: list[str]) -> Target:
    """The local stack as `voicebus redrive --local` sees it: each dead letter goes back to its own function."""
    return Target(
        bus_name=stack.ref("EventBus"),
        queue_urls=queues,
        local=True,
        rule_queues=stack.rule_queues,
        function_arns=stack.function_arns(),
    )


def test_put_failures_and_a_dynamodb_outage_lose_nothing_and_process_once(
    running: LocalStack, outage: DynamoOutage, test_key: TestKeyPair
) -> None:
    stack = running
    row = figures("put faults + outage + redrive")
    flaky = FlakyEvents(boto3.client("events"), rate=0.35)
    use_ingress(stack, flaky)

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

    # What the outage dead-lettered goes back to the functions that failed it, once the table is healthy.
    queues = [stack.ref("FailedInvocationQueue"), stack.ref("EventDeadLetterQueue")]
    report = redrive(to_the_failed_targets(stack, queues), dry_run=False)
    assert report.redriven > 0, "the outage should have dead-lettered something"
    assert stack.wait_until_idle(timeout=90)

    store = CallStore(boto3.client("dynamodb"), stack.ref("CallsTable"))
    # Functions with idempotency (commands sent, uploads) promise each accepted webhook is
    # processed exactly once per targeted function: counted from the stack's ledger of runs
    # (the idempotency layer saved the work as done in that run). Record-only functions keep
    # no idempotency records: a repeated event only rewrites what is already there, so for
    # them the oracle is "processed at least once, and the call's state equals the state of
    # the same events recorded once, in order" (checked per call below).
    guarded = guarded_functions()
    expected = expected_processing(webhooks)
    expected_once = Counter({key: count for key, count in expected.items() if key[0] in guarded})
    processed = stack.ledger.processed()
    once = stack.ledger.processed(guarded=True)
    skipped = stack.ledger.short_circuited()
    types = {w["data"]["id"]: w["data"]["event_type"] for w in webhooks}
    lost = sorted((function, types[wid]) for function, wid in expected if processed[(function, wid)] == 0)
    duplicated = sorted((function, types.get(wid), count) for (function, wid), count in once.items() if count > 1)
    unexpected = sorted((function, types.get(wid)) for function, wid in processed if (function, wid) not in expected)
    # Each extra put (Telnyx's retry after a lost answer) reached every target again: the
    # idempotency layer, not luck, kept it from being processed twice by a guarded function.
    undeduplicated = sorted(
        (function, types[wid]) for function, wid in expected_once if skipped[(function, wid)] < flaky.on_bus[wid] - 1
    )
    repeated_harmlessly = sum(count - 1 for count in stack.ledger.processed(guarded=False).values())
    row.tried += len(webhooks)
    row.accepted += len(webhooks)
    row.lost += len(lost)
    row.duplicated += len(duplicated)
    row.notes += [f"{kind}: {count}" for kind, count in flaky.injected.items()]
    row.notes.append(f"Telnyx attempts per webhook: {dict(sorted(attempts.items()))}")
    row.notes.append(f"writes refused in the outage: {outage.refused}; redriven from DLQs: {report.redriven}")
    row.notes.append(f"deliveries answered by idempotency: {sum(skipped.values())}")
    row.notes.append(f"repeats recorded again by record-only functions (no state change): {repeated_harmlessly}")
    assert sum(flaky.injected.values()) > 10
    assert flaky.injected["put done, answer lost (timeout)"] > 0
    assert sorted(flaky.on_bus) == sorted(types)
    assert any(count > 1 for count in flaky.on_bus.values())
    assert stack.ledger.unguarded_functions() <= {"MediaFunction"}
    assert lost == []
    assert duplicated == []
    assert unexpected == []
    assert undeduplicated == []
    assert once == expected_once
    assert set(processed) == set(expected)
    for script in calls:
        record = store.get_call(script.call_control_id)
        assert record is not None
        assert record.status is not None
        assert (record.status.value, record.status.hangup_cause) == (CallStatus.HUNG_UP, "normal_clearing")
        assert record.client_state is not None
        assert record.client_state.value == {"step": "voicemail"}
        timeline = [entry.event_id for entry in store.timeline(script.call_control_id)]
        assert timeline == [w["data"]["id"] for w in script.webhooks]
        assert recorded_state(store, script.call_control_id) == in_order_state(store, script.webhooks)


def test_a_replayed_request_is_deduplicated_within_the_window_and_refused_after(
    moto_server: MotoServer, test_key: TestKeyPair
) -> None:
    row = figures("replay")
    signed_at = 1_800_000_000  # any moment: the ingress's clock is set from it, never waited for
    clock = Clock(signed_at)
    with LocalStack(moto=moto_server) as stack:
        stack.start(dict(os.environ))
        use_ingress(stack, boto3.client("events"), clock)
        window = IngressSettings.from_env(stack.functions["IngressFunction"].env).tolerance_seconds
        webhook = CallScript().event("call.answered")
        body = compact(webhook)
        captured = sign(body, test_key.signing_key, signed_at)

        # The same captured request, replayed at the start, the middle and the very end of the window.
        statuses = []
        for now in (signed_at, signed_at + window // 2, signed_at + window):
            clock.now = now
            statuses.append(post(stack.webhook_url, body, captured)[0])
        assert stack.wait_until_idle(timeout=60)
        runs_in_window = len(stack.ledger.runs)
        clock.now = signed_at + window + 1
        late_status, late_answer = post(stack.webhook_url, body, captured)
        assert stack.wait_until_idle(timeout=60)

    expected = expected_processing([webhook])
    processed = stack.ledger.processed()
    row.tried += 4
    row.accepted += statuses.count(200)
    row.rejected[late_answer.get("error", "?")] += 1
    row.duplicated += sum(count - 1 for count in processed.values() if count > 1)
    assert statuses == [200, 200, 200]
    # Concurrent runs, as on Lambda: a copy that meets another still running is refused by the
    # idempotency layer (and retried); nothing else fails.
    racing = "IdempotencyAlreadyInProgressError"
    assert [run.error for run in stack.ledger.runs if run.error and not run.error.startswith(racing)] == []
    # Three puts reached each target; the first was processed, the idempotency layer answered the rest.
    assert processed == expected
    assert stack.ledger.short_circuited() == Counter({key: 2 for key in expected})
    assert (late_status, late_answer["error"]) == (401, "stale_timestamp")
    assert len(stack.ledger.runs) == runs_in_window


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
            report = redrive(to_the_failed_targets(stack, queues), dry_run=False)
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
