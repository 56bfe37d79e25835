"""Running a function's handler in this process, with its environment from the template.

A `LoadedFunction` is one execution environment: the function's module imported
under a name of its own (they are all `app.py`), with its environment in place, as
Lambda's init does; it runs one event at a time, each with that environment again.
The environment is the thread's own (`isolation`): os.environ as the
function sees it, never changed for other threads, so environments of different
functions run side by side. A function may watch a folder of data files (the
call-control function its `flows/`): when one changes, the module is imported
again before the next invocation, a new cold start; when that import fails, the
previous module keeps serving and the failure is reported.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, TextIO

from voicebus_cli.local.isolation import Overlay, thread_environment, thread_stdout
from voicebus_cli.testkey import ROOT

Handler = Callable[[dict[str, Any], Any], Any]
# (function name, the import error or None): told after each re-import of a watched function.
ReloadCallback = Callable[[str, Exception | None], None]


@dataclass
class LocalContext:
    """The parts of Lambda's context object that Powertools reads."""

    function_name: str
    memory_limit_in_mb: int = 512
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    log_group_name: str = "local"
    log_stream_name: str = "local"
    # Lambda's longest timeout (the recording function's): what it has left bounds its downloads,
    # and a slow cold import of the telnyx SDK on a loaded machine must not eat a shorter made-up one.
    timeout_ms: int = 900_000

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return self.timeout_ms


@contextmanager
def environment(variables: Mapping[str, str]) -> Iterator[None]:
    """`variables` in os.environ for this thread for the duration; other threads never see them."""
    with thread_environment({**variables}):
        yield


class LoadedFunction:
    """A function's module, imported once (cold start), invoked many times."""

    def __init__(
        self,
        name: str,
        code_uri: str | Path,
        handler: str,
        env: Mapping[str, str],
        stdout: TextIO | None = None,
        watch: Path | None = None,
        on_reload: ReloadCallback | None = None,
    ) -> None:
        self.name = name
        # Lambda sets this; Powertools idempotency keys records by it, so two functions that
        # consume the same event (same data.id) keep separate records.
        self.env = {"AWS_LAMBDA_FUNCTION_NAME": name, **env}
        # os.environ as this environment's code sees it: what it writes there stays in this environment.
        self._environ: Overlay = {**self.env}
        # At most one event at a time in an execution environment (and no re-import during one).
        self._lock = threading.RLock()
        module_name, _, self._attribute = handler.rpartition(".")
        self.path = ROOT / code_uri / f"{module_name.replace('.', '/')}.py"
        # Where the function's logs and metrics go (CloudWatch, in AWS); stdout unless told otherwise.
        self._stdout = stdout
        self._watch = watch
        self._on_reload = on_reload
        self._fingerprint = fingerprint(watch) if watch is not None else ""
        self.module, self._handler = self._import()

    def _import(self) -> tuple[ModuleType, Handler]:
        spec = importlib.util.spec_from_file_location(f"voicebus_function_{self.name}_{uuid.uuid4().hex}", self.path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {self.path}")
        module = importlib.util.module_from_spec(spec)
        with thread_environment(self._environ), self._output():
            spec.loader.exec_module(module)
        handler: Handler = getattr(module, self._attribute)
        return module, handler

    def refresh(self) -> bool:
        """Import the module again if a watched file changed since the last import; True when it did.

        A failed import keeps the previous module (and is reported); the next change is tried again.
        """
        if self._watch is None:
            return False
        with self._lock:
            current = fingerprint(self._watch)
            if current == self._fingerprint:
                return False
            self._fingerprint = current
            try:
                self.module, self._handler = self._import()
            except Exception as exc:
                if self._on_reload is not None:
                    self._on_reload(self.name, exc)
                return False
        if self._on_reload is not None:
            self._on_reload(self.name, None)
        return True

    def invoke(self, event: dict[str, Any]) -> Any:
        with self._lock:
            self.refresh()
            with thread_environment(self._environ), self._output():
                return self._handler(event, LocalContext(function_name=self.name))

    def _output(self) -> contextlib.AbstractContextManager[Any]:
        return thread_stdout(self._stdout) if self._stdout else contextlib.nullcontext()


def fingerprint(directory: Path) -> str:
    """Names, times and contents of every file under `directory`: changes when any of them does."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        try:
            stat = path.stat()
            content = path.read_bytes()
        except OSError:
            continue  # removed while we looked: the next look sees it gone
        digest.update(f"{path.relative_to(directory)}\0{stat.st_mtime_ns}\0{stat.st_size}\0".encode())
        digest.update(hashlib.sha256(content).digest())
    return digest.hexdigest()


class IdempotencyWatch:
    """What Powertools' idempotency layer did during one invocation, seen at its persistence store.

    `claims`: records it tried to take; 0 means the function runs without idempotency
    (the record-only families), so only the run's own outcome says whether it did its work.
    `completed`: records it saved as COMPLETED, i.e. the guarded work ran to its end.
    `found_existing`: claims it could not take because a record for the key existed, i.e.
    it returned the stored result (or refused a duplicate still in progress) instead.
    """

    def __init__(self) -> None:
        self.claims = 0
        self.completed = 0
        self.found_existing = 0

    @property
    def guarded(self) -> bool:
        """The idempotency layer took part in the run."""
        return self.claims > 0


_WATCHES = threading.local()
_PROBE_LOCK = threading.Lock()
_probe_installed = False


def _current_watch() -> IdempotencyWatch | None:
    watch: IdempotencyWatch | None = getattr(_WATCHES, "current", None)
    return watch


def _install_idempotency_probe() -> None:
    """Wrap the persistence layer's claim and completion once; a no-op outside `watch_idempotency`."""
    global _probe_installed
    with _PROBE_LOCK:
        if _probe_installed:
            return
        from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyItemAlreadyExistsError
        from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer

        save_inprogress = BasePersistenceLayer.save_inprogress
        save_success = BasePersistenceLayer.save_success

        def claim(self: BasePersistenceLayer, *args: Any, **kwargs: Any) -> None:
            watch = _current_watch()
            if watch is not None:
                watch.claims += 1
            try:
                save_inprogress(self, *args, **kwargs)
            except IdempotencyItemAlreadyExistsError:
                watch = _current_watch()
                if watch is not None:
                    watch.found_existing += 1
                raise

        def complete(self: BasePersistenceLayer, *args: Any, **kwargs: Any) -> None:
            save_success(self, *args, **kwargs)
            watch = _current_watch()
            if watch is not None:
                watch.completed += 1

        setattr(BasePersistenceLayer, "save_inprogress", claim)  # noqa: B010
        setattr(BasePersistenceLayer, "save_success", complete)  # noqa: B010
        _probe_installed = True


@contextmanager
def watch_idempotency() -> Iterator[IdempotencyWatch]:
    """Watch the idempotency layer for the invocations this thread makes meanwhile."""
    _install_idempotency_probe()
    watch = IdempotencyWatch()
    previous = _current_watch()
    _WATCHES.current = watch
    try:
        yield watch
    finally:
        _WATCHES.current = previous
