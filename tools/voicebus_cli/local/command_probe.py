"""Seeing every Call Control command the functions send, to the stand-in or to the real Telnyx.

The HTTP client class is wrapped once; listeners hear each request with Telnyx's
status (or the connection error). This sees what the real API receives too, where
the stand-in's request log cannot.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SentCommand:
    function: str  # AWS_LAMBDA_FUNCTION_NAME of the sender
    call_control_id: str
    action: str
    body: dict[str, Any]  # as sent: params, command_id, client_state (base64)
    status: int | None  # None: no answer (connection error, timeout)
    error: str | None
    at: float


CommandListener = Callable[[SentCommand], None]

_LOCK = threading.Lock()
_LISTENERS: list[CommandListener] = []
_installed = False


def listen(listener: CommandListener) -> Callable[[], None]:
    """Hear every command sent from now on; returns what stops it."""
    _install()
    with _LOCK:
        _LISTENERS.append(listener)

    def stop() -> None:
        with _LOCK:
            if listener in _LISTENERS:
                _LISTENERS.remove(listener)

    return stop


def _tell(sent: SentCommand) -> None:
    with _LOCK:
        listeners = list(_LISTENERS)
    for listener in listeners:
        try:
            listener(sent)
        except Exception:  # noqa: S112 - a listener's failure must never fail the function's command
            continue


def _install() -> None:
    global _installed
    with _LOCK:
        if _installed:
            return
        from voicebus.commands.http import CallControlClient

        original = CallControlClient.send

        def send(
            self: CallControlClient, method: Any, call_control_id: str, action: str, body: Mapping[str, Any], **kw: Any
        ) -> Any:
            function = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "?")
            try:
                response = original(self, method, call_control_id, action, body, **kw)
            except Exception as exc:
                _tell(SentCommand(function, call_control_id, action, dict(body), None, str(exc), time.time()))
                raise
            _tell(SentCommand(function, call_control_id, action, dict(body), response.status, None, time.time()))
            return response

        setattr(CallControlClient, "send", send)  # noqa: B010
        _installed = True
