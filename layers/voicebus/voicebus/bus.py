"""One PutEvents entry on the custom bus: shared by the ingress (webhooks) and the command function (answers)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from voicebus.errors import PermanentError, RetryableError

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient

TELNYX_SOURCE = "telnyx"
# One PutEvents entry holds at most 256 KiB, counting Source, DetailType and Detail
# together. Keeping the body 1 KiB under that leaves room for the other two.
EVENTBRIDGE_ENTRY_BYTES = 256 * 1024
MAX_WEBHOOK_BYTES = EVENTBRIDGE_ENTRY_BYTES - 1024


# The entry's own content is wrong (PutEvents' non-retryable codes that are about the entry,
# not about permissions or the account): sending it again can never succeed.
ENTRY_REFUSED_CODES = frozenset({"InvalidArgument", "MalformedDetail"})


class PublishError(RetryableError):
    """The event is not on the bus; the caller must make its sender retry (Telnyx, or EventBridge)."""


class EntryRefusedError(PermanentError):
    """EventBridge refused the entry itself (`ENTRY_REFUSED_CODES`): retrying the same entry cannot help."""


def put_entry(client: EventBridgeClient, bus_name: str, source: str, detail_type: str, detail: str) -> None:
    """One PutEvents entry; `PublishError` unless EventBridge took it (`EntryRefusedError`: it never will)."""
    entry = {"EventBusName": bus_name, "Source": source, "DetailType": detail_type, "Detail": detail}
    try:
        response = client.put_events(Entries=[entry])  # type: ignore[list-item]
    except (BotoCoreError, ClientError) as exc:
        raise PublishError(f"PutEvents failed: {type(exc).__name__}") from exc
    if response.get("FailedEntryCount", 0):
        failed = response["Entries"][0]
        if failed.get("ErrorCode") in ENTRY_REFUSED_CODES:
            message = f"PutEvents refused the entry: {failed['ErrorCode']} {failed.get('ErrorMessage', '')}"
            raise EntryRefusedError(message)
        raise PublishError(
            f"PutEvents refused the entry: {failed.get('ErrorCode', 'unknown')} {failed.get('ErrorMessage', '')}"
        )
