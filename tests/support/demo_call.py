"""`make demo`'s call (9 webhooks: a duplicate, a late one, voicemail, recording, transcript) played
through the local stack under an AwsMeter: what one call costs in AWS requests and DynamoDB writes.

Shared by tests/e2e/test_write_cost.py (the gate) and bench/writes.py (the breakdown for the README).
"""

from __future__ import annotations

import os
import warnings
from collections import Counter
from dataclasses import dataclass

from voicebus_cli.demo import TelnyxSide, failed_for_good, play_call
from voicebus_cli.local.journal import Journal
from voicebus_cli.local.meter import AwsMeter
from voicebus_cli.local.moto_server import MotoServer
from voicebus_cli.local.stack import LocalStack
from voicebus_cli.local.storage import StorageServer
from voicebus_cli.testkey import load_test_key


@dataclass(frozen=True)
class DemoCallCost:
    meter: AwsMeter
    call_control_id: str
    tables: dict[str, str]  # physical table name -> its logical id in template.yaml
    failed_runs: list[str]  # "<function>: <error>" for every run that raised and no retry completed
    processed: Counter[tuple[str, str]]  # the stack's ledger: (function, webhook id) -> runs that did the work

    def by(self, *fields: str) -> Counter[tuple[str, ...]]:
        """Write units grouped as `AwsMeter.write_units_by`, tables named by logical id."""
        renamed: Counter[tuple[str, ...]] = Counter()
        for key, units in self.meter.write_units_by(*fields).items():
            renamed[tuple(self._logical(part) for part in key)] += units
        return renamed

    def _logical(self, name: str) -> str:
        table, _, index = name.partition("/")
        logical = self.tables.get(table, table)
        return f"{logical}/{index}" if index else logical


def metered_demo_call(moto: MotoServer | None = None) -> DemoCallCost:
    """Start a local stack (on `moto`, else its own), play the demo's call under a meter, stop everything."""
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    with (
        open(os.devnull, "w") as quiet,
        StorageServer() as storage,
        LocalStack(moto=moto, function_output=quiet) as stack,
    ):
        stack.start(os.environ)
        recording = storage.publish("demo-recording.mp3", 48_000)
        telnyx = TelnyxSide(stack, load_test_key(), Journal())
        with AwsMeter() as meter:
            play_call(telnyx, recording.url)
        tables = {stack.ref(logical): logical for logical in ("CallsTable", "IdempotencyTable")}
        failed = [f"{run.function}: {run.error}" for run in failed_for_good(stack.ledger.runs)]
        return DemoCallCost(meter, telnyx.call_control_id, tables, failed, stack.ledger.processed())
