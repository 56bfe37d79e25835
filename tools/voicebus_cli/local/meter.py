"""Counting what the AWS requests made in this process would cost: requests, and DynamoDB write units.

    with AwsMeter() as meter:
        ...  # anything: the local stack's functions, a test, a bench
    meter.requests                           # Counter[(service, operation)], e.g. ("dynamodb", "UpdateItem")
    meter.write_units                        # DynamoDB write units, as on-demand bills them
    meter.write_units_by("table", "operation")  # Counter[(table, operation)] -> units
    meter.charges                            # one WriteCharge per write request, for your own grouping

Every boto3/botocore client of the process is seen, whenever it was created: the meter
wraps `BaseClient._make_api_call` once (a no-op while no meter is active). Meters nest
and see every thread.

moto's `ReturnConsumedCapacity` answers a flat 1.0, so write units are computed the way
DynamoDB bills them, from the item as it was before and after each write (read back with
GetItem calls the meter does not count): ceil(size / 1 KB) of the larger of the two
(min 1); a failed conditional write costs the same on the item as it stands; each GSI
the item is in costs the size of its projection when the write adds, removes or changes
what the index holds, twice when the index key changes (delete + put). A request refused
for another reason (throttling, a missing table) costs nothing. Metered writes are
serialised in this process so their before/after reads see only their own change.
Only single-item writes (PutItem, UpdateItem, DeleteItem) are priced; any other
DynamoDB write shows up in `unpriced`.
"""

from __future__ import annotations

import math
import os
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import TracebackType
from typing import Any

from botocore.client import BaseClient
from botocore.exceptions import ClientError

ITEM_WRITE_UNIT_BYTES = 1024
PRICED_WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem"})
WRITE_OPERATIONS = PRICED_WRITES | {"BatchWriteItem", "TransactWriteItems", "ExecuteStatement", "BatchExecuteStatement"}
# Lambda sets it; the local stack sets it while a function runs (one invocation at a time).
FUNCTION_VARIABLE = "AWS_LAMBDA_FUNCTION_NAME"


@dataclass(frozen=True)
class WriteCharge:
    """What one DynamoDB write request cost."""

    table: str
    operation: str
    caller: str  # the function that made it ("-" outside a function run)
    succeeded: bool
    table_units: int
    index_units: Mapping[str, int] = field(default_factory=dict)  # GSI name -> units

    @property
    def units(self) -> int:
        return self.table_units + sum(self.index_units.values())


@dataclass(frozen=True)
class _Index:
    name: str
    keys: tuple[str, ...]
    projection: str  # ALL, KEYS_ONLY, INCLUDE
    included: frozenset[str]


@dataclass(frozen=True)
class _Table:
    keys: tuple[str, ...]
    indexes: tuple[_Index, ...]


