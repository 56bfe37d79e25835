"""Every function run of `make local`, one JSON line each: what `bench/load.py` and you can count.

A line says which function ran which event (its `data.id`, else the bus event id), the
attempt, and how the run ended. Writing never raises: a full disk or a closed file is
counted in `failures` and the run goes on, so a log failure never costs a message.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import TextIO

from voicebus_cli.local.workers import Invocation


class RunLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.failures = 0
        self._lock = threading.Lock()
        self._file: TextIO | None = None

    def open(self) -> RunLog:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("w", encoding="utf-8")
        return self

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def write(self, run: Invocation) -> None:
        line = {
            "function": run.function,
            "event": run.event_key,
            "detail_type": run.event.get("detail-type"),
            "attempt": run.attempt,
            "processed": run.processed,
            "short_circuited": run.short_circuited,
            "guarded": run.guarded,
            "error": run.error,
            "at": run.at,
        }
        try:
            with self._lock:
                if self._file is None:
                    raise ValueError("the run log is closed")
                self._file.write(json.dumps(line, default=str) + "\n")
                self._file.flush()
        except (OSError, ValueError, TypeError):
            self.failures += 1


def read_runs(path: Path) -> list[dict[str, object]]:
    """The runs logged so far (a line still being written is skipped)."""
    runs = []
    for text in path.read_text(encoding="utf-8").splitlines() if path.exists() else []:
        try:
            runs.append(json.loads(text))
        except ValueError:
            continue
    return runs
