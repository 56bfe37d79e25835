"""The local provisioner on an existing bus: no bus of its own, every rule and variable on the named one."""

from __future__ import annotations

import uuid

import boto3
import pytest

from tests.conftest import DUMMY_SECRET_ARN
from voicebus_cli.local.moto_server import MotoServer
from voicebus_cli.local.provision import provision
from voicebus_cli.local.template import Stack, load_template
from voicebus_cli.testkey import TestKeyPair

pytestmark = pytest.mark.integration


def test_a_stack_on_an_existing_bus_creates_none_and_routes_on_it(
    moto_server: MotoServer, test_key: TestKeyPair
) -> None:
    name = f"t{uuid.uuid4().hex[:10]}"
    existing = f"{name}-orders"
    events = boto3.client("events")
    events.create_event_bus(Name=existing)
    parameters = {
        "TelnyxPublicKey": test_key.public_key_b64,
        "TelnyxApiKeySecretArn": DUMMY_SECRET_ARN,
        "ExistingEventBusName": existing,
    }

    provisioned = provision(Stack(load_template(), name, parameters=parameters))

    buses = {bus["Name"] for bus in events.list_event_buses()["EventBuses"]}
    assert f"{name}-telnyx" not in buses
    assert "EventBus" not in provisioned.stack.physical
    assert {f.environment["EVENT_BUS_NAME"] for f in provisioned.functions.values()} == {existing}
    rules = {rule["Name"] for rule in events.list_rules(EventBusName=existing)["Rules"]}
    routed = {rule for function in provisioned.functions.values() for rule in function.rule_queues}
    assert routed and len(rules) == sum(len(f.rule_queues) for f in provisioned.functions.values())