class AwsMeter:
    """Counts AWS requests by (service, operation) and prices DynamoDB writes while active."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[tuple[str, str]] = Counter()
        self.charges: list[WriteCharge] = []
        self.unpriced: Counter[str] = Counter()

    @property
    def write_units(self) -> int:
        with self._lock:
            return sum(charge.units for charge in self.charges)

    def write_units_by(self, *fields: str) -> Counter[tuple[str, ...]]:
        """Units grouped by WriteCharge fields ("table", "operation", "caller", "succeeded") and/or
        "target": the table, or `<table>/<index>` for what its GSIs cost."""
        grouped: Counter[tuple[str, ...]] = Counter()
        with self._lock:
            charges = list(self.charges)
        for charge in charges:
            targets = {charge.table: charge.table_units}
            targets.update({f"{charge.table}/{name}": units for name, units in charge.index_units.items()})
            for target, units in targets.items():
                if "target" not in fields and target != charge.table:
                    continue
                values = {"target": target, "table": charge.table, "operation": charge.operation}
                values.update({"caller": charge.caller, "succeeded": str(charge.succeeded)})
                key = tuple(values[name] for name in fields)
                grouped[key] += units if "target" in fields else charge.units
        return grouped

    def _count(self, service: str, operation: str) -> None:
        with self._lock:
            self.requests[(service, operation)] += 1

    def _count_unpriced(self, operation: str) -> None:
        with self._lock:
            self.unpriced[operation] += 1

    def _charge(self, charge: WriteCharge) -> None:
        with self._lock:
            self.charges.append(charge)

    def __enter__(self) -> AwsMeter:
        _install()
        with _ACTIVE_LOCK:
            _ACTIVE.append(self)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        with _ACTIVE_LOCK:
            _ACTIVE.remove(self)


# ---------------------------------------------------------------------------- the wrapper

_ACTIVE: list[AwsMeter] = []
_ACTIVE_LOCK = threading.Lock()
_WRITES_LOCK = threading.RLock()  # one priced write at a time, so before/after reads are its own
_QUIET = threading.local()  # the meter's own reads are not counted
_TABLES: dict[tuple[str, str], _Table] = {}
_installed = False


def _install() -> None:
    global _installed
    with _ACTIVE_LOCK:
        if _installed:
            return
        original = BaseClient._make_api_call  # type: ignore[attr-defined]

        def metered(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
            with _ACTIVE_LOCK:
                meters = list(_ACTIVE)
            if not meters or getattr(_QUIET, "on", False):
                return original(client, operation, params)
            service = client.meta.service_model.service_name
            for meter in meters:
                meter._count(service, operation)
            if service != "dynamodb" or operation not in WRITE_OPERATIONS:
                return original(client, operation, params)
            if operation not in PRICED_WRITES:
                for meter in meters:
                    meter._count_unpriced(operation)
                return original(client, operation, params)
            return _priced_write(client, operation, params, meters, lambda: original(client, operation, params))

        BaseClient._make_api_call = metered  # type: ignore[attr-defined]
        _installed = True


def _priced_write(
    client: BaseClient, operation: str, params: dict[str, Any], meters: list[AwsMeter], write: Any
) -> Any:
    table_name = str(params["TableName"])
    with _WRITES_LOCK:
        with _quiet():
            table = _describe(client, table_name)
            key = params["Item"] if operation == "PutItem" else params["Key"]
            key = {name: key[name] for name in table.keys}
            before = _get(client, table_name, key)
        try:
            response = write()
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code in {"ConditionalCheckFailedException", "TransactionConflictException"}:
                # DynamoDB bills a failed conditional write on the item as it stands (min 1).
                _charge_all(meters, WriteCharge(table_name, operation, _caller(), False, _units(before)))
            raise
        with _quiet():
            after = _get(client, table_name, key)
    index_units = {index.name: _index_units(index, table, before, after) for index in table.indexes}
    charge = WriteCharge(
        table_name,
        operation,
        _caller(),
        True,
        max(_units(before), _units(after)),
        {name: units for name, units in index_units.items() if units},
    )
    _charge_all(meters, charge)
    return response


def _charge_all(meters: list[AwsMeter], charge: WriteCharge) -> None:
    for meter in meters:
        meter._charge(charge)


def _caller() -> str:
    return os.environ.get(FUNCTION_VARIABLE, "-")


class _quiet:
    def __enter__(self) -> None:
        self._previous = getattr(_QUIET, "on", False)
        _QUIET.on = True

    def __exit__(self, *exc: object) -> None:
        _QUIET.on = self._previous


def _describe(client: BaseClient, table_name: str) -> _Table:
    cache_key = (client.meta.endpoint_url, table_name)
    if cache_key not in _TABLES:
        table = client.describe_table(TableName=table_name)["Table"]  # type: ignore[attr-defined]
        indexes = tuple(
            _Index(
                index["IndexName"],
                tuple(part["AttributeName"] for part in index["KeySchema"]),
                index["Projection"].get("ProjectionType", "ALL"),
                frozenset(index["Projection"].get("NonKeyAttributes", [])),
            )
            for index in table.get("GlobalSecondaryIndexes", [])
        )
        _TABLES[cache_key] = _Table(tuple(part["AttributeName"] for part in table["KeySchema"]), indexes)
    return _TABLES[cache_key]


def _get(client: BaseClient, table_name: str, key: dict[str, Any]) -> dict[str, Any] | None:
    response = client.get_item(TableName=table_name, Key=key, ConsistentRead=True)  # type: ignore[attr-defined]
    item: dict[str, Any] | None = response.get("Item")
    return item


def _index_units(index: _Index, table: _Table, before: dict[str, Any] | None, after: dict[str, Any] | None) -> int:
    """What keeping one GSI up to date cost for this write."""
    was_in = before is not None and all(name in before for name in index.keys)
    is_in = after is not None and all(name in after for name in index.keys)
    old = _projected(index, table, before) if was_in else None
    new = _projected(index, table, after) if is_in else None
    if old is None and new is None:
        return 0
    if old is None:
        return _units(new)
    if new is None:
        return _units(old)
    if any(old[name] != new[name] for name in index.keys):
        return _units(old) + _units(new)  # delete under the old key, put under the new
    return max(_units(old), _units(new)) if old != new else 0


def _projected(index: _Index, table: _Table, item: dict[str, Any] | None) -> dict[str, Any]:
    assert item is not None
    if index.projection == "ALL":
        return item
    kept = set(table.keys) | set(index.keys) | (index.included if index.projection == "INCLUDE" else set())
    return {name: value for name, value in item.items() if name in kept}


# ---------------------------------------------------------------------------- item sizes


def _units(item: Mapping[str, Any] | None) -> int:
    """Write units for an item of this size: ceil(size / 1 KB), at least 1 (a missing item too)."""
    return max(1, math.ceil(item_size(item or {}) / ITEM_WRITE_UNIT_BYTES))


def item_size(item: Mapping[str, Any]) -> int:
    """An item's size as DynamoDB counts it (typed form, as the low-level client sends it)."""
    return sum(len(name.encode()) + _value_size(value) for name, value in item.items())


def _value_size(value: Mapping[str, Any]) -> int:
    [(kind, content)] = value.items()
    if kind == "S":
        return len(str(content).encode())
    if kind == "N":
        return _number_size(str(content))
    if kind == "B":
        return len(content)
    if kind in {"BOOL", "NULL"}:
        return 1
    if kind == "SS":
        return sum(len(str(part).encode()) for part in content)
    if kind == "NS":
        return sum(_number_size(str(part)) for part in content)
    if kind == "BS":
        return sum(len(part) for part in content)
    if kind == "L":
        return 3 + sum(1 + _value_size(part) for part in content)
    if kind == "M":
        return 3 + sum(1 + len(name.encode()) + _value_size(part) for name, part in content.items())
    raise ValueError(f"unknown DynamoDB type {kind!r}")


def _number_size(text: str) -> int:
    """About one byte per two significant digits, plus one."""
    digits = Decimal(text).normalize().as_tuple().digits if text.strip() else ()
    return math.ceil(len(digits) / 2) + 1
