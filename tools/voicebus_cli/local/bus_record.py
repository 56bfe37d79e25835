"""A record of the local bus: every event put on it, one JSON line each, as EventBridge delivers it.

A catch-all rule on the bus feeds an SQS queue that a thread drains into the file,
so the record sees every put, whoever made it (the ingress, the command function,
your own scripts), in the shape a rule's target receives (id, time, source,
detail-type, detail, ...). `voicebus replay --local` reads a time window from it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import boto3

from voicebus_cli.local.provision import route_to_queue
from voicebus_cli.local.template import ACCOUNT_ID

EVERY_EVENT: dict[str, Any] = {"source": [{"prefix": ""}]}


class BusRecorder:
    """Appends every event on `bus_name` to `path`; `on_event` hears each one after it is written."""

    def __init__(
        self,
        bus_name: str,
        rule_name: str,
        path: Path,
        on_event: Callable[[dict[str, Any]], None] = lambda event: None,
        on_error: Callable[[Exception], None] = lambda error: None,
    ) -> None:
        self.path = path
        self.queue_url = route_to_queue(bus_name, rule_name[:64], EVERY_EVENT)
        self.on_event = on_event
        self.on_error = on_error
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._file: TextIO | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="bus-recorder")

    def start(self) -> BusRecorder:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding="utf-8")
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop polling, write what is still queued, close the file."""
        self._stop.set()
        self._thread.join(timeout=10)
        try:
            while self.drain(wait_seconds=0):
                pass
        except Exception as exc:  # moto already gone: nothing more to read
            self.on_error(exc)
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.drain(wait_seconds=1)
            except Exception as exc:
                if self._stop.is_set():
                    return
                self.on_error(exc)
                self._stop.wait(1.0)

    def drain(self, wait_seconds: int = 0) -> int:
        """Write one batch of queued events; how many there were."""
        sqs = boto3.client("sqs")
        messages = sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_seconds
        ).get("Messages", [])
        for message in messages:
            try:
                event = json.loads(message["Body"])
            except json.JSONDecodeError as exc:
                self.on_error(exc)
                event = None
            if isinstance(event, dict):
                event.setdefault("account", ACCOUNT_ID)  # moto leaves it out; EventBridge always sets it
                self._write(event)
            sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
            if isinstance(event, dict):
                try:
                    self.on_event(event)
                except Exception as exc:
                    self.on_error(exc)
        return len(messages)

    def _write(self, event: dict[str, Any]) -> None:
        with self._lock:
            if self._file is None:
                return
            self._file.write(json.dumps(event, separators=(",", ":")) + "\n")
            self._file.flush()


def read_record(path: Path) -> list[dict[str, Any]]:
    """Every event in a bus record, oldest first."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
