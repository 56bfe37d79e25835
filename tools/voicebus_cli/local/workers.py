"""Delivering rule events to functions the way Lambda's asynchronous invocation does.

Each rule's SQS queue (standing in for the Lambda target) is polled; an event is
handed to the function, retried on error up to the function's
EventInvokeConfig.MaximumRetryAttempts, then sent to its on-failure destination
as Lambda's invocation record. Whatever else goes wrong on the way (a body that is
not an event, a report callback that raises, a queue that refuses a write) is
reported, counted and sent to the rule's dead-letter queue with EventBridge's
attributes; the worker goes on with the next message either way.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3

from voicebus_cli.local.dead_letters import RuleTarget, send_failed_invocation, send_undelivered
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
    # The work on the event ran to its end in this run: for a function with idempotency, the
    # layer saved it as done; for one without (record-only families), the run ended without error.
    processed: bool = False
    # The idempotency layer found a record for the event and skipped the work (or refused it).
    short_circuited: bool = False
    # The idempotency layer took part in the run (False for functions that run without it).
    guarded: bool = False

    @property
    def event_key(self) -> str:
        """The webhook's `data.id` for Telnyx events (what idempotency keys on); else the bus event id."""
        detail = self.event.get("detail")
        data = detail.get("data") if isinstance(detail, dict) else None
        return str(data["id"]) if isinstance(data, dict) and "id" in data else str(self.event.get("id"))


@dataclass(frozen=True)
class DeadLetter:
    """An event a worker gave up on, and where it went."""

    target: RuleTarget
    event: dict[str, Any] | None  # None when the message was not an event at all
    queue_url: str | None  # None when it could not be written anywhere (then it stays in the rule's queue)
    reason: str
    failed_invocation: bool  # True: Lambda's on-failure path; False: the rule's dead-letter queue
    at: float


@dataclass(frozen=True)
class WorkerFault:
    """Something other than the function went wrong while a worker handled a message."""

    target: RuleTarget
    stage: str  # "event", "report", "dead-letter", "poll"
    error: str
    detail: str  # the traceback, for the function log
    at: float


