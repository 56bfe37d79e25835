"""Lambda's concurrency in the local stack: requests side by side, events of one call at the same instant.

The ingress answers while every consumer is held; two events of one call are inside
the same function at once; a duplicate races its original; API Gateway's joined
headers. Nothing here measures time: holds are released by the test, and the
timeouts only keep a broken build from hanging.
"""

from __future__ import annotations

import http.client
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest

from tests.e2e.test_reliability import expected_processing, to_the_failed_targets
from tests.support.bus import BusTap
from tests.support.calls import CallScript, in_order_state, recorded_state
from tests.support.report import figures
from tests.support.security import guarded_functions
from voicebus.calls.store import CallStore
from voicebus.ingress.signature import sign
from voicebus_cli.demo import post
from voicebus_cli.local.functions import LoadedFunction
from voicebus_cli.local.http_api import LocalHttpApi
from voicebus_cli.local.moto_server import MotoServer
from voicebus_cli.local.stack import LocalStack
from voicebus_cli.redrive import redrive
from voicebus_cli.testkey import TestKeyPair
from voicebus_cli.webhooks import compact

pytestmark = pytest.mark.integration

SIGNATURE_HEADER = "telnyx-signature-ed25519"
# Only a guard against a hang: every wait below ends as soon as its condition holds.
GUARD_SECONDS = 90


def until(condition: Callable[[], bool], timeout: float = GUARD_SECONDS) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


class WriteGate:
    """Holds every write to one table until opened, and tells how many wait on each item at once."""

    def __init__(self) -> None:
        self.table: str | None = None
        self.opened = threading.Event()
        self._lock = threading.Lock()
        self._waiting: Counter[str] = Counter()
        self.most_at_once: Counter[str] = Counter()

    def hold(self, params: dict[str, Any], **_: Any) -> None:
        """A botocore `before-call` handler: waits (in the function's thread) until the gate opens."""
        body = json.loads(params.get("body") or b"{}")
        if self.opened.is_set() or body.get("TableName") != self.table:
            return
        item = body.get("Key") or body.get("Item") or {}
        pk = str(item.get("pk", {}).get("S", "?"))
        with self._lock:
            self._waiting[pk] += 1
            self.most_at_once[pk] = max(self.most_at_once[pk], self._waiting[pk])
        try:
            self.opened.wait(timeout=GUARD_SECONDS)
        finally:
            with self._lock:
                self._waiting[pk] -= 1


@pytest.fixture
def gate() -> Iterator[WriteGate]:
    """Registered on the default boto3 session before the functions create their clients."""
    held = WriteGate()
    if boto3.DEFAULT_SESSION is None:
        boto3.setup_default_session()
    session = boto3.DEFAULT_SESSION
    assert session is not None
    for operation in ("UpdateItem", "PutItem"):
        session.events.register(f"before-call.dynamodb.{operation}", held.hold)
    yield held
    held.opened.set()
    for operation in ("UpdateItem", "PutItem"):
        session.events.unregister(f"before-call.dynamodb.{operation}", held.hold)


def signed_post(stack: LocalStack, key: TestKeyPair, webhook: dict[str, Any]) -> int:
    body = compact(webhook)
    return post(stack.webhook_url, body, sign(body, key.signing_key, int(time.time())))[0]


def test_the_ingress_answers_while_consumers_hold_and_events_of_one_call_run_at_once(
    moto_server: MotoServer, gate: WriteGate, test_key: TestKeyPair
) -> None:
    script = CallScript()
    parties: dict[str, Any] = {"from": "+15550001111", "to": "+15550002222", "direction": "incoming"}
    initiated = script.event("call.initiated", state="parked", **parties)
    answered = script.event("call.answered", **parties)
    hangup = script.event("call.hangup", hangup_cause="normal_clearing", hangup_source="caller")
    pk = f"CALL#{script.call_control_id}"
    with LocalStack(moto=moto_server) as stack:
        stack.start(dict(os.environ))
        gate.table = stack.ref("CallsTable")
        # Telnyx posts all four at the same moment (answered twice: a duplicate racing its original).
        sending = [initiated, answered, answered, hangup]
        statuses: list[int] = []
        start = threading.Barrier(len(sending))

        def send(webhook: dict[str, Any]) -> None:
            start.wait()
            statuses.append(signed_post(stack, test_key, webhook))

        senders = [threading.Thread(target=send, args=(webhook,)) for webhook in sending]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join()
        # Every webhook was answered while the functions behind the rules were still held.
        assert statuses == [200] * len(sending)
        assert not gate.opened.is_set()

        def raced() -> bool:
            return any(
                run.function == "CallControlFunction" and "AlreadyInProgress" in (run.error or "")
                for run in stack.ledger.runs
            )

        # Two events of one call are inside call control at the same instant, and the duplicate
        # found its original in progress (the idempotency record) rather than running beside it.
        assert until(lambda: gate.most_at_once[pk] >= 2 and raced())
        assert stack.functions["CallControlFunction"].peak_running >= 2
        row = figures("events of one call at once")
        row.tried += len(sending)
        row.accepted += statuses.count(200)
        row.notes.append(f"most writes waiting on the call's item at once: {gate.most_at_once[pk]}")
        gate.opened.set()
        assert stack.wait_until_idle(timeout=GUARD_SECONDS)
        # A duplicate that kept finding its original in progress went to the failure queue, as on
        # Lambda; redriven, it is answered by idempotency and processed no second time.
        queues = [stack.ref("FailedInvocationQueue"), stack.ref("EventDeadLetterQueue")]
        redrive(to_the_failed_targets(stack, queues), dry_run=False)
        assert stack.wait_until_idle(timeout=GUARD_SECONDS)
        store = CallStore(boto3.client("dynamodb"), stack.ref("CallsTable"))
        expected = expected_processing(script.webhooks)
        guarded = guarded_functions()
        assert stack.ledger.processed(guarded=True) == Counter(
            {key: count for key, count in expected.items() if key[0] in guarded}
        )
        assert set(stack.ledger.processed()) == set(expected)
        assert stack.ledger.short_circuited()[("CallControlFunction", answered["data"]["id"])] >= 1
        # Writes of one item at the same instant stay atomic (moto's are made so: see atomic_moto).
        assert recorded_state(store, script.call_control_id) == in_order_state(store, script.webhooks)


