"""`make demo`: the bundle on one machine, driven over HTTP the way Telnyx drives it."""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from typing import Any

from voicebus_cli.local.provision import route_to_queue
from voicebus_cli.local.stack import LocalStack
from voicebus_cli.testkey import load_test_key
from voicebus_cli.webhooks import raw_body, resign_event, webhook_event_files


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """POST like Telnyx does; returns (status, JSON answer)."""
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)  # noqa: S310 - loopback
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def drain(queue_url: str) -> list[dict[str, Any]]:
    import boto3

    sqs = boto3.client("sqs")
    events: list[dict[str, Any]] = []
    while batch := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
        for message in batch:
            events.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return events


def run_demo() -> int:
    key = load_test_key()
    with LocalStack() as stack:
        stack.start(os.environ)  # type: ignore[arg-type]
        tap = route_to_queue(stack.ref("EventBus"), f"{stack.name}-demo-tap", {"source": ["telnyx"]})
        print(f"local stack {stack.name}: moto on {stack.moto.endpoint_url if stack.moto else '?'}")
        print(f"webhook URL: {stack.webhook_url}\n")
        sent: Counter[int] = Counter()
        expected_ids: set[str] = set()
        for path in webhook_event_files():
            event = resign_event(json.loads(path.read_text()), key.signing_key)
            body = raw_body(event)
            status, _ = post(stack.webhook_url, body, event["headers"])
            sent[status] += 1
            expected_ids.add(json.loads(body)["data"]["id"])
        forged = resign_event(json.loads(webhook_event_files()[0].read_text()), key.signing_key)
        forged_status, forged_answer = post(stack.webhook_url, raw_body(forged) + b" ", forged["headers"])
        stale = resign_event(forged, key.signing_key, int(time.time()) - 3600)
        stale_status, stale_answer = post(stack.webhook_url, raw_body(stale), stale["headers"])
        routed = drain(tap)

        print(
            f"POSTed {sum(sent.values())} signed sample webhooks: " + ", ".join(f"{n} x {s}" for s, n in sent.items())
        )
        print(f"forged body  -> {forged_status} {forged_answer['error']}")
        print(f"stale (1 h)  -> {stale_status} {stale_answer['error']}\n")
        print(f"{len(routed)} events on bus {stack.ref('EventBus')}:")
        for detail_type, count in sorted(Counter(event["detail-type"] for event in routed).items()):
            print(f"  {detail_type:<48} {count}")
        routed_ids = {event["detail"]["data"]["id"] for event in routed}
        ok = (
            sent == Counter({200: len(expected_ids)})
            and routed_ids == expected_ids
            and (forged_status, stale_status) == (401, 401)
        )
        print(
            "\ndemo " + ("passed: every signed webhook routed once, forged and stale ones refused" if ok else "FAILED")
        )
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(run_demo())
