"""Sending one validated command to Telnyx, retrying only what is worth retrying.

What each answer means for the caller:

- 2xx: accepted (`CommandOutcome.status` ACCEPTED).
- 422: Telnyx understood and refused, typically because the call has already
  ended. Retrying cannot help, and it is not a fault of voicebus: the outcome
  is REJECTED with Telnyx's error details, for the caller to record on the call.
- 429, 5xx, connection errors and timeouts: retried here with short exponential
  backoff while the invocation has time left, then `CommandRetryableError`, so
  that EventBridge retries the invocation and the DLQ catches what never works.
  Every attempt carries the same command_id, so Telnyx acts at most once.
- 401: `TelnyxAuthenticationError`, naming where the key came from.
- any other status: `CommandRejectedError`.

Requests go over urllib3 (`voicebus.commands.http`), not the telnyx SDK: this
module imports neither the SDK nor the command models, so the call-control and
command functions start without them.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import urllib3
from aws_lambda_powertools import Logger

from voicebus.calls import client_state as client_state_codec
from voicebus.commands.client import API_KEY_SECRET_VARIABLE, API_KEY_VARIABLE, load_api_key
from voicebus.commands.http import CallControlClient, TelnyxConnectionError, TelnyxResponse, get_call_control_client
from voicebus.commands.ids import command_id
from voicebus.commands.validation import CallCommand
from voicebus.errors import PermanentError, RetryableError, VoicebusError

DEFAULT_KEY_SOURCE = f"{API_KEY_VARIABLE}, or the Secrets Manager secret named by {API_KEY_SECRET_VARIABLE}"
CLIENT_STATE_UPDATE = "client_state_update"


class OutcomeStatus(StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"  # a 422: Telnyx will not run this command on this call


@dataclass(frozen=True)
class TelnyxErrorDetail:
    """One entry of Telnyx's `{"errors": [...]}` body."""

    code: str | None
    title: str | None
    detail: str | None
    pointer: str | None = None  # source.pointer: the offending body field, when Telnyx names one


@dataclass(frozen=True)
class CommandOutcome:
    """How one command ended, for the caller to record on the call."""

    action: str
    call_control_id: str
    command_id: str | None
    status: OutcomeStatus
    attempts: int
    result: str | None = None  # Telnyx's data.result ("ok") when accepted
    errors: tuple[TelnyxErrorDetail, ...] = ()

    @property
    def accepted(self) -> bool:
        return self.status is OutcomeStatus.ACCEPTED

    @property
    def rejected(self) -> bool:
        return self.status is OutcomeStatus.REJECTED

    @property
    def reason(self) -> str | None:
        """Telnyx's first error, as one line: `90018 Call has already ended: This call is no longer active...`."""
        if not self.errors:
            return None
        first = self.errors[0]
        head = " ".join(part for part in (first.code, first.title) if part)
        return f"{head}: {first.detail}" if first.detail else head or None


class CommandSendError(VoicebusError):
    """A command was not carried out; the subclass says whether trying again can help."""

    def __init__(self, message: str, *, action: str, call_control_id: str, command_id: str | None) -> None:
        super().__init__(message)
        self.action = action
        self.call_control_id = call_control_id
        self.command_id = command_id


class CommandRetryableError(CommandSendError, RetryableError):
    """Telnyx was busy, failing or unreachable for every attempt this invocation had time for.

    Let it propagate: the event source retries the invocation, with the same command_id.
    """

    def __init__(
        self,
        message: str,
        *,
        action: str,
        call_control_id: str,
        command_id: str | None,
        attempts: int,
        status_code: int | None,
    ) -> None:
        super().__init__(message, action=action, call_control_id=call_control_id, command_id=command_id)
        self.attempts = attempts
        self.status_code = status_code  # None for connection errors and timeouts


class CommandRejectedError(CommandSendError, PermanentError):
    """Telnyx refused the request with a status other than 401 and 422; retrying the same request cannot help."""

    def __init__(
        self,
        message: str,
        *,
        action: str,
        call_control_id: str,
        command_id: str | None,
        status_code: int,
        errors: tuple[TelnyxErrorDetail, ...],
    ) -> None:
        super().__init__(message, action=action, call_control_id=call_control_id, command_id=command_id)
        self.status_code = status_code
        self.errors = errors


