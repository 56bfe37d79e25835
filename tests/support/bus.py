"""Seeing exactly which events reached a bus: a catch-all rule into an SQS queue."""

from __future__ import annotations

import json
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
