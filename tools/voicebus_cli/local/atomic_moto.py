"""moto server whose DynamoDB item reads and writes are atomic, as DynamoDB's are.

moto server answers requests on many threads, and its DynamoDB backend checks a
condition and then applies the update without a lock: two conditional UpdateItem
calls on one item at the same instant can both pass and the later one overwrite the
whole item (a lost update DynamoDB never allows). The local stack runs functions
concurrently, so it starts moto through this module, which serialises the backend's
item operations in the server process.

It also keeps moto's EventBridge from building a JSONPath parser (a PLY grammar) for
every event it delivers: most of a PutEvents' time, which under 32 concurrent senders
made the ingress's bounded put time out. Parsed paths are cached; the result is the
same. Everything else is moto as it ships.

    python -m voicebus_cli.local.atomic_moto -H 127.0.0.1 -p 5000
"""

from __future__ import annotations

import functools
import sys
import threading
from collections.abc import Callable
from typing import Any

import jsonpath_ng.ext
from moto import server
from moto.dynamodb.models import DynamoDBBackend

ITEM_OPERATIONS = (
    "put_item",
    "update_item",
    "delete_item",
    "get_item",
    "query",
    "scan",
    "transact_write_items",
    "transact_get_items",
    "batch_write_item",
    "execute_statement",
    "batch_execute_statement",
    "execute_transaction",
)
_LOCK = threading.RLock()


def _atomic(operation: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(operation)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with _LOCK:
            return operation(*args, **kwargs)

    return locked


def make_atomic() -> None:
    """Wrap every item operation the backend has (once)."""
    for name in ITEM_OPERATIONS:
        operation = getattr(DynamoDBBackend, name, None)
        if operation is not None and not getattr(operation, "_voicebus_atomic", False):
            locked = _atomic(operation)
            locked._voicebus_atomic = True  # type: ignore[attr-defined]
            setattr(DynamoDBBackend, name, locked)


def cache_jsonpath() -> None:
    """moto imports `jsonpath_ng.ext.parse` at each use: a cached one is what it then finds."""
    parse = getattr(jsonpath_ng.ext, "parse")  # noqa: B009 - not in the package's typed exports
    if not hasattr(parse, "cache_info"):
        setattr(jsonpath_ng.ext, "parse", functools.lru_cache(maxsize=512)(parse))  # noqa: B010


if __name__ == "__main__":
    make_atomic()
    cache_jsonpath()
    server.main(sys.argv[1:])
