"""Delivering rule events to functions the way Lambda's asynchronous invocation does.

Each rule's SQS queue (standing in for the Lambda target) is polled; each event is
handed to one of the function's execution environments (as many at once as its
concurrency allows), retried on error up to the function's
EventInvokeConfig.MaximumRetryAttempts, then sent to its on-failure destination
as Lambda's invocation record. Whatever else goes wrong on the way (a body that is
not an event, a report callback that raises, a queue that refuses a write) is
reported, counted and sent to the rule's dead-letter queue with EventBridge's
attributes; the worker goes on with the next message either way. A message leaves
the rule's queue only once settled (a run succeeded, or a dead-letter queue took
it): while AWS itself is away, the worker keeps it and tries again with backoff.
"""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from voicebus_cli.local.dead_letters import RuleTarget, send_failed_invocation, send_undelivered
from voicebus_cli.local.environments import FunctionPool, Lease
from voicebus_cli.local.functions import watch_idempotency
from voicebus_cli.local.ledger import DeadLetter, Invocation, InvocationLedger, WorkerFault
from voicebus_cli.local.template import ACCOUNT_ID

__all__ = [
    "DEFAULT_ASYNC_RETRIES",
    "DeadLetter",
    "Invocation",
    "InvocationLedger",
    "RuleWorker",
    "WorkerCallbacks",
    "WorkerFault",
]

# Lambda's default for asynchronous invocations when EventInvokeConfig says nothing.
DEFAULT_ASYNC_RETRIES = 2
# Lambda waits 1 then 2 minutes between asynchronous attempts; locally this many seconds times the attempt.
RETRY_DELAY_SECONDS = 0.5
MAX_BATCH = 10  # SQS's most per receive
# The worker's own AWS calls fail fast (a frozen moto is noticed in seconds) and are retried by the worker.
WORKER_AWS_CONFIG = Config(connect_timeout=2, read_timeout=20, retries={"max_attempts": 2, "mode": "standard"})
# While a worker holds a message (running, retrying, waiting for AWS), it keeps it invisible for this long
# ahead, renewed every HEARTBEAT_SECONDS: a worker that stops renewing lets it go back to the queue.
HOLD_SECONDS = 30
HEARTBEAT_SECONDS = 10.0
IDLE_POLL_SECONDS = 0.25  # between short polls of an empty queue (Lambda's pollers long-poll)
THROTTLED_WAIT_SECONDS = 0.02  # between looks for free concurrency
# A queue or receipt that moto no longer knows (it lost its state): the message went with it.
_GONE = frozenset({"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist", "ReceiptHandleIsInvalid"})


class Backoff:
    """Exponential waits with jitter for retrying AWS: 0.2 s doubling to 5 s."""

    def __init__(self, first: float = 0.2, most: float = 5.0) -> None:
        self._first, self._most, self._next = first, most, first

    def next(self) -> float:
        wait = self._next
        self._next = min(self._most, self._next * 2)
        return wait * random.uniform(0.75, 1.25)  # noqa: S311 - jitter, not security

    def reset(self) -> None:
        self._next = self._first


def _event_key(body: str) -> str | None:
    """The key `Invocation.event_key` gives the event in `body` (None when it is not one)."""
    try:
        event = json.loads(body)
    except ValueError:
        return None
    if not isinstance(event, dict):
        return None
    detail = event.get("detail")
    data = detail.get("data") if isinstance(detail, dict) else None
    return str(data["id"]) if isinstance(data, dict) and "id" in data else str(event.get("id"))


@dataclass
class WorkerCallbacks:
    """Where a worker reports; each may raise, which the worker survives and counts as a fault."""

    on_invocation: Callable[[Invocation], None] = lambda run: None
    on_dead_letter: Callable[[DeadLetter], None] = lambda letter: None
    on_fault: Callable[[WorkerFault], None] = lambda fault: None


class _ReportError(RuntimeError):
    """A report callback raised while the worker handled a message."""


