"""What happened in the local stack, from every side, as lines a person reads.

One journal for `make demo` (collected, then printed in time order) and `make local`
(printed as it happens): webhooks in with their answers, function runs and how they
ended, state written, commands sent to Telnyx with their params, objects archived,
flow reloads, dead letters and worker faults. Raw function logs go elsewhere.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

from voicebus.calls import client_state
from voicebus_cli.local.command_probe import SentCommand
from voicebus_cli.local.http_api import Exchange
from voicebus_cli.local.workers import DeadLetter, Invocation, WorkerFault

KIND_WIDTH = 15
MAX_TEXT = 220


@dataclass(order=True)
class Entry:
    at: float
    kind: str = field(compare=False)
    text: str = field(compare=False)


def _short(text: str, limit: int = MAX_TEXT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def describe_event(event: dict[str, Any]) -> str:
    """`call.answered v3:abc` for Telnyx events; `call.command speak v3:abc` for your own."""
    detail: dict[str, Any] = event["detail"] if isinstance(event.get("detail"), dict) else {}
    data = detail.get("data")
    if isinstance(data, dict):
        payload: dict[str, Any] = data["payload"] if isinstance(data.get("payload"), dict) else {}
        return f"{data.get('event_type', event.get('detail-type'))} {payload.get('call_control_id', '')}".strip()
    parts = [str(event.get("detail-type", "?")), str(detail.get("action", "")), str(detail.get("call_control_id", ""))]
    return " ".join(part for part in parts if part)


def describe_client_state(raw: Any) -> str:
    if not isinstance(raw, str):
        return _compact(raw)
    decoded = client_state.decode(raw)
    return _compact(decoded.value) if decoded.value is not None else raw


class Journal:
    """Entries from every side; printed as they come when `live` is a stream."""

    def __init__(self, live: TextIO | None = None) -> None:
        self.entries: list[Entry] = []
        self.invocations: list[Invocation] = []
        self._live = live
        self._lock = threading.Lock()

    def add(self, kind: str, text: str, at: float | None = None) -> None:
        entry = Entry(time.time() if at is None else at, kind, _short(text))
        with self._lock:
            self.entries.append(entry)
            if self._live is not None:
                clock = time.strftime("%H:%M:%S", time.localtime(entry.at)) + f".{int(entry.at * 1000) % 1000:03d}"
                self._live.write(f"{clock}  {entry.kind:<{KIND_WIDTH}} {entry.text}\n")
                self._live.flush()

    def print(self, started: float, out: TextIO | None = None) -> None:
        """Every entry in time order, as seconds since `started`."""
        with self._lock:
            entries = sorted(self.entries)
        for entry in entries:
            line = f"  +{entry.at - started:6.2f}s  {entry.kind:<{KIND_WIDTH}} {entry.text}"
            print(line, file=out, flush=True)

    # -- what the stack reports

    def invocation(self, run: Invocation) -> None:
        with self._lock:
            self.invocations.append(run)
        event = describe_event(run.event)
        if run.error:
            self.add("function FAILED", f"{run.function} on {event} (attempt {run.attempt}): {run.error}", run.at)
            return
        if run.short_circuited:
            self.add("function run", f"{run.function} on {event}: a duplicate, answered by idempotency", run.at)
            return
        result = run.result if isinstance(run.result, dict) else {}
        self.add("function run", f"{run.function} on {event}{self._outcome(result)}", run.at)
        if result.get("lanes_written"):
            self.add("state written", f"{', '.join(result['lanes_written'])} (by {event})", run.at)
        if result.get("lanes_stale"):
            stale = ", ".join(result["lanes_stale"])
            self.add("state kept", f"{stale}: already holds this event or a later one", run.at)
        for fmt, where in (result.get("archived") or {}).items():
            where = where if isinstance(where, dict) else {}
            self.add("object archived", f"{fmt}: {where.get('s3_uri') or where.get('external')}", run.at)
        if isinstance(result.get("transcript"), dict):
            self.add("object archived", f"transcript: {result['transcript'].get('s3_uri')}", run.at)

    @staticmethod
    def _outcome(result: dict[str, Any]) -> str:
        if isinstance(result.get("refused"), dict):
            return f": refused ({result['refused'].get('reason')})"
        flow = result.get("flow")
        if isinstance(flow, dict) and flow.get("decision"):
            reason = f" ({flow['reason']})" if flow.get("reason") else ""
            return f": flow {flow['decision']}{reason}"
        if result.get("outcome"):
            reason = f" ({result['reason']})" if result.get("reason") else ""
            return f": {result['outcome']}{reason}"
        return ""

    def exchange(self, exchange: Exchange) -> None:
        """A request to the HTTP API and its answer."""
        try:
            data = json.loads(exchange.body).get("data", {})
            what = str(data.get("event_type") or "?")
        except (ValueError, AttributeError):
            what = f"{exchange.method} {exchange.path} ({len(exchange.body)} bytes, not JSON)"
        try:
            answer = json.loads(exchange.answer)
            said = answer.get("status") or ": ".join(str(answer[k]) for k in ("error", "message") if k in answer)
        except (ValueError, AttributeError):
            said = exchange.answer[:80].decode("utf-8", "replace")
        self.add("webhook in", f"{what} -> HTTP {exchange.status} {said}", exchange.at)

    def command(self, sent: SentCommand) -> None:
        params = {name: value for name, value in sent.body.items() if name not in ("command_id", "client_state")}
        raw_state = sent.body.get("client_state")
        state = f" client_state={describe_client_state(raw_state)}" if raw_state is not None else ""
        answer = f"HTTP {sent.status}" if sent.status is not None else f"no answer ({sent.error})"
        kind = "command sent" if sent.status is not None and sent.status < 300 else "command FAILED"
        self.add(kind, f"{sent.action} {_compact(params)}{state} -> {answer}", sent.at)

    def bus_event(self, event: dict[str, Any]) -> None:
        """Events put on the bus by anyone but the ingress (whose webhooks show as "webhook in")."""
        if event.get("source") == "telnyx":
            return
        detail: dict[str, Any] = event["detail"] if isinstance(event.get("detail"), dict) else {}
        reason = f": {detail['reason']}" if detail.get("reason") else ""
        self.add("on the bus", f"{describe_event(event)}{reason}", time.time())

    def dead_letter(self, letter: DeadLetter) -> None:
        what = describe_event(letter.event) if letter.event else "an unreadable message"
        path = "on-failure destination" if letter.failed_invocation else "rule dead-letter queue"
        where = letter.queue_url.rsplit("/", 1)[-1] if letter.queue_url else "NOWHERE (left in the rule's queue)"
        self.add("dead letter", f"{what} for {letter.target.key} -> {path} {where}: {letter.reason}", letter.at)

    def fault(self, fault: WorkerFault) -> None:
        self.add("worker fault", f"{fault.target.key} ({fault.stage}): {fault.error}", fault.at)

    def reload(self, function: str, error: Exception | None) -> None:
        if error is None:
            self.add("flows reloaded", f"{function} re-imported: the next event runs the changed flows")
        else:
            self.add("flows INVALID", f"{function} keeps its previous flows: {error}")
