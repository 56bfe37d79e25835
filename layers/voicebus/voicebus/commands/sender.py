"""Sending one validated command through the telnyx SDK, retrying only what is worth retrying.

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
- any other 4xx: `CommandRejectedError`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import httpx
from aws_lambda_powertools import Logger
from telnyx import (
    APIConnectionError,
    APIStatusError,
    AuthenticationError,
    InternalServerError,
    RateLimitError,
    Telnyx,
    UnprocessableEntityError,
)

from voicebus.calls import client_state as client_state_codec
from voicebus.commands.client import API_KEY_SECRET_VARIABLE, API_KEY_VARIABLE, get_client, load_api_key
from voicebus.commands.ids import command_id
from voicebus.commands.models import CallCommand, ClientStateUpdate

DEFAULT_KEY_SOURCE = f"{API_KEY_VARIABLE}, or the Secrets Manager secret named by {API_KEY_SECRET_VARIABLE}"


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


class CommandSendError(RuntimeError):
    """A command was not carried out; the subclass says whether trying again can help."""

    def __init__(self, message: str, *, action: str, call_control_id: str, command_id: str | None) -> None:
        super().__init__(message)
        self.action = action
        self.call_control_id = call_control_id
        self.command_id = command_id


class CommandRetryableError(CommandSendError):
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


class CommandRejectedError(CommandSendError):
    """Telnyx refused the request with a 4xx other than 401 and 422; retrying the same request cannot help."""

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


class TelnyxAuthenticationError(CommandSendError):
    """Telnyx answered 401: the API key is wrong, revoked or missing. No command will work until it is fixed."""


class CommandOptionError(ValueError):
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
    """Sends commands with one SDK client; cheap to build, so build it once per container or per invocation."""

    def __init__(
        self,
        client: Telnyx,
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
        Build `client` with `max_retries=0` (as `client.build_client` does): this class retries.
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
        return cls(get_client(key, environ), key_source=key.source, **options)

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
        kwargs, cid = self._request(command, webhook_id, client_state, discriminator)
        where: dict[str, Any] = {"action": command.action, "call_control_id": call_control_id, "command_id": cid}
        method = getattr(self._client.calls.actions, command.sdk_method)
        attempt = 0
        while True:
            attempt += 1
            timeout = self._attempt_timeout(remaining_ms)
            try:
                response = method(call_control_id, **kwargs, **({"timeout": timeout} if timeout else {}))
            except AuthenticationError as exc:
                raise TelnyxAuthenticationError(
                    f"Telnyx refused the API key (401) sending {command.action}: the key in {self._key_source} "
                    "is wrong, revoked or missing",
                    **where,
                ) from exc
            except UnprocessableEntityError as exc:
                outcome = CommandOutcome(
                    command.action,
                    call_control_id,
                    cid,
                    OutcomeStatus.REJECTED,
                    attempt,
                    errors=error_details(exc.body),
                )
                self._logger.warning("Telnyx rejected the command", extra={**where, "reason": outcome.reason})
                return outcome
            except (RateLimitError, InternalServerError, APIConnectionError) as exc:
                status_code = exc.status_code if isinstance(exc, APIStatusError) else None
                delay = self._backoff(attempt, exc)
                if not self._may_retry(attempt, delay, remaining_ms):
                    raise CommandRetryableError(
                        f"{command.action} failed after {attempt} attempt(s): {_describe_failure(exc)}",
                        attempts=attempt,
                        status_code=status_code,
                        **where,
                    ) from exc
                self._logger.warning(
                    "Telnyx command failed; retrying",
                    extra={
                        **where,
                        "attempt": attempt,
                        "delay_seconds": round(delay, 3),
                        "error": _describe_failure(exc),
                    },
                )
                self._sleep(delay)
                continue
            except APIStatusError as exc:
                errors = error_details(exc.body)
                raise CommandRejectedError(
                    f"Telnyx refused {command.action} with {exc.status_code}: "
                    + ("; ".join(e.detail or e.title or "" for e in errors) or exc.message),
                    status_code=exc.status_code,
                    errors=errors,
                    **where,
                ) from exc
            data = getattr(response, "data", None)
            result = getattr(data, "result", None)
            return CommandOutcome(
                command.action,
                call_control_id,
                cid,
                OutcomeStatus.ACCEPTED,
                attempt,
                result=result if isinstance(result, str) else None,
            )

    @staticmethod
    def _request(
        command: CallCommand, webhook_id: str, client_state: Any, discriminator: str
    ) -> tuple[dict[str, Any], str | None]:
        """The SDK keyword arguments, with command_id and client_state where the command takes them."""
        kwargs = command.sdk_kwargs()
        cid = command_id(webhook_id, command.action, discriminator) if command.takes_command_id else None
        if cid is not None:
            kwargs["command_id"] = cid
        if client_state is not None:
            if not command.takes_client_state:
                hint = "; set the command's own client_state" if isinstance(command, ClientStateUpdate) else ""
                raise CommandOptionError(f"{command.action} cannot carry a client_state set by the sender{hint}")
            kwargs["client_state"] = client_state_codec.encode(client_state)
        return kwargs, cid

    def _backoff(self, attempt: int, error: Exception) -> float:
        """Exponential with jitter (half fixed, half random); a Retry-After on a 429 is a floor."""
        ceiling = min(self._max_delay, self._base_delay * 2.0 ** (attempt - 1))
        delay = ceiling / 2 + self._jitter.uniform(0, ceiling / 2)
        if isinstance(error, RateLimitError):
            retry_after = _retry_after_seconds(error.response)
            if retry_after is not None:
                delay = max(delay, retry_after)
        return delay

    def _may_retry(self, attempt: int, delay: float, remaining_ms: Callable[[], int] | None) -> bool:
        if attempt >= self._max_attempts or delay > self._max_retry_after:
            return False
        if remaining_ms is None:
            return True
        return remaining_ms() - delay * 1000 >= self._safety_margin_ms + self._min_attempt_ms

    def _attempt_timeout(self, remaining_ms: Callable[[], int] | None) -> httpx.Timeout | None:
        """The client's timeout, shortened so an attempt ends before the safety margin; None keeps it as is."""
        if remaining_ms is None:
            return None
        budget = max(remaining_ms() - self._safety_margin_ms, self._min_attempt_ms) / 1000
        configured = self._client.timeout
        if isinstance(configured, httpx.Timeout):
            read, connect = configured.read, configured.connect
        elif isinstance(configured, int | float):
            read = connect = float(configured)
        else:
            read = connect = None
        if read is not None and read <= budget and (connect is None or connect <= budget):
            return None
        return httpx.Timeout(min(read or budget, budget), connect=min(connect or budget, budget))


def _retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def _describe_failure(error: Exception) -> str:
    if isinstance(error, APIStatusError):
        return f"HTTP {error.status_code}"
    return f"{type(error).__name__}: {error}"
