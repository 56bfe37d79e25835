"""DynamoDB write units of one call: `make demo`'s call played through the local stack under an AwsMeter.

The call is the demo's 9 webhooks (answer, a duplicate call.answered, the menu, a late
call.speak.started, voicemail, hang-up, the recording and its transcript) through every
function of the bundle, on moto server. Units are computed as DynamoDB on-demand bills
them (voicebus_cli.local.meter): per write, ceil(item size / 1 KB) of the larger of the
item before and after, a refused conditional write too, plus each GSI write.

BEFORE holds the same meter's figures for the same call on the code before the cuts
(by_call_session projecting ALL, an identity write per event beside each lane write,
idempotency records in the record-only functions); the table prints them beside today's.
The bench reports, it does not gate (tests/e2e/test_write_cost.py does): it exits 0.
Run: `.venv/bin/python bench/writes.py`.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "layers" / "voicebus"), str(ROOT / "tools"), str(ROOT)]

from tests.support.demo_call import DemoCallCost, metered_demo_call  # noqa: E402

# (table or table/index, operation) -> write units, measured with this bench's meter on commit 760da1d.
BEFORE: dict[tuple[str, str], int] = {
    ("CallsTable", "PutItem"): 12,
    ("CallsTable", "UpdateItem"): 51,
    ("CallsTable/by_call_session", "UpdateItem"): 40,
    ("IdempotencyTable", "PutItem"): 12,
    ("IdempotencyTable", "UpdateItem"): 11,
}
TARGET = 70


def report(cost: DemoCallCost) -> list[str]:
    after = Counter(
        {(target, operation): units for (target, operation), units in cost.by("target", "operation").items()}
    )
    rows = sorted(set(BEFORE) | set(after))
    lines = [f"{'table / index':<30}{'operation':<12}{'before':>8}{'after':>8}"]
    lines += [
        f"{target:<30}{operation:<12}{BEFORE.get((target, operation), 0):>8}{after[(target, operation)]:>8}"
        for target, operation in rows
    ]
    lines.append(
        f"{'total write units':<42}{sum(BEFORE.values()):>8}{cost.meter.write_units:>8}   (target <= {TARGET})"
    )
    lines.append("")
    lines.append("after, by function")
    for (caller, table), units in sorted(cost.by("caller", "table").items()):
        lines.append(f"  {caller:<26}{table:<18}{units:>6}")
    requests = {
        operation: count for (service, operation), count in cost.meter.requests.items() if service == "dynamodb"
    }
    refused = sum(1 for charge in cost.meter.charges if not charge.succeeded)
    lines.append(f"DynamoDB requests: {dict(sorted(requests.items()))}; refused conditional writes: {refused}")
    return lines


def main() -> int:
    cost = metered_demo_call()
    print("DynamoDB write units of the demo call (9 webhooks)")
    print("\n".join(report(cost)))
    if cost.failed_runs:
        print(f"failed runs: {cost.failed_runs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
