"""Seeing exactly which events reached a bus: a catch-all rule into an SQS queue."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import boto3

from voicebus_cli.local.provision import route_to_queue


@dataclass
class BusTap:
    queue_url: str

    @classmethod
    def on(cls, bus_name: str, name: str, pattern: dict[str, Any] | None = None) -> BusTap:
        return cls(route_to_queue(bus_name, name, pattern or {"source": [{"prefix": ""}]}))

    def drain(self) -> list[dict[str, Any]]:
        """Every event delivered so far (moto delivers synchronously with PutEvents)."""
        sqs = boto3.client("sqs")
        events: list[dict[str, Any]] = []
        while True:
            batch = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
            messages = batch.get("Messages", [])
            if not messages:
                return events
            for message in messages:
                events.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])


def command_request(
    call_control_id: str,
    action: str,
    params: dict[str, Any] | None = None,
    *,
    at: str = "2026-11-21T10:00:00Z",
    **detail: Any,
) -> dict[str, Any]:
    """A `call.command` request as EventBridge delivers it to the command function (a fresh event id)."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "call.command",
        "source": "voicebus",
        "account": "123456789012",
        "time": at,
        "region": "us-east-1",
        "resources": [],
        "detail": {"call_control_id": call_control_id, "action": action, "params": params or {}, **detail},
    }
