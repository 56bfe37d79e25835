"""Delivering rule events to functions the way Lambda's asynchronous invocation does.

Each rule's SQS queue (standing in for the Lambda target) is polled; an event is
handed to the function, retried on error up to the function's
EventInvokeConfig.MaximumRetryAttempts, then sent to its on-failure destination,
all read from the template.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3

from voicebus_cli.local.functions import LoadedFunction, watch_idempotency
from voicebus_cli.local.template import ACCOUNT_ID

# Lambda's default for asynchronous invocations when EventInvokeConfig says nothing.
DEFAULT_ASYNC_RETRIES = 2


@dataclass(frozen=True)
class Invocation:
    """What the journal hears about each run of a function."""

    function: str
    event: dict[str, Any]
    attempt: int
    error: str | None
    result: Any = None
    at: float = 0.0  # time.time() when the run ended
    # The idempotency layer saved the work as done in this run (the work really ran, to its end).
    processed: bool = False
    # The idempotency layer found a record for the event and skipped the work (or refused it).
    short_circuited: bool = False

    @property
    def event_key(self) -> str:
        """The webhook's `data.id` for Telnyx events (what idempotency keys on); else the bus event id."""
        data = self.event.get("detail", {}).get("data")
        return str(data["id"]) if isinstance(data, dict) and "id" in data else str(self.event.get("id"))


class InvocationLedger:
    """Every function run the local stack's workers made: what ran, on which event, and how it ended."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: list[Invocation] = []

    def record(self, run: Invocation) -> None:
        with self._lock:
            self._runs.append(run)

    @property
    def runs(self) -> list[Invocation]:
        with self._lock:
            return list(self._runs)

    def processed(self) -> Counter[tuple[str, str]]:
        """(function, event key) -> runs in which the function's work on the event ran to its end."""
        return Counter((run.function, run.event_key) for run in self.runs if run.processed)

    def short_circuited(self) -> Counter[tuple[str, str]]:
        """(function, event key) -> runs the idempotency layer answered without doing the work."""
        return Counter((run.function, run.event_key) for run in self.runs if run.short_circuited)


class RuleWorker:
    """Polls one rule's queue and invokes one function, like one Lambda event source."""

    def __init__(
        self,
        function: LoadedFunction,
        queue_url: str,
        retries: int,
        failure_queue_url: str | None,
        on_invocation: Callable[[Invocation], None],
    ) -> None:
        self.function = function
        self.queue_url = queue_url
        self.retries = retries
        self.failure_queue_url = failure_queue_url
        self.on_invocation = on_invocation
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"worker-{function.name}")
        self._busy = threading.Event()

    def start(self) -> RuleWorker:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    @property
    def busy(self) -> bool:
        return self._busy.is_set()

    def _run(self) -> None:
        sqs = boto3.client("sqs")
        while not self._stop.is_set():
            batch = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
            for message in batch.get("Messages", []):
                self._busy.set()
                event = json.loads(message["Body"])
                # moto leaves out `account`, which EventBridge always sets on what Lambda receives.
                event.setdefault("account", ACCOUNT_ID)
                try:
                    self.deliver(event)
                finally:
                    sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
                    self._busy.clear()

    def deliver(self, event: dict[str, Any]) -> bool:
        """Invoke with retries; True when some attempt succeeded."""
        for attempt in range(1, self.retries + 2):
            with watch_idempotency() as watch:
                try:
                    result = self.function.invoke(event)
                except Exception as exc:  # any function error is retried, as Lambda does
                    error: str | None = f"{type(exc).__name__}: {exc}"
                    result = None
                else:
                    error = None
            processed = watch.completed > 0
            short_circuited = watch.found_existing > 0 and not processed and error is None
            self.on_invocation(
                Invocation(self.function.name, event, attempt, error, result, time.time(), processed, short_circuited)
            )
            if error is None:
                return True
            time.sleep(0.05 * attempt)
        if self.failure_queue_url:
            record = {"requestPayload": event, "responseContext": {"functionError": "Unhandled"}}
            boto3.client("sqs").send_message(QueueUrl=self.failure_queue_url, MessageBody=json.dumps(record))
        return False