def post_with_headers(url: str, body: bytes, headers: list[tuple[str, str]]) -> tuple[int, dict[str, Any]]:
    """A POST whose headers may repeat (urllib folds them into one)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    try:
        connection.putrequest("POST", parts.path)
        for name, value in [*headers, ("Content-Type", "application/json"), ("Content-Length", str(len(body)))]:
            connection.putheader(name, value)
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_a_repeated_signature_header_is_joined_and_refused_as_api_gateway_does(
    ingress: LoadedFunction, bus_tap: BusTap, test_key: TestKeyPair
) -> None:
    api = LocalHttpApi(ingress).start()
    try:
        body = compact(CallScript().event("call.answered"))
        headers = list(sign(body, test_key.signing_key, int(time.time())).items())
        signature = next(value for name, value in headers if name.lower() == SIGNATURE_HEADER)
        url = f"{api.url}/webhooks/telnyx"
        # The valid signature sent twice: API Gateway hands the function "sig,sig", which no key verifies.
        status, answer = post_with_headers(url, body, [*headers, (SIGNATURE_HEADER, signature)])
        assert status == 401, answer
        assert answer["error"] in {"malformed_signature", "bad_signature"}
        assert bus_tap.drain() == []
        assert post_with_headers(url, body, headers)[0] == 200  # sent once, the same request is accepted
    finally:
        api.stop()


def deliver_until_accepted(stack: LocalStack, key: TestKeyPair, webhook: dict[str, Any]) -> int:
    """Telnyx's side: POST (re-signed) until 200, pausing between attempts; returns the attempts."""
    deadline = time.monotonic() + 3 * GUARD_SECONDS
    attempt = 0
    while time.monotonic() < deadline:
        attempt += 1
        try:
            if signed_post(stack, key, webhook) == 200:
                return attempt
        except OSError:
            pass  # no answer in time: Telnyx retries
        time.sleep(0.3)
    raise AssertionError(f"{webhook['data']['id']} never accepted")


def test_a_killed_moto_is_restarted_reprovisioned_and_every_accepted_webhook_processed_once(
    monkeypatch: pytest.MonkeyPatch, test_key: TestKeyPair
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "restored-after-the-test")  # the stack points the process at its moto
    calls = [CallScript() for _ in range(3)]
    webhooks = [webhook for script in calls for webhook in script.basic_call()]
    pending = list(webhooks)
    accepted: list[dict[str, Any]] = []
    lock = threading.Lock()
    killed = threading.Event()
    with LocalStack() as stack:
        stack.start(os.environ)
        assert stack.moto is not None and stack.moto.pid is not None
        first_moto = stack.moto.pid

        def sender() -> None:
            while True:
                with lock:
                    if not pending:
                        return
                    webhook = pending.pop(0)
                deliver_until_accepted(stack, test_key, webhook)
                with lock:
                    accepted.append(webhook)
                    kill = len(accepted) == len(webhooks) // 3 and not killed.is_set()
                    if kill:
                        killed.set()
                if kill:  # under load: the other senders are mid-request, the workers mid-run
                    os.kill(first_moto, 9)

        senders = [threading.Thread(target=sender) for _ in range(4)]
        for thread in senders:
            thread.start()
        for thread in senders:
            thread.join()
        assert killed.is_set()
        assert until(lambda: stack.recoveries >= 1)
        assert stack.wait_until_idle(timeout=GUARD_SECONDS)
        assert stack.moto.pid != first_moto  # the stack started a new moto on the same port
        assert all(worker.alive for worker in stack.workers)

    guarded = guarded_functions()
    expected = expected_processing(accepted)
    processed = stack.ledger.processed()
    lost = sorted(key for key in expected if processed[key] == 0)
    repeated = sorted(key for key, count in stack.ledger.processed(guarded=True).items() if count > 1)
    row = figures("moto killed under load")
    row.tried += len(webhooks)
    row.accepted += len(accepted)
    row.lost += len(lost)
    row.duplicated += len(repeated)
    row.notes.append(f"recoveries: {stack.recoveries}; deliveries made again from the put log: {stack.redelivered}")
    assert len(accepted) == len(webhooks)
    assert lost == []
    assert repeated == []
    assert set(processed) == set(expected)
    assert {function for function, _ in expected} - guarded  # record-only functions took part too
