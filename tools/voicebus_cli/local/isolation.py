"""What each execution environment sees as its own in a shared process: os.environ and sys.stdout.

Lambda gives every execution environment its own process. The local stack runs
environments as threads of one process, so the two process-wide things a function
reads per call are made per thread: os.environ (its template environment, and
whatever it writes there) and sys.stdout (its logs and EMF metrics, CloudWatch's
job in AWS). A thread outside an environment sees the real ones. Code that caught
the real objects before (`from os import environ`) or that runs in threads the
function starts itself (e.g. the archive writer's part uploads) sees the real
process environment, which holds the same AWS endpoint and credentials.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TextIO

# Name -> value as this thread's environment sees it; None: removed in this environment.
Overlay = dict[str, str | None]

_OVERLAY: ContextVar[Overlay | None] = ContextVar("voicebus_local_environ", default=None)
_STDOUT: ContextVar[TextIO | None] = ContextVar("voicebus_local_stdout", default=None)
_INSTALL_LOCK = threading.Lock()


class _ThreadEnviron(os._Environ[str]):
    """os.environ, overlaid with the current thread's environment when it has one."""

    def __init__(self, base: os._Environ[str]) -> None:
        data = base._data  # type: ignore[attr-defined]  # the real environment's store, shared
        super().__init__(data, base.encodekey, base.decodekey, base.encodevalue, base.decodevalue)

    def __getitem__(self, key: str) -> str:
        overlay = _OVERLAY.get()
        if overlay is not None and key in overlay:
            value = overlay[key]
            if value is None:
                raise KeyError(key)
            return value
        return super().__getitem__(key)

    def __setitem__(self, key: str, value: str) -> None:
        overlay = _OVERLAY.get()
        if overlay is None:
            super().__setitem__(key, value)
        else:
            overlay[str(key)] = str(value)

    def __delitem__(self, key: str) -> None:
        overlay = _OVERLAY.get()
        if overlay is None:
            super().__delitem__(key)
            return
        if key not in self:
            raise KeyError(key)
        overlay[key] = None

    def __iter__(self) -> Iterator[str]:
        overlay = _OVERLAY.get()
        if overlay is None:
            yield from super().__iter__()
            return
        base = [key for key in super().__iter__() if key not in overlay]
        yield from base
        yield from (key for key, value in overlay.items() if value is not None)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def copy(self) -> dict[str, str]:
        return dict(self)


class _ThreadStdout:
    """sys.stdout, sent to the current thread's stream when it has one."""

    def __init__(self, base: TextIO) -> None:
        self.base = base

    def _target(self) -> TextIO:
        return _STDOUT.get() or self.base

    def write(self, text: str) -> int:
        return self._target().write(text)

    def flush(self) -> None:
        self._target().flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target(), name)


def _install_environ() -> None:
    with _INSTALL_LOCK:
        if not isinstance(os.environ, _ThreadEnviron):
            os.environ = _ThreadEnviron(os.environ)  # noqa: B003 - a view over the same store, not a new one


def _install_stdout() -> None:
    """Wrap whatever sys.stdout is now (a test runner may have replaced it since)."""
    with _INSTALL_LOCK:
        if not isinstance(sys.stdout, _ThreadStdout):
            sys.stdout = _ThreadStdout(sys.stdout)


@contextmanager
def thread_environment(overlay: Overlay) -> Iterator[None]:
    """os.environ is the real one overlaid with `overlay` for this thread until the block ends.

    Writes to os.environ meanwhile go to `overlay` (kept by the caller: an environment's own).
    """
    _install_environ()
    token = _OVERLAY.set(overlay)
    try:
        yield
    finally:
        _OVERLAY.reset(token)


@contextmanager
def thread_stdout(stream: TextIO) -> Iterator[None]:
    """sys.stdout writes from this thread go to `stream` until the block ends."""
    _install_stdout()
    token = _STDOUT.set(stream)
    try:
        yield
    finally:
        _STDOUT.reset(token)
