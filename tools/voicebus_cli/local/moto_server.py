"""moto in server mode on 127.0.0.1: the local AWS every test and the demo talk to over HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from types import TracebackType

LOCAL_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


class MotoServerError(RuntimeError):
    """moto server did not start."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class MotoServer:
    """Starts `moto_server` on a free loopback port and stops it on exit."""

    def __init__(self, port: int | None = None, *, host: str = "127.0.0.1") -> None:
        """`host` other than loopback only for containers (`sam local`) that reach it at docker0's address."""
        self.host = host
        self.port = port or free_port(host)
        self.endpoint_url = f"http://{host}:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    def environment(self) -> dict[str, str]:
        """What points boto3's default clients here: AWS_ENDPOINT_URL and fake credentials."""
        return {**LOCAL_CREDENTIALS, "AWS_ENDPOINT_URL": self.endpoint_url}

    def start(self, timeout: float = 30.0) -> MotoServer:
        env = {**os.environ, **LOCAL_CREDENTIALS}
        env.pop("AWS_ENDPOINT_URL", None)
        env.pop("TELNYX_API_KEY", None)  # moto has no use for it
        # Its own session: Ctrl-C in the terminal reaches the parent only, which stops
        # its workers first and then this server (stop()), instead of AWS vanishing under them.
        self._process = subprocess.Popen(
            # moto's own server, with DynamoDB's item operations made atomic (see atomic_moto).
            [sys.executable, "-m", "voicebus_cli.local.atomic_moto", "-H", self.host, "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise MotoServerError(f"moto_server exited with {self._process.returncode}")
            try:
                with urllib.request.urlopen(f"{self.endpoint_url}/moto-api/", timeout=1):  # noqa: S310
                    return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise MotoServerError(f"moto_server did not answer on {self.endpoint_url} within {timeout} s")

    @property
    def alive(self) -> bool:
        """The server process is running (it may still be frozen)."""
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def restart(self) -> MotoServer:
        """A new, empty moto on the same port (so every endpoint URL and queue URL stays valid)."""
        self.stop()
        return self.start()

    def stop(self) -> None:
        if self._process and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
        self._process = None

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()
