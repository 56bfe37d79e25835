"""Narrow unit tests of the publisher with botocore's Stubber (no network)."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from voicebus.bus import PublishError
from voicebus.ingress.envelope import WebhookSummary
from voicebus.ingress.publisher import WebhookPublisher

WEBHOOK = WebhookSummary("id-1", "call.answered", "v3:c", "s")
BODY = '{"data":{"id":"id-1","event_type":"call.answered"}}'


def _publisher() -> tuple[WebhookPublisher, Stubber]:
    client = boto3.client("events", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    return WebhookPublisher(client, "bus"), Stubber(client)


def test_one_entry_with_the_body_unchanged() -> None:
    publisher, stubber = _publisher()
    expected = {"Entries": [{"EventBusName": "bus", "Source": "telnyx", "DetailType": "call.answered", "Detail": BODY}]}
    stubber.add_response("put_events", {"FailedEntryCount": 0, "Entries": [{"EventId": "e"}]}, expected)
    with stubber:
        publisher.publish(WEBHOOK, BODY)
    stubber.assert_no_pending_responses()


def test_an_entry_refused_every_time_is_a_publish_error_after_every_attempt() -> None:
    publisher, stubber = _publisher()
    failed = {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "ThrottlingException", "ErrorMessage": "slow down"}]}
    for _ in range(publisher.attempts):
        stubber.add_response("put_events", failed)
    with stubber, pytest.raises(PublishError, match="ThrottlingException"):
        publisher.publish(WEBHOOK, BODY)
    stubber.assert_no_pending_responses()


def test_a_client_error_every_time_is_a_publish_error_after_every_attempt() -> None:
    publisher, stubber = _publisher()
    for _ in range(publisher.attempts):
        stubber.add_client_error("put_events", "InternalException", http_status_code=500)
    with stubber, pytest.raises(PublishError, match="PutEvents failed: InternalException"):
        publisher.publish(WEBHOOK, BODY)
    stubber.assert_no_pending_responses()


def test_one_failed_attempt_is_tried_again_at_once() -> None:
    publisher, stubber = _publisher()
    stubber.add_client_error("put_events", "InternalException", http_status_code=500)
    stubber.add_response("put_events", {"FailedEntryCount": 0, "Entries": [{"EventId": "e"}]})
    with stubber:
        publisher.publish(WEBHOOK, BODY)
    stubber.assert_no_pending_responses()
