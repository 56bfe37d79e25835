"""What the local stack can get back when moto loses its state (killed and restarted), and how.

moto keeps everything in memory, so a killed moto takes the bus, the rules, the queues
(with the events waiting in them), the tables (call state, idempotency records) and
the bucket with it. The local stack notices (a marker queue it made is gone), restarts moto
if it started it, provisions the template again under the same names (so every URL,
ARN and environment variable the functions hold stays right), and then delivers again
every event put on the bus from this process (`PutLog`) to each rule's function that
has not yet processed it and is not holding it (from the workers' own records).

Recovered: every accepted webhook and every event the functions put reaches each of its
functions once more if it had not been processed. Not recovered: the call records,
timelines, idempotency records, archived objects and dead letters written before the
kill; events put on the bus by other processes (your own scripts); and the bus
record's lines for events still queued for it at the kill.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.client import BaseClient
from moto.events.models import EventPattern

from voicebus_cli.local.template import ACCOUNT_ID


@dataclass(frozen=True)
class PutEntry:
    """One entry EventBridge accepted, as it was put."""

    bus: str
    source: str
    detail_type: str
    detail: str
    resources: tuple[str, ...]
    event_id: str
    at: float

    def delivered(self, region: str) -> dict[str, Any]:
        """The event in the shape a rule's target receives it, under its original id."""
        return {
            "version": "0",
            "id": self.event_id,
            "detail-type": self.detail_type,
            "source": self.source,
            "account": ACCOUNT_ID,
            "time": datetime.fromtimestamp(self.at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": region,
            "resources": list(self.resources),
            "detail": json.loads(self.detail),
        }


class PutLog:
    """Every entry PutEvents accepted from any client in this process, while the log is open."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[PutEntry] = []

    def entries(self, before: float | None = None) -> list[PutEntry]:
        with self._lock:
            return [entry for entry in self._entries if before is None or entry.at < before]

    def open(self) -> PutLog:
        _install()
        with _LOGS_LOCK:
            _LOGS.append(self)
        return self

    def close(self) -> None:
        with _LOGS_LOCK:
            if self in _LOGS:
                _LOGS.remove(self)

    def _record(self, params: dict[str, Any], response: dict[str, Any]) -> None:
        now = time.time()
        accepted = []
        for entry, result in zip(params.get("Entries", []), response.get("Entries", []), strict=False):
            if not result.get("EventId"):
                continue
            accepted.append(
                PutEntry(
                    bus=str(entry.get("EventBusName") or "default").rsplit("/", 1)[-1],
                    source=str(entry.get("Source", "")),
                    detail_type=str(entry.get("DetailType", "")),
                    detail=str(entry.get("Detail", "{}")),
                    resources=tuple(entry.get("Resources", [])),
                    event_id=str(result["EventId"]),
                    at=now,
                )
            )
        with self._lock:
            self._entries.extend(accepted)


_LOGS: list[PutLog] = []
_LOGS_LOCK = threading.Lock()
_installed = False


def _install() -> None:
    """Wrap botocore's API call once; a no-op while no log is open."""
    global _installed
    with _LOGS_LOCK:
        if _installed:
            return
        original = BaseClient._make_api_call  # type: ignore[attr-defined]

        def logged(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
            response = original(client, operation, params)
            if operation == "PutEvents" and client.meta.service_model.service_name == "events":
                with _LOGS_LOCK:
                    logs = list(_LOGS)
                for log in logs:
                    log._record(params, response)
            return response

        BaseClient._make_api_call = logged  # type: ignore[attr-defined]
        _installed = True


@dataclass(frozen=True)
class Route:
    """A rule as the local stack routes it: which bus, which pattern, which function's queue."""

    function: str
    bus: str
    pattern: dict[str, Any]

    def matches(self, event: dict[str, Any]) -> bool:
        return bool(EventPattern.load(json.dumps(self.pattern)).matches_event(event))  # type: ignore[arg-type]


def undelivered(
    entries: list[PutEntry],
    routes: dict[str, Route],
    done: set[tuple[str, str]],
    region: str,
) -> list[tuple[str, dict[str, Any]]]:
    """(route key, event) for every entry whose function has not processed it and does not hold it.

    `done`: (function, event key) pairs processed or held by a worker now.
    """
    redeliver = []
    for entry in entries:
        event = entry.delivered(region)
        key = _event_key(event)
        for route_key, route in routes.items():
            if route.bus == entry.bus and (route.function, key) not in done and route.matches(event):
                redeliver.append((route_key, event))
    return redeliver


def _event_key(event: dict[str, Any]) -> str:
    detail = event.get("detail")
    data = detail.get("data") if isinstance(detail, dict) else None
    return str(data["id"]) if isinstance(data, dict) and "id" in data else str(event.get("id"))
