"""Driving SAM CLI's `sam local` commands against a build from scripts/samlocal/build.py.

Every function runs in SAM's container (the Python 3.13 Lambda image, AWS's Runtime
Interface Emulator, the code under /var/task and the layers under /opt) with the
environment the template declares, overridden by an `--env-vars` file.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SAM = ROOT / ".tools" / "sam" / "bin" / "sam"
REGION = "us-east-1"


class SamLocalError(RuntimeError):
    """`sam local` did not run the function, or a server it started did not come up."""


@dataclass(frozen=True)
class Invocation:
    """What `sam local invoke` printed: the function's result on stdout, its logs on stderr."""

    payload: Any
    logs: str
    seconds: float

    @property
    def failed(self) -> bool:
        return isinstance(self.payload, dict) and "errorType" in self.payload


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class SamLocal:
    """One built template and the environment its functions run with."""

    template: Path
    env_vars: Path
    credentials: Mapping[str, str]
    invoke_timeout: float

    def _command(self, *args: str) -> list[str]:
        return [
            str(SAM), "local", *args, "--template-file", str(self.template), "--env-vars", str(self.env_vars),
            "--skip-pull-image", "--region", REGION,
        ]  # fmt: skip

    def _env(self) -> dict[str, str]:
        # SAM hands the functions these credentials; AWS_ENDPOINT_URL reaches them only through --env-vars.
        env = {name: value for name, value in os.environ.items() if name != "AWS_ENDPOINT_URL"}
        return {**env, **self.credentials, "SAM_CLI_TELEMETRY": "0"}

    def invoke(self, function: str, event: Mapping[str, Any], event_file: Path) -> Invocation:
        """`sam local invoke FUNCTION -e EVENT`: one cold container, as the README shows it."""
        event_file.write_text(json.dumps(event))
        started = time.monotonic()
        done = subprocess.run(
            [*self._command("invoke", function, "--event", str(event_file))],
            capture_output=True,
            text=True,
            env=self._env(),
            timeout=self.invoke_timeout,
            check=False,
        )
        seconds = time.monotonic() - started
        event_file.with_suffix(".log").write_text(done.stderr)  # the function's own logs, beside its event
        lines = [line for line in done.stdout.splitlines() if line.strip()]
        if done.returncode != 0 or not lines:
            raise SamLocalError(f"sam local invoke {function} exited {done.returncode}:\n{done.stderr[-4000:]}")
        return Invocation(json.loads(lines[-1]), done.stderr, seconds)

    @contextmanager
    def server(self, kind: str, log_file: Path, *extra: str) -> Iterator[str]:
        """`sam local start-api` or `start-lambda` on a free loopback port until the block ends: its URL."""
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        with log_file.open("w") as log:
            process = subprocess.Popen(
                [*self._command(kind, "--host", "127.0.0.1", "--port", str(port), *extra)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self._env(),
                start_new_session=True,
            )
            try:
                wait_for_port(port, process, log_file)
                yield url
            finally:
                process.terminate()
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def wait_for_port(port: int, process: subprocess.Popen[bytes], log_file: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SamLocalError(f"sam exited with {process.returncode}:\n{log_file.read_text()[-4000:]}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.25)
    raise SamLocalError(f"sam did not listen on {port} within {timeout} s:\n{log_file.read_text()[-4000:]}")


def http_status(url: str, method: str = "GET") -> int:
    """The status of a plain request (for the API's method checks)."""
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