class RuleWorker:
    """Polls one rule's queue and hands each event to the function's pool, like one Lambda event source.

    It takes only as many messages as the function has free concurrency, and runs each in
    a thread of its own, so events of one rule run side by side up to the function's limit.
    A message leaves the queue only once it is settled: a run succeeded, or the failure was
    written to a dead-letter queue. While AWS takes neither (moto frozen, killed or
    restarting), the event stays with the worker and is tried again with backoff.
    """

    def __init__(self, function: FunctionPool, target: RuleTarget, queue_url: str, callbacks: WorkerCallbacks) -> None:
        self.function = function
        self.target = target
        self.queue_url = queue_url
        self.callbacks = callbacks
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"worker-{target.key}")
        self._lock = threading.Lock()
        self._in_flight: dict[str, str | None] = {}  # message id -> event key (None: not an event)
        self._receipts: dict[str, str] = {}  # message id -> its receipt handle, to keep it invisible
        self._runners: set[threading.Thread] = set()
        self._sqs = boto3.client("sqs", config=WORKER_AWS_CONFIG)

    def start(self) -> RuleWorker:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        with self._lock:
            runners = list(self._runners)
        for runner in runners:
            runner.join(timeout=10)

    @property
    def busy(self) -> bool:
        with self._lock:
            return bool(self._in_flight)

    def in_flight(self) -> set[str]:
        """Keys of the events this worker holds now (being run, or waiting for AWS to take them)."""
        with self._lock:
            return {key for key in self._in_flight.values() if key is not None}

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        backoff = Backoff()
        renewed = time.monotonic()
        while not self._stop.is_set():
            try:
                if time.monotonic() - renewed >= HEARTBEAT_SECONDS:
                    renewed = time.monotonic()
                    self._keep_held()
                self._poll_once()
            except Exception as exc:  # moto stopped, frozen or restarting: report, wait, poll again
                if self._stop.is_set():
                    return
                self._fault("poll", exc)
                self._stop.wait(backoff.next())
            else:
                backoff.reset()

    def _poll_once(self) -> None:
        """Take as many messages as the function has free concurrency now, each with its unit of it.

        The units are held only for a short poll (no waiting for messages), so the function's
        other rules, and the functions sharing the unreserved pool, get theirs between polls.
        """
        leases = self.function.try_leases(MAX_BATCH, wait=0)
        if not leases:
            self._stop.wait(THROTTLED_WAIT_SECONDS)
            return
        messages: list[Any] = []
        try:
            batch = self._sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=len(leases), WaitTimeSeconds=0
            )
            messages = list(batch.get("Messages", []))
            for message, lease in zip(messages, leases, strict=False):
                self._dispatch(message, lease)
        finally:
            for lease in leases[len(messages) :]:
                lease.release()
        if not messages:
            self._stop.wait(IDLE_POLL_SECONDS)

    def _keep_held(self) -> None:
        """Push the messages this worker holds further out of sight (SQS's visibility heartbeat)."""
        with self._lock:
            held = list(self._receipts.items())
        for start in range(0, len(held), MAX_BATCH):
            entries: list[Any] = [
                {"Id": str(index), "ReceiptHandle": receipt, "VisibilityTimeout": HOLD_SECONDS}
                for index, (_, receipt) in enumerate(held[start : start + MAX_BATCH])
            ]
            self._sqs.change_message_visibility_batch(QueueUrl=self.queue_url, Entries=entries)

    def _dispatch(self, message: Any, lease: Lease) -> None:
        message_id = str(message.get("MessageId") or id(message))
        with self._lock:
            self._in_flight[message_id] = _event_key(message.get("Body", ""))
            self._receipts[message_id] = str(message.get("ReceiptHandle", ""))
        runner = threading.Thread(
            target=self._process, args=(message, message_id, lease), daemon=True, name=f"run-{self.target.key}"
        )
        with self._lock:
            self._runners.add(runner)
        runner.start()

    def _process(self, message: Any, message_id: str, lease: Lease) -> None:
        try:
            backoff = Backoff()
            while not (settled := self.handle(message["Body"], lease)) and not self._stop.is_set():
                self._stop.wait(backoff.next())  # AWS took the event nowhere: keep it, try it all again
            if settled:
                self._delete(message["ReceiptHandle"])
        except Exception as exc:  # the last guard: the worker itself must go on
            self._fault("event", exc)
        finally:
            lease.release()
            with self._lock:
                self._in_flight.pop(message_id, None)
                self._receipts.pop(message_id, None)
                self._runners.discard(threading.current_thread())

    def _delete(self, receipt: str) -> None:
        """Remove a settled message, retrying while AWS is away; gone with moto's state is gone too."""
        backoff = Backoff()
        while True:
            try:
                self._sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=receipt)
                return
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in _GONE:
                    return
                self._fault("poll", exc)
            except Exception as exc:
                self._fault("poll", exc)
            if self._stop.wait(backoff.next()):
                return

    def handle(self, body: str, lease: Lease | None = None) -> bool:
        """One message from the rule's queue, to its end: never raises; True once it is settled."""
        event: dict[str, Any] | None = None
        try:
            parsed = json.loads(body)
            if not isinstance(parsed, dict):
                raise TypeError(f"the message is a JSON {type(parsed).__name__}, not an EventBridge event")
            event = parsed
            # moto leaves out `account`, which EventBridge always sets on what Lambda receives.
            event.setdefault("account", ACCOUNT_ID)
            return self.deliver(event, lease.invoke if lease is not None else self.function.invoke)
        except Exception as exc:
            stage = "report" if isinstance(exc, _ReportError) else "event"
            cause = exc.__cause__ if isinstance(exc, _ReportError) and exc.__cause__ else exc
            self._fault(stage, cause)
            return self._undeliverable(body, event, f"local worker ({stage}): {type(cause).__name__}: {cause}")

    def deliver(self, event: dict[str, Any], invoke: Callable[[dict[str, Any]], Any] | None = None) -> bool:
        """Invoke with retries, then Lambda's on-failure path; True when settled (a run succeeded, or the
        failure was written to a queue).

        Raises `_ReportError` (after the delivery is complete) when a report callback raised.
        """
        invoke = invoke or self.function.invoke
        report_error: Exception | None = None
        error_type, error_message = "", ""
        attempts = self.target.retries + 1
        for attempt in range(1, attempts + 1):
            with watch_idempotency() as watch:
                try:
                    result = invoke(event)
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
                # Lambda waits 1 and 2 minutes between asynchronous attempts; locally, scaled down.
                self._stop.wait(RETRY_DELAY_SECONDS * attempt)
        try:
            queue = send_failed_invocation(self.target, event, attempts, error_type, error_message)
        except Exception as exc:
            self._fault("dead-letter", exc)
            settled = self._undeliverable(json.dumps(event), event, f"on-failure destination refused the record: {exc}")
        else:
            settled = True
            self._dead_lettered(
                DeadLetter(self.target, event, queue, f"{error_type}: {error_message}", True, time.time())
            )
        if report_error is not None:
            raise _ReportError(str(report_error)) from report_error
        return settled

    def _undeliverable(self, body: str, event: dict[str, Any] | None, reason: str) -> bool:
        """EventBridge's path: the rule's dead-letter queue, with its attributes; False when AWS refused it
        (then the message stays with the worker, to be tried again)."""
        try:
            queue: str | None = send_undelivered(self.target, body, reason)
        except Exception as exc:
            self._fault("dead-letter", exc)
            return False
        self._dead_lettered(DeadLetter(self.target, event, queue, reason, False, time.time()))
        return True

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
