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
same. And it takes out three costs moto pays on every request that a profile of the
load bench (2,000 webhooks from 32 senders) showed as most of the server's time, none
of which changes an answer: SQS's clock (each message's visibility check built two
datetimes; `time.time()` is the same instant, and `send_message` reads every message's
visibility through `Queue.attributes`, so a put got slower as the rule queues filled),
the request router listing moto's package folder from disk under one lock for every
request (`list_of_moto_modules`, cached: the folder does not change while it runs), and
werkzeug formatting a log line per request that goes to /dev/null (its logger is set to
warnings). Everything else is moto as it ships.

    python -m voicebus_cli.local.atomic_moto -H 127.0.0.1 -p 5000
"""

from __future__ import annotations

import functools
import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import jsonpath_ng.ext
import moto.sqs.models
from moto import backends, server
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


_MOTO_UNIX_TIME = getattr(moto.sqs.models, "unix_time")  # noqa: B009 - not in the module's typed exports


def _unix_time(dt: Any = None) -> float:
    """moto's `unix_time`: seconds since the epoch of `dt` (naive UTC), or of now without building datetimes."""
    return time.time() if dt is None else float(_MOTO_UNIX_TIME(dt))


def _unix_time_millis(dt: Any = None) -> float:
    return _unix_time(dt) * 1000.0


def quicken_requests() -> None:
    """SQS's clock without datetimes, the router's module list read once, no per-request log line."""
    setattr(moto.sqs.models, "unix_time", _unix_time)  # noqa: B010 - the name the module looks up
    setattr(moto.sqs.models, "unix_time_millis", _unix_time_millis)  # noqa: B010
    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules
    logging.getLogger("werkzeug").setLevel(logging.WARNING)


if __name__ == "__main__":
    make_atomic()
    cache_jsonpath()
    quicken_requests()
    server.main(sys.argv[1:])
