"""Shared fixtures: moto server on 127.0.0.1 for the whole run, a fresh stack per test.

Every stack is provisioned from template.yaml under a unique name, so tests share
one moto server without sharing resources.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import boto3
import pytest

from tests.support.bus import BusTap
from voicebus.calls.store import CallStore
from voicebus_cli.local.functions import LoadedFunction
from voicebus_cli.local.moto_server import MotoServer
from voicebus_cli.local.provision import ProvisionedStack, provision
from voicebus_cli.local.storage import StorageServer
from voicebus_cli.local.telnyx_api import TelnyxApiStandIn
from voicebus_cli.local.template import Stack, load_template
from voicebus_cli.testkey import TestKeyPair, load_test_key

DUMMY_SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:voicebus-telnyx-api-key-AbCdEf"


@pytest.fixture(scope="session")
def test_key() -> TestKeyPair:
    return load_test_key()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    with MotoServer() as server, pytest.MonkeyPatch.context() as patch:
        for name, value in server.environment().items():
            patch.setenv(name, value)
        yield server


@pytest.fixture
def stack(moto_server: MotoServer, test_key: TestKeyPair) -> ProvisionedStack:
    name = f"t{uuid.uuid4().hex[:10]}"
    parameters = {"TelnyxPublicKey": test_key.public_key_b64, "TelnyxApiKeySecretArn": DUMMY_SECRET_ARN}
    return provision(Stack(load_template(), name, parameters=parameters))


@pytest.fixture
def bus_tap(stack: ProvisionedStack) -> BusTap:
    """Every event on the stack's bus, as an SQS queue shows it."""
    return BusTap.on(stack.ref("EventBus"), f"{stack.stack.name}-tap")


@pytest.fixture
def ingress(stack: ProvisionedStack) -> LoadedFunction:
    function = stack.functions["IngressFunction"]
    return LoadedFunction("IngressFunction", function.code_uri, function.handler, function.environment)


@pytest.fixture(scope="session")
def storage() -> Iterator[StorageServer]:
    """Telnyx's recording storage, standing in on 127.0.0.1."""
    with StorageServer() as server:
        yield server


@pytest.fixture(scope="session")
def telnyx_stand_in() -> Iterator[TelnyxApiStandIn]:
    """The local Telnyx API (checks every request against the OpenAPI spec), for the whole run."""
    with TelnyxApiStandIn() as api:
        yield api


@pytest.fixture
def telnyx_api(telnyx_stand_in: TelnyxApiStandIn) -> TelnyxApiStandIn:
    """The stand-in with no requests or faults left over from earlier tests."""
    telnyx_stand_in.clear()
    return telnyx_stand_in


class LazyFunctions(dict[str, LoadedFunction]):
    """Functions behind rules, each loaded (cold-started) the first time a test uses it.

    Their Telnyx calls go to the stand-in: TELNYX_API_KEY and TELNYX_BASE_URL are set
    on top of the template's environment, as a local run does.
    """

    def __init__(self, stack: ProvisionedStack, telnyx_api: TelnyxApiStandIn) -> None:
        super().__init__()
        self._stack = stack
        self._telnyx_env = {"TELNYX_API_KEY": telnyx_api.api_key, "TELNYX_BASE_URL": telnyx_api.base_url}

    def __missing__(self, name: str) -> LoadedFunction:
        function = self._stack.functions[name]
        env = {**function.environment, **self._telnyx_env}
        loaded = LoadedFunction(name, function.code_uri, function.handler, env)
        self[name] = loaded
        return loaded


@pytest.fixture
def consumers(stack: ProvisionedStack, telnyx_api: TelnyxApiStandIn) -> LazyFunctions:
    return LazyFunctions(stack, telnyx_api)


@pytest.fixture
def call_store(stack: ProvisionedStack) -> CallStore:
    return CallStore(boto3.client("dynamodb"), stack.ref("CallsTable"))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The reliability figures measured in this run (see tests/support/report.py)."""
    from tests.support.report import render

    lines = render()
    if lines:
        terminalreporter.section("reliability summary")
        for line in lines:
            terminalreporter.write_line(line)