class TelnyxAuthenticationError(CommandSendError, PermanentError):
    """Telnyx answered 401: the API key is wrong, revoked or missing. No command will work until it is fixed."""


class CommandOptionError(PermanentError, ValueError):
    """The send was asked for something this command cannot carry (a client_state where the spec has none)."""


def error_details(body: object) -> tuple[TelnyxErrorDetail, ...]:
    """Telnyx's error entries from a parsed error body; empty when the body has another shape."""
    if not isinstance(body, Mapping):
        return ()
    entries = body.get("errors")
    if not isinstance(entries, list):
        return ()
    details = []
    for entry in entries:
        if not isinstance(entry, Mapping):
            continue
        source = entry.get("source")
        pointer = source.get("pointer") if isinstance(source, Mapping) else None
        details.append(
            TelnyxErrorDetail(
                code=_text(entry.get("code")),
                title=_text(entry.get("title")),
                detail=_text(entry.get("detail")),
                pointer=_text(pointer),
            )
        )
    return tuple(details)


def _text(value: object) -> str | None:
    return None if value is None else str(value)


class CommandSender:
    """Sends commands with one Call Control client; cheap to build, so build it once per container or per invocation."""

    def __init__(
        self,
        client: CallControlClient,
        *,
        key_source: str = DEFAULT_KEY_SOURCE,
        max_attempts: int = 4,
        base_delay_seconds: float = 0.2,
        max_delay_seconds: float = 2.0,
        safety_margin_ms: int = 1500,
        min_attempt_ms: int = 500,
        max_retry_after_seconds: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
        logger: Logger | None = None,
    ) -> None:
        """`safety_margin_ms` is the time kept back for the handler after the last attempt;
        a retry is made only if, after its backoff, at least `min_attempt_ms` are left beyond it.
        A 429 whose Retry-After exceeds `max_retry_after_seconds` is left to the event source.
        """
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._client = client
        self._key_source = key_source
        self._max_attempts = max_attempts
        self._base_delay = base_delay_seconds
        self._max_delay = max_delay_seconds
        self._safety_margin_ms = safety_margin_ms
        self._min_attempt_ms = min_attempt_ms
        self._max_retry_after = max(max_retry_after_seconds, max_delay_seconds)
        self._sleep = sleep
        self._logger = logger or Logger(child=True)
        self._jitter = random.Random()  # noqa: S311 - backoff jitter, not cryptography

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None, **options: Any) -> CommandSender:
        """A sender on the container's cached client, its 401 errors naming where the key came from."""
        key = load_api_key(environ)
        return cls(get_call_control_client(key, environ), key_source=key.source, **options)

    def send(
        self,
        call_control_id: str,
        command: CallCommand,
        *,
        webhook_id: str,
        client_state: Any = None,
        discriminator: str = "",
        remaining_ms: Callable[[], int] | None = None,
    ) -> CommandOutcome:
        """Send `command` to the call, setting its command_id and (when given) its client_state.

        `webhook_id` is the triggering webhook's `data.id`; with the action and
        `discriminator` it fixes the command_id (see `ids.command_id`).
        `client_state` is any JSON value other than None, encoded with
        `voicebus.calls.client_state.encode` (raises `ClientStateError` when too large).
        `remaining_ms` is the Lambda context's `get_remaining_time_in_millis`:
        without it, only `max_attempts` bounds the retries.
        """
        body, cid = self._request(command, webhook_id, client_state, discriminator)
        where: dict[str, Any] = {"action": command.action, "call_control_id": call_control_id, "command_id": cid}
        attempt = 0
        while True:
            attempt += 1
            cause: TelnyxConnectionError | None = None
            retry_after: float | None = None
            try:
                response = self._client.send(
                    command.http_method,
                    call_control_id,
                    command.action,
                    body,
                    required=command.required_fields,
                    timeout=self._attempt_timeout(remaining_ms),
                )
            except TelnyxConnectionError as exc:
                failure, status_code, cause = str(exc), None, exc
            else:
                status_code = response.status
                if 200 <= status_code < 300:
                    return CommandOutcome(
                        command.action, call_control_id, cid, OutcomeStatus.ACCEPTED, attempt, result=_result(response)
                    )
                if status_code == 401:
                    raise TelnyxAuthenticationError(
                        f"Telnyx refused the API key (401) sending {command.action}: the key in {self._key_source} "
                        "is wrong, revoked or missing",
                        **where,
                    )
                errors = error_details(response.json())
                if status_code == 422:
                    outcome = CommandOutcome(
                        command.action, call_control_id, cid, OutcomeStatus.REJECTED, attempt, errors=errors
                    )
                    self._logger.warning("Telnyx rejected the command", extra={**where, "reason": outcome.reason})
                    return outcome
                if status_code != 429 and status_code < 500:
                    raise CommandRejectedError(
                        f"Telnyx refused {command.action} with {status_code}: "
                        + ("; ".join(e.detail or e.title or "" for e in errors) or f"HTTP {status_code}"),
                        status_code=status_code,
                        errors=errors,
                        **where,
                    )
                failure = f"HTTP {status_code}"
                retry_after = _retry_after_seconds(response) if status_code == 429 else None
            delay = self._backoff(attempt, retry_after)
            if not self._may_retry(attempt, delay, remaining_ms):
                raise CommandRetryableError(
                    f"{command.action} failed after {attempt} attempt(s): {failure}",
                    attempts=attempt,
                    status_code=status_code,
                    **where,
                ) from cause
            self._logger.warning(
                "Telnyx command failed; retrying",
                extra={**where, "attempt": attempt, "delay_seconds": round(delay, 3), "error": failure},
            )
            self._sleep(delay)

    @staticmethod
    def _request(
        command: CallCommand, webhook_id: str, client_state: Any, discriminator: str
    ) -> tuple[dict[str, Any], str | None]:
        """The JSON body, with command_id and client_state where the command takes them."""
        body = command.body()
        cid = command_id(webhook_id, command.action, discriminator) if command.takes_command_id else None
        if cid is not None:
            body["command_id"] = cid
        if client_state is not None:
            if not command.takes_client_state:
                own = command.action == CLIENT_STATE_UPDATE
                hint = "; set the command's own client_state" if own else ""
                raise CommandOptionError(f"{command.action} cannot carry a client_state set by the sender{hint}")
            body["client_state"] = client_state_codec.encode(client_state)
        return body, cid

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        """Exponential with jitter (half fixed, half random); a 429's Retry-After is a floor."""
        ceiling = min(self._max_delay, self._base_delay * 2.0 ** (attempt - 1))
        delay = ceiling / 2 + self._jitter.uniform(0, ceiling / 2)
        return delay if retry_after is None else max(delay, retry_after)

    def _may_retry(self, attempt: int, delay: float, remaining_ms: Callable[[], int] | None) -> bool:
        if attempt >= self._max_attempts or delay > self._max_retry_after:
            return False
        if remaining_ms is None:
            return True
        return remaining_ms() - delay * 1000 >= self._safety_margin_ms + self._min_attempt_ms

    def _attempt_timeout(self, remaining_ms: Callable[[], int] | None) -> urllib3.Timeout | None:
        """The client's timeout, shortened so an attempt ends before the safety margin; None keeps it as is."""
        if remaining_ms is None:
            return None
        budget = max(remaining_ms() - self._safety_margin_ms, self._min_attempt_ms) / 1000
        if self._client.connect_timeout + self._client.read_timeout <= budget:
            return None
        return self._client.timeout_within(budget)


def _result(response: TelnyxResponse) -> str | None:
    """Telnyx's `data.result` ("ok") of an accepted command."""
    body = response.json()
    data = body.get("data") if isinstance(body, Mapping) else None
    result = data.get("result") if isinstance(data, Mapping) else None
    return result if isinstance(result, str) else None


def _retry_after_seconds(response: TelnyxResponse) -> float | None:
    """Retry-After in seconds; None when absent or not a number (an HTTP date is ignored, as before)."""
    try:
        seconds = float(response.headers.get("retry-after", ""))
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