class InvocationLedger:
    """Every function run the local stack's workers made: what ran, on which event, and how it ended."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: list[Invocation] = []
        self._dead_letters: list[DeadLetter] = []
        self._faults: list[WorkerFault] = []

    def record(self, run: Invocation) -> None:
        with self._lock:
            self._runs.append(run)

    def record_dead_letter(self, letter: DeadLetter) -> None:
        with self._lock:
            self._dead_letters.append(letter)

    def record_fault(self, fault: WorkerFault) -> None:
        with self._lock:
            self._faults.append(fault)

    @property
    def runs(self) -> list[Invocation]:
        with self._lock:
            return list(self._runs)

    @property
    def dead_letters(self) -> list[DeadLetter]:
        with self._lock:
            return list(self._dead_letters)

    @property
    def faults(self) -> list[WorkerFault]:
        with self._lock:
            return list(self._faults)

    def processed(self, guarded: bool | None = None) -> Counter[tuple[str, str]]:
        """(function, event key) -> runs in which the function's work on the event ran to its end.

        `guarded=True`: only runs of functions with idempotency (where "exactly once" is the
        promise); False: only runs of functions without it (where a repeat is harmless, and
        "at least once" with the right final state is).
        """
        return Counter(
            (run.function, run.event_key)
            for run in self.runs
            if run.processed and (guarded is None or run.guarded == guarded)
        )

    def unguarded_functions(self) -> set[str]:
        """Functions that ran (to their end) without the idempotency layer taking part."""
        return {run.function for run in self.runs if run.error is None and not run.guarded}

    def short_circuited(self) -> Counter[tuple[str, str]]:
        """(function, event key) -> runs the idempotency layer answered without doing the work."""
        return Counter((run.function, run.event_key) for run in self.runs if run.short_circuited)


@dataclass
class WorkerCallbacks:
    """Where a worker reports; each may raise, which the worker survives and counts as a fault."""

    on_invocation: Callable[[Invocation], None] = lambda run: None
    on_dead_letter: Callable[[DeadLetter], None] = lambda letter: None
    on_fault: Callable[[WorkerFault], None] = lambda fault: None


class _ReportError(RuntimeError):
    """A report callback raised while the worker handled a message."""


class RuleWorker:
    """Polls one rule's queue and invokes one function, like one Lambda event source."""

    def __init__(
        self, function: LoadedFunction, target: RuleTarget, queue_url: str, callbacks: WorkerCallbacks
    ) -> None:
        self.function = function
        self.target = target
        self.queue_url = queue_url
        self.callbacks = callbacks
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"worker-{target.key}")
        self._busy = threading.Event()

    def start(self) -> RuleWorker:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    @property
    def busy(self) -> bool:
        return self._busy.is_set()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        sqs = boto3.client("sqs")
        while not self._stop.is_set():
            try:
                batch = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
            except Exception as exc:  # moto stopping, a network hiccup: report, pause, poll again
                if self._stop.is_set():
                    return
                self._fault("poll", exc)
                self._stop.wait(1.0)
                continue
            for message in batch.get("Messages", []):
                self._busy.set()
                try:
                    self.handle(message["Body"])
                finally:
                    try:
                        sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
                    except Exception as exc:
                        self._fault("poll", exc)
                    self._busy.clear()

    def handle(self, body: str) -> None:
        """One message from the rule's queue, to its end: never raises."""
        event: dict[str, Any] | None = None
        try:
            parsed = json.loads(body)
            if not isinstance(parsed, dict):
                raise TypeError(f"the message is a JSON {type(parsed).__name__}, not an EventBridge event")
            event = parsed
            # moto leaves out `account`, which EventBridge always sets on what Lambda receives.
            event.setdefault("account", ACCOUNT_ID)
            self.deliver(event)
        except Exception as exc:
            stage = "report" if isinstance(exc, _ReportError) else "event"
            cause = exc.__cause__ if isinstance(exc, _ReportError) and exc.__cause__ else exc
            self._fault(stage, cause)
            self._undeliverable(body, event, f"local worker ({stage}): {type(cause).__name__}: {cause}")

    def deliver(self, event: dict[str, Any]) -> bool:
        """Invoke with retries, then Lambda's on-failure path; True when some attempt succeeded.

        Raises `_ReportError` (after the delivery is complete) when a report callback raised.
        """
        report_error: Exception | None = None
        error_type, error_message = "", ""
        attempts = self.target.retries + 1
        for attempt in range(1, attempts + 1):
            with watch_idempotency() as watch:
                try:
                    result = self.function.invoke(event)
                except Exception as exc:  # any function error is retried, as Lambda does
                    error_type, error_message = type(exc).__name__, str(exc)
                    error: str | None = f"{error_type}: {error_message}"
                    result = None
                else:
                    error = None
            # Without idempotency (no claim in the run), the work is done when the run ends without error.
            processed = watch.completed > 0 if watch.guarded else error is None
            short_circuited = watch.found_existing > 0 and not processed and error is None
            run = Invocation(
                self.function.name,
                event,
                attempt,
                error,
                result,
                time.time(),
                processed,
                short_circuited,
                watch.guarded,
            )
            try:
                self.callbacks.on_invocation(run)
            except Exception as exc:
                report_error = report_error or exc
            if error is None:
                if report_error is not None:
                    raise _ReportError(str(report_error)) from report_error
                return True
            if attempt < attempts:
                time.sleep(0.05 * attempt)
        try:
            queue = send_failed_invocation(self.target, event, attempts, error_type, error_message)
        except Exception as exc:
            self._fault("dead-letter", exc)
            self._undeliverable(json.dumps(event), event, f"on-failure destination refused the record: {exc}")
        else:
            self._dead_lettered(
                DeadLetter(self.target, event, queue, f"{error_type}: {error_message}", True, time.time())
            )
        if report_error is not None:
            raise _ReportError(str(report_error)) from report_error
        return False

    def _undeliverable(self, body: str, event: dict[str, Any] | None, reason: str) -> None:
        """EventBridge's path: the rule's dead-letter queue, with its attributes."""
        try:
            queue: str | None = send_undelivered(self.target, body, reason)
        except Exception as exc:
            self._fault("dead-letter", exc)
            queue = None
        self._dead_lettered(DeadLetter(self.target, event, queue, reason, False, time.time()))

    def _dead_lettered(self, letter: DeadLetter) -> None:
        try:
            self.callbacks.on_dead_letter(letter)
        except Exception as exc:
            self._fault("report", exc)

    def _fault(self, stage: str, error: BaseException) -> None:
        detail = "".join(traceback.format_exception(error))
        fault = WorkerFault(self.target, stage, f"{type(error).__name__}: {error}", detail, time.time())
        with contextlib.suppress(Exception):  # the last resort has nowhere left to report to
            self.callbacks.on_fault(fault)
