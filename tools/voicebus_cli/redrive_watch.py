"""`voicebus redrive --wait`: which redriven events fail again, seen within the same run.

A redrive is asynchronous (Lambda's own retries and on-failure destination apply, or the
local worker's), so the command cannot know from the hand-on whether the event now
succeeds. With `--wait SECONDS` it watches the dead-letter queues that long for the
events it handed on: each that comes back failed again, with its new error, and stays
queued for the next redrive (which counts it). An event that succeeds never comes back,
so a clean run waits the whole time; one where everything failed again returns early.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import boto3

from voicebus_cli.dead_letter_reader import parse_dead_letter, receive
from voicebus_cli.redrive_counts import event_digest, shown

POLL_SECONDS = 1.0
SCAN_LIMIT = 1000  # messages read per queue and poll


def watch_for_returns(
    queue_urls: list[str],
    handed_on: dict[str, str],
    seconds: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[int, list[str]]:
    """How many of the handed-on events (digest -> description) are back within `seconds`, and lines saying why."""
    sqs = boto3.client("sqs")
    pending = dict(handed_on)
    back = 0
    lines: list[str] = []
    seen: set[str] = set()
    deadline = clock() + seconds
    while pending:
        for queue_url in queue_urls:
            held: list[str] = []
            for message in receive(queue_url, SCAN_LIMIT, visibility_seconds=30):
                held.append(message["ReceiptHandle"])
                if message["MessageId"] in seen:
                    continue
                seen.add(message["MessageId"])
                letter = parse_dead_letter(queue_url, message)
                digest = event_digest(letter.event) if letter is not None else None
                if letter is not None and digest in pending:
                    del pending[digest]
                    back += 1
                    why = shown(letter.error) if letter.error else "no reason given"
                    lines.append(f"  FAILED AGAIN {letter.describe()}: {why} (left queued)")
            for receipt_handle in held:  # left for the next redrive, visible again at once
                sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=receipt_handle, VisibilityTimeout=0)
        if not pending or clock() >= deadline:
            break
        sleep(min(POLL_SECONDS, max(0.0, deadline - clock())))
    if pending:
        lines.append(f"  {len(pending)} redriven event(s) not back within {seconds:g} s")
    return back, lines
