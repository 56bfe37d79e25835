"""What the local stack's workers report: each function run, each dead letter, each fault of their own."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any

from voicebus_cli.local.dead_letters import RuleTarget


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
