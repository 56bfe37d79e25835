"""What one call costs in DynamoDB writes, counted from the requests the local stack served.

`make demo`'s call (9 webhooks, one duplicate, one late) plays through every function
under an AwsMeter. Write units are a count, not a timing: the gate is exact. Before the
cuts the same call cost 126 units (by_call_session projecting ALL: 40; one identity
write per event beside the lane writes; idempotency records in record-only functions);
the target is <= 70.
"""

from __future__ import annotations

import pytest

from tests.support.demo_call import DemoCallCost, metered_demo_call
from voicebus_cli.local.moto_server import MotoServer

pytestmark = pytest.mark.integration

WRITE_UNIT_BUDGET = 70


@pytest.fixture(scope="module")
def cost(moto_server: MotoServer) -> DemoCallCost:
    return metered_demo_call(moto_server)


def _table(cost: DemoCallCost) -> str:
    rows = sorted(cost.by("target", "operation").items())
    lines = [f"{'table / index':<30}{'operation':<12}{'units':>6}"]
    lines += [f"{target:<30}{operation:<12}{units:>6}" for (target, operation), units in rows]
    lines.append(f"{'total':<42}{cost.meter.write_units:>6}")
    return "\n".join(lines)


def test_the_demo_call_costs_at_most_70_write_units(cost: DemoCallCost) -> None:
    print(f"\nDynamoDB write units of the demo call\n{_table(cost)}")
    assert cost.failed_runs == []
    assert cost.meter.charges, "the meter saw no DynamoDB write: it is not counting"
    assert cost.meter.write_units <= WRITE_UNIT_BUDGET


def test_the_session_index_is_written_once_per_leg(cost: DemoCallCost) -> None:
    """KEYS_ONLY: the index changes when a leg's STATE item first gets its call_session_id, never after."""
    index = {key: units for key, units in cost.by("target").items() if key[0].endswith("/by_call_session")}
    assert index == {("CallsTable/by_call_session",): 1}


def test_record_only_functions_keep_no_idempotency_records(cost: DemoCallCost) -> None:
    by_caller = cost.by("caller", "table")
    assert by_caller[("MediaFunction", "CallsTable")] > 0
    assert by_caller[("MediaFunction", "IdempotencyTable")] == 0
    assert by_caller[("CallControlFunction", "IdempotencyTable")] > 0  # commands must not repeat


def test_an_in_order_event_is_one_write_on_the_call_state(cost: DemoCallCost) -> None:
    """Identity facts and every lane of an event go in one UpdateItem (call.hangup: status + identity)."""
    media = [charge for charge in cost.meter.charges if charge.caller == "MediaFunction"]
    # speak.ended (in order): timeline put + one state update; speak.started (late): timeline put + one
    # update, refused when speak.ended got there first (the item as it stands came back with the
    # refusal, so nothing else was tried). The two may run at the same instant (as on Lambda): then
    # either may write first, and each still costs exactly one UpdateItem, never a second try.
    operations = sorted(charge.operation for charge in media)
    assert operations == ["PutItem", "PutItem", "UpdateItem", "UpdateItem"]
    refused = [charge for charge in media if charge.operation == "UpdateItem" and not charge.succeeded]
    assert len(refused) <= 1
