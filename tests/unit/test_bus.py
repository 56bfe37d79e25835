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


def test_partial_failure_is_a_publish_error() -> None:
    publisher, stubber = _publisher()
    failed = {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "ThrottlingException", "ErrorMessage": "slow down"}]}
    stubber.add_response("put_events", failed)
    with stubber, pytest.raises(PublishError, match="ThrottlingException"):
        publisher.publish(WEBHOOK, BODY)


def test_client_error_is_a_publish_error() -> None:
    publisher, stubber = _publisher()
    stubber.add_client_error("put_events", "InternalException", http_status_code=500)
    with stubber, pytest.raises(PublishError, match="PutEvents failed: InternalException"):
        publisher.publish(WEBHOOK, BODY)
