"""A function's execution environments, as Lambda keeps them: a pool per function, a concurrency limit.

Each environment is a `LoadedFunction`: the handler module imported afresh (its own
module init: clients, settings, flow runner, Powertools Logger and Metrics objects)
with its own view of os.environ and stdout, running one event at a time. The pool
starts an environment (a cold start) only when every existing one is busy and the
function is under its limit; an invocation over the limit waits for a free one, as
Lambda's asynchronous queue waits out throttling. Idle environments are reused.

Shared by every environment in the process, unlike Lambda: the interpreter (one
GIL: waits on I/O overlap, Python code does not), and modules imported through
`sys.modules`, i.e. the `voicebus` layer and third-party packages. The layer keeps no
per-call state at module level (settings are read at init into the handler
module's objects; its module-level caches hold a Call Control HTTP client and the
SDK client, both thread-safe). Powertools keeps some state per process: `Metrics`
shares one metric set across instances and `Logger` one logger per service name, so
under concurrency a metric or a log key can show up in another invocation's output.
That touches logs and metrics only, never what an event does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any, TextIO

from voicebus_cli.local.functions import LoadedFunction, ReloadCallback

# Told each new environment's module after its init (tests replace a client there, as an extension could).
InitHook = Callable[[ModuleType], None]


class SharedConcurrency:
    """Concurrency that several functions draw from: the account's unreserved pool, locally."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"a concurrency pool must hold at least 1, got {limit}")
        self.limit = limit
        self._slots = threading.BoundedSemaphore(limit)
        self._lock = threading.Lock()
        self._in_use = 0

    @property
    def free(self) -> int:
        with self._lock:
            return self.limit - self._in_use

    def acquire(self, timeout: float | None) -> bool:
        if not self._slots.acquire(timeout=timeout):
            return False
        with self._lock:
            self._in_use += 1
        return True

    def release(self) -> None:
        with self._lock:
            self._in_use -= 1
        self._slots.release()


class Lease:
    """One unit of the function's concurrency, taken before an event is handed to it."""

    def __init__(self, pool: FunctionPool) -> None:
        self._pool = pool
        self._released = False

    def invoke(self, event: dict[str, Any]) -> Any:
        """Run `event` in an idle environment (or a new one), which no other event uses meanwhile."""
        environment = self._pool._take()
        try:
            return environment.invoke(event)
        finally:
            self._pool._give(environment)

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._pool._returned()


class FunctionPool:
    """Up to `limit` execution environments of one function; `invoke` runs an event in one of them."""

    def __init__(
        self,
        name: str,
        code_uri: str | Path,
        handler: str,
        env: dict[str, str],
        limit: int,
        stdout: TextIO | None = None,
        watch: Path | None = None,
        on_reload: ReloadCallback | None = None,
        shared: SharedConcurrency | None = None,
    ) -> None:
        """`shared`: a pool this function also draws from (functions without reserved concurrency)."""
        if limit < 1:
            raise ValueError(f"{name}: a concurrency limit must be at least 1, got {limit}")
        self.name = name
        self.limit = limit
        self._source = (code_uri, handler, env, stdout, watch, on_reload)
        self.env = {"AWS_LAMBDA_FUNCTION_NAME": name, **env}
        self._slots = threading.BoundedSemaphore(limit)
        self._shared = shared
        self._lock = threading.Lock()
        self._idle: list[LoadedFunction] = []
        self._all: list[LoadedFunction] = []
        self._hooks: list[InitHook] = []
        self.cold_starts = 0
        self._in_use = 0
        self.running = 0
        self.peak_running = 0  # the most events this function ran at the same time

    @property
    def environments(self) -> list[LoadedFunction]:
        with self._lock:
            return list(self._all)

    def on_init(self, hook: InitHook) -> None:
        """Apply `hook` to every environment's module: those running now and every later cold start."""
        with self._lock:
            self._hooks.append(hook)
            existing = list(self._all)
        for environment in existing:
            hook(environment.module)

    def warm(self) -> LoadedFunction:
        """Start one environment now (so a broken function fails at start, as `sam local` shows it)."""
        with self.lease():
            environment = self._take()
            self._give(environment)
        return environment

    @contextmanager
    def lease(self, timeout: float | None = None) -> Iterator[Lease]:
        """One unit of concurrency for the block (waiting for one when all are in use)."""
        if not self._acquire(timeout):
            raise TimeoutError(f"{self.name}: no execution environment free within {timeout} s")
        lease = self._leased()
        try:
            yield lease
        finally:
            lease.release()

    def try_leases(self, most: int, wait: float) -> list[Lease]:
        """Up to `most` units: waits up to `wait` s for the first, then takes only what is free."""
        leases: list[Lease] = []
        if not self._acquire(wait):
            return leases
        leases.append(self._leased())
        while len(leases) < most and self._acquire(0):
            leases.append(self._leased())
        return leases

    def _acquire(self, timeout: float | None) -> bool:
        """The function's own unit, then the shared pool's (both or neither)."""
        if not self._slots.acquire(timeout=timeout):
            return False
        if self._shared is not None and not self._shared.acquire(timeout):
            self._slots.release()
            return False
        return True

    @property
    def free(self) -> int:
        """Units of concurrency no event holds now."""
        with self._lock:
            own = self.limit - self._in_use
        return min(own, self._shared.free) if self._shared is not None else own

    def _leased(self) -> Lease:
        with self._lock:
            self._in_use += 1
        return Lease(self)

    def _returned(self) -> None:
        with self._lock:
            self._in_use -= 1
        if self._shared is not None:
            self._shared.release()
        self._slots.release()

    def invoke(self, event: dict[str, Any]) -> Any:
        with self.lease() as lease:
            return lease.invoke(event)

    def refresh(self) -> None:
        """Re-import changed watched files in idle environments (busy ones do it before their next event)."""
        with self._lock:
            idle = list(self._idle)
        for environment in idle:
            environment.refresh()

    def _take(self) -> LoadedFunction:
        with self._lock:
            environment = self._idle.pop() if self._idle else None
            self.running += 1
            self.peak_running = max(self.peak_running, self.running)
        if environment is None:
            try:
                environment = self._cold_start()
            except BaseException:
                with self._lock:
                    self.running -= 1
                raise
        return environment

    def _give(self, environment: LoadedFunction) -> None:
        with self._lock:
            self.running -= 1
            self._idle.append(environment)

    def _cold_start(self) -> LoadedFunction:
        code_uri, handler, env, stdout, watch, on_reload = self._source
        environment = LoadedFunction(self.name, code_uri, handler, env, stdout=stdout, watch=watch, on_reload=on_reload)
        with self._lock:
            hooks = list(self._hooks)
            self._all.append(environment)
            self.cold_starts += 1
        for hook in hooks:
            hook(environment.module)
        return environment
