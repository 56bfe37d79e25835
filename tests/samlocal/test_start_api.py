"""The ingress behind `sam local start-api`, sent signed webhooks with `curl`, as Telnyx sends them."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.samlocal.conftest import EMULATED, LocalStack
from tests.samlocal.sam import http_status
from tests.support.bus import BusTap
from voicebus_cli.testkey import TestKeyPair
from voicebus_cli.webhooks import raw_body, resign_event, webhook_event_files

PATH = "/webhooks/telnyx"
FILES = webhook_event_files()
RUN_FILES = [path for path in FILES if path.name == "call.initiated.json"] if EMULATED else FILES


class Api:
    def __init__(self, url: str, local: LocalStack) -> None:
        self.url = url
        self.local = local
        self.tap = BusTap.on(local.ref("EventBus"), f"{local.stack.stack.name}-tap")


@pytest.fixture(scope="module")
def api(new_stack: Callable[[], LocalStack], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    local = new_stack()
    log = tmp_path_factory.mktemp("start-api") / "sam.log"
    # LAZY: the first request starts the ingress's container, later ones reuse it, as a warm Lambda.
    with local.sam.server("start-api", log, "--warm-containers", "LAZY") as url:
        yield Api(url, local)


def curl(url: str, body: bytes, headers: dict[str, str], body_file: Path) -> tuple[int, dict[str, Any]]:
    """POST with curl; the status and the JSON answer."""
    body_file.write_bytes(body)
    command = [
        "curl",
        "--silent",
        "--show-error",
        "--max-time",
        "900",
        "--output",
        "-",
        "--write-out",
        "\n%{http_code}",
    ]
    for name, value in headers.items():
        command += ["--header", f"{name}: {value}"]
    command += ["--data-binary", f"@{body_file}", url]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    answer, _, status = done.stdout.rpartition("\n")
    return int(status), json.loads(answer) if answer.strip() else {}


def signed_headers(event: dict[str, Any], signing_key: Any) -> dict[str, str]:
    """The Telnyx headers of a freshly signed copy of the sample."""
    fresh = resign_event(event, signing_key, int(time.time()))
    headers = {name: value for name, value in fresh["headers"].items() if name.lower().startswith("telnyx-")}
    return {"content-type": "application/json", **headers}


@pytest.mark.parametrize("path", RUN_FILES, ids=[path.name for path in RUN_FILES])
def test_a_signed_webhook_is_answered_200_and_put_on_the_bus(
    path: Path, api: Api, test_key: TestKeyPair, tmp_path: Path
) -> None:
    event = json.loads(path.read_text())
    body = raw_body(event)
    document = json.loads(body)
    api.tap.drain()

    status, answer = curl(api.url + PATH, body, signed_headers(event, test_key.signing_key), tmp_path / "body.json")

    assert (status, answer.get("id")) == (200, document["data"]["id"]), answer
    [delivered] = api.tap.drain()
    assert (delivered["detail-type"], delivered["detail"]) == (document["data"]["event_type"], document)


def test_a_bad_signature_is_refused_401_and_never_reaches_the_bus(
    api: Api, test_key: TestKeyPair, tmp_path: Path
) -> None:
    event = json.loads(FILES[0].read_text())
    headers = signed_headers(event, test_key.signing_key)
    api.tap.drain()

    status, _ = curl(api.url + PATH, raw_body(event) + b" ", headers, tmp_path / "body.json")

    assert status == 401
    assert api.tap.drain() == []


def test_get_is_refused_405(api: Api) -> None:
    assert http_status(api.url + PATH) == 405
