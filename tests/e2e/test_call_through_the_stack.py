"""A whole call as signed webhooks over HTTP: ingress -> bus (moto) -> rules -> functions -> DynamoDB."""

from __future__ import annotations

import os
import random
from collections import Counter
from collections.abc import Iterator

import boto3
import pytest

from tests.support.calls import CallScript, as_bus_event
from tests.support.routing import targets
from tests.support.security import guarded_functions
from voicebus.calls.records import CallStatus, Feature
from voicebus.calls.store import CallStore
from voicebus.ingress.signature import sign
from voicebus_cli.demo import post
from voicebus_cli.local.moto_server import MotoServer
from voicebus_cli.local.stack import LocalStack
from voicebus_cli.local.workers import Invocation
from voicebus_cli.testkey import TestKeyPair
from voicebus_cli.webhooks import compact

pytestmark = pytest.mark.integration


@pytest.fixture
def local_stack(moto_server: MotoServer) -> Iterator[tuple[LocalStack, list[Invocation]]]:
    invocations: list[Invocation] = []
    with LocalStack(moto=moto_server, on_invocation=invocations.append) as stack:
        stack.start(dict(os.environ))
        yield stack, invocations


def test_a_call_with_duplicates_and_late_events_ends_right(
    local_stack: tuple[LocalStack, list[Invocation]], test_key: TestKeyPair
) -> None:
    stack, invocations = local_stack
    script = CallScript()
    webhooks = script.basic_call()
    deliveries = list(webhooks)
    deliveries.insert(3, webhooks[1])  # call.answered delivered twice
    deliveries.remove(webhooks[2])
    deliveries.append(webhooks[2])  # call.speak.started arrives after the hangup
    random.Random(7).shuffle(deliveries[4:7])

    for webhook in deliveries:
        body = compact(webhook)
        status, _ = post(stack.webhook_url, body, sign(body, test_key.signing_key, _now()))
        assert status == 200
    assert stack.wait_until_idle(timeout=60)

    runs = Counter((i.function, i.event["detail"]["data"]["id"]) for i in invocations if i.error is None)
    # Runs are concurrent, as on Lambda: a duplicate that meets its original still running is refused
    # by the idempotency layer (and retried); nothing else fails.
    racing = "IdempotencyAlreadyInProgressError"
    assert [i for i in invocations if i.error and not i.error.startswith(racing)] == []
    # Every delivery ran once on each function its rules target (the template says which).
    assert sum(runs.values()) == sum(len(targets(as_bus_event(webhook))) for webhook in deliveries)
    assert runs[("CallControlFunction", webhooks[1]["data"]["id"])] == 2
    assert runs[("MediaFunction", webhooks[2]["data"]["id"])] == 1
    assert runs[("RecordingFunction", webhooks[7]["data"]["id"])] == 1
    # ...and was processed once per targeted function: the second call.answered was answered
    # by the idempotency layer, in every function it reached (the stack's ledger of runs).
    # Record-only functions keep no idempotency records (a repeat only rewrites the same
    # state); none of them received a duplicate here, so each processed its events once too.
    guarded = guarded_functions()
    once = Counter({(function, w["data"]["id"]): 1 for w in webhooks for function in targets(as_bus_event(w))})
    repeated = webhooks[1]["data"]["id"]
    assert {function for function, _ in once} - guarded == {"MediaFunction"}
    assert stack.ledger.unguarded_functions() == {"MediaFunction"}
    assert stack.ledger.processed() == once
    assert stack.ledger.short_circuited() == Counter({key: 1 for key in once if key[1] == repeated})

    record = CallStore(boto3.client("dynamodb"), stack.ref("CallsTable")).get_call(script.call_control_id)
    assert record is not None and record.status is not None
    assert (record.status.value, record.status.hangup_cause) == (CallStatus.HUNG_UP, "normal_clearing")
    assert record.features[Feature.SPEAK].model_extra == {"state": "ended", "status": "completed"}
    assert record.client_state is not None and record.client_state.value == {"step": "voicemail"}
    assert [r.recording_id for r in record.recordings] == ["rec-1"]
    idempotency = boto3.client("dynamodb").scan(TableName=stack.ref("IdempotencyTable"))["Items"]
    # One idempotency record per (guarded function, webhook): duplicates added none, record-only functions none.
    assert len(idempotency) == sum(1 for function, _ in once if function in guarded)


def test_a_function_that_keeps_failing_lands_in_the_failure_queue(
    local_stack: tuple[LocalStack, list[Invocation]], test_key: TestKeyPair
) -> None:
    stack, invocations = local_stack
    # The calls table is gone (a bad deploy, a wrong region): every attempt fails.
    boto3.client("dynamodb").delete_table(TableName=stack.ref("CallsTable"))
    webhook = CallScript().event("call.answered")
    body = compact(webhook)
    status, _ = post(stack.webhook_url, body, sign(body, test_key.signing_key, _now()))
    assert status == 200
    assert stack.wait_until_idle(timeout=60)

    failures = [i for i in invocations if i.error]
    assert [i.attempt for i in failures] == [1, 2, 3]  # first try + EventInvokeConfig's 2 retries
    sqs = boto3.client("sqs")
    queue = stack.ref("FailedInvocationQueue")
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    assert len(messages) == 1
    assert webhook["data"]["id"] in messages[0]["Body"]


def _now() -> int:
    import time

    return int(time.time())
