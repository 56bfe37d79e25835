"""`make local`: the local stack kept running for your own experiments, until Ctrl-C.

It prints what happens as it happens (the journal shared with `make demo`); the
functions' raw logs go to a file. Ctrl-C stops the workers, then the servers, then
moto (started in its own session, so the terminal's SIGINT reaches only this process).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import warnings
from pathlib import Path
from types import FrameType
from typing import Any

from voicebus_cli.local.journal import Journal
from voicebus_cli.local.run_log import RunLog
from voicebus_cli.local.settings import LocalSettings, LocalSettingsError
from voicebus_cli.local.stack import LocalStack
from voicebus_cli.local.storage import StorageServer
from voicebus_cli.testkey import ROOT, TEST_KEY_FILE

BUS_RECORD_NAME = "local-bus.jsonl"
FUNCTION_LOG_NAME = "local-functions.log"
RUN_LOG_NAME = "local-runs.jsonl"


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def local_state(stack: LocalStack, storage: StorageServer, settings: LocalSettings) -> dict[str, Any]:
    """Names, URLs and ARNs for the other commands; never a key."""
    assert stack.moto is not None
    return {
        "EndpointUrl": stack.moto.endpoint_url,
        "WebhookUrl": stack.webhook_url,
        "PublicWebhookUrl": settings.public_webhook_url,
        "EventBusName": stack.ref("EventBus"),
        "CallsTableName": stack.ref("CallsTable"),
        "ArchiveBucketName": stack.ref("ArchiveBucket"),
        "EventDeadLetterQueueUrl": stack.ref("EventDeadLetterQueue"),
        "FailedInvocationQueueUrl": stack.ref("FailedInvocationQueue"),
        "ParkedEventQueueUrl": stack.ref("ParkedEventQueue"),
        "TelnyxApiUrl": stack.telnyx_api.base_url if stack.telnyx_api else settings.base_url,
        "TelnyxApi": "stand-in" if stack.telnyx_api else "real",
        "RecordingStorageUrl": storage.base_url,
        "RuleQueues": stack.rule_queues,
        "StepTimeoutScheduleGroup": stack.ref("FlowTimeoutSchedules"),
        "FunctionArns": stack.function_arns(),
        "BusRecordFile": str(stack.bus_record_file),
        "FunctionLogFile": str(settings.state_dir / FUNCTION_LOG_NAME),
        "RunLogFile": str(settings.state_dir / RUN_LOG_NAME),
    }


def _banner(stack: LocalStack, settings: LocalSettings, state_path: Path) -> str:
    assert stack.moto is not None
    assert stack.bus_record_file is not None
    if settings.public_webhook_url:
        webhook = (
            f"  webhook URL         {settings.public_webhook_url}\n"
            f"                      (paste into Mission Control; your tunnel forwards it to {stack.webhook_url})"
        )
    else:
        webhook = f"  webhook URL         {stack.webhook_url}"
    if settings.uses_test_key:
        key = f"  signing key         {_shown(TEST_KEY_FILE)} (TEST ONLY; public key {settings.public_key_b64})"
    else:
        key = f"  signing key         yours, from TELNYX_PUBLIC_KEY ({settings.public_key_b64})"
    if stack.telnyx_api is not None:
        telnyx = f"  Telnyx API          stand-in at {stack.telnyx_api.base_url} (commands land here)"
    else:
        telnyx = f"  Telnyx API          {settings.base_url} with TELNYX_API_KEY (REAL commands on real calls)"
    sign_hint = (
        f"""
Send a signed webhook (any JSON body, as Telnyx would sign it):
  .venv/bin/voicebus sign my-webhook.json --url {stack.webhook_url} | sh"""
        if settings.uses_test_key
        else ""
    )
    return f"""voicebus local stack {stack.name} is running (Ctrl-C stops it).

{webhook}
{key}
{telnyx}
  AWS (moto)          {stack.moto.endpoint_url}   (AWS_ENDPOINT_URL for your own boto3 / aws CLI)
  names and URLs      {_shown(state_path)}
  bus record          {_shown(stack.bus_record_file)} (every event on the bus, one JSON line each)
  function logs       {_shown(settings.state_dir / FUNCTION_LOG_NAME)}
  function runs       {_shown(settings.state_dir / RUN_LOG_NAME)} (one JSON line per run)
{sign_hint}
Then:
  .venv/bin/voicebus call <call_control_id> --local
  .venv/bin/voicebus redrive --local --dry-run

what happens:"""


def run_local() -> int:
    try:
        settings = LocalSettings.from_environ(os.environ)
    except LocalSettingsError as error:
        print(f"voicebus local: {error}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    # A function run that adds no metric (a duplicate answered by idempotency) makes Powertools warn.
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    state_path = settings.state_file
    bus_record = settings.state_dir / BUS_RECORD_NAME
    bus_record.unlink(missing_ok=True)  # the record of this stack only: its names die with it
    journal = Journal(live=sys.stdout)
    run_log = RunLog(settings.state_dir / RUN_LOG_NAME).open()
    with (
        (settings.state_dir / FUNCTION_LOG_NAME).open("w", encoding="utf-8") as function_log,
        StorageServer() as storage,
        LocalStack(
            journal=journal,
            on_invocation=run_log.write,
            function_output=function_log,
            public_key_b64=settings.public_key_b64,
            telnyx_api_key=settings.api_key,
            telnyx_base_url=settings.base_url,
            api_port=settings.port,
            bus_record_file=bus_record,
        ) as stack,
    ):
        stack.start(os.environ)
        state_path.write_text(json.dumps(local_state(stack, storage, settings), indent=2) + "\n")
        print(_banner(stack, settings, state_path), flush=True)
        stop.wait()
        print("stopping the local stack ...", end="", flush=True)
    state_path.unlink(missing_ok=True)
    run_log.close()
    print(" stopped", flush=True)
    return 0
