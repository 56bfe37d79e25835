"""Every `events/bus` sample to every function its rules target, in the Lambda runtime's containers.

`sam local start-lambda` runs the same image, emulator and build as `sam local invoke`,
but keeps each function's container warm, so all 54 samples take about as long as a
dozen cold invocations. Checked as tests/integration/test_consumers.py checks them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from tests.samlocal.conftest import INVOKE_TIMEOUT, LocalStack
from tests.samlocal.test_invoke import local_recording_urls
from tests.support.routing import recorders, targets
from voicebus.calls.store import CallStore
from voicebus_cli.local.storage import StorageServer
from voicebus_cli.webhooks import BUS_EVENTS_DIR

BUS_FILES = sorted(BUS_EVENTS_DIR.glob("*.json"))


class Lambdas:
    def __init__(self, url: str, local: LocalStack) -> None:
        config = Config(read_timeout=INVOKE_TIMEOUT, connect_timeout=10, retries={"max_attempts": 0})
        self.client = boto3.client("lambda", endpoint_url=url, config=config)
        self.local = local

    def invoke(self, function: str, event: dict[str, Any]) -> Any:
        answer = self.client.invoke(FunctionName=function, Payload=json.dumps(event).encode())
        payload = json.loads(answer["Payload"].read())
        assert "FunctionError" not in answer, (function, payload)
        return payload


@pytest.fixture(scope="module")
def lambdas(new_stack: Callable[[], LocalStack], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lambdas]:
    local = new_stack()
    log = tmp_path_factory.mktemp("start-lambda") / "sam.log"
    with local.sam.server("start-lambda", log, "--warm-containers", "LAZY") as url:
        yield Lambdas(url, local)


@pytest.mark.parametrize("path", BUS_FILES, ids=[path.name for path in BUS_FILES])
def test_each_bus_sample_is_recorded_by_its_function(path: Path, lambdas: Lambdas, storage: StorageServer) -> None:
    event = local_recording_urls(json.loads(path.read_text()), storage)
    data = event["detail"]["data"]

    results = {function: lambdas.invoke(function, event) for function in sorted(targets(event))}

    assert results
    for result in results.values():
        assert (result["event_id"], result["event_type"]) == (data["id"], data["event_type"])
    assert {name for name, result in results.items() if result["recorded"]} == recorders(event)
    call_control_id = data["payload"].get("call_control_id")
    if call_control_id:
        store = CallStore(boto3.client("dynamodb"), lambdas.local.ref("CallsTable"))
        assert data["id"] in {entry.event_id for entry in store.timeline(call_control_id)}
        record = store.get_call(call_control_id)
        assert record is not None
        assert record.call_session_id == data["payload"]["call_session_id"]
