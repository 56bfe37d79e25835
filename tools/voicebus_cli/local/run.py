"""`make local`: the local stack kept running for your own experiments, until Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import threading
from types import FrameType

from voicebus_cli.local.stack import LocalStack
from voicebus_cli.local.storage import StorageServer
from voicebus_cli.local.workers import Invocation
from voicebus_cli.operations import LOCAL_STATE_FILE
from voicebus_cli.testkey import ROOT, TEST_KEY_FILE, load_test_key


def _report(run: Invocation) -> None:
    data = run.event["detail"]["data"]
    outcome = f"FAILED attempt {run.attempt}: {run.error}" if run.error else "ok"
    print(f"  {run.function:<24} {data['event_type']:<36} {data['id']}  {outcome}", flush=True)


def run_local() -> int:
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    with StorageServer() as storage, LocalStack(on_invocation=_report) as stack:
        stack.start(os.environ)  # type: ignore[arg-type]
        assert stack.moto is not None
        assert stack.telnyx_api is not None
        state = {
            "EndpointUrl": stack.moto.endpoint_url,
            "WebhookUrl": stack.webhook_url,
            "EventBusName": stack.ref("EventBus"),
            "CallsTableName": stack.ref("CallsTable"),
            "ArchiveBucketName": stack.ref("ArchiveBucket"),
            "EventDeadLetterQueueUrl": stack.ref("EventDeadLetterQueue"),
            "FailedInvocationQueueUrl": stack.ref("FailedInvocationQueue"),
            "TelnyxApiUrl": stack.telnyx_api.base_url,
            "RecordingStorageUrl": storage.base_url,
        }
        LOCAL_STATE_FILE.parent.mkdir(exist_ok=True)
        LOCAL_STATE_FILE.write_text(json.dumps(state, indent=2) + "\n")
        key = load_test_key()
        print(
            f"""voicebus local stack {stack.name} is running (Ctrl-C stops it).

  webhook URL        {stack.webhook_url}
  AWS (moto)         {stack.moto.endpoint_url}   (AWS_ENDPOINT_URL for your own boto3 / aws CLI)
  Telnyx API stand-in {stack.telnyx_api.base_url} (commands the functions send land here)
  signing key        {TEST_KEY_FILE.relative_to(ROOT)} (TEST ONLY; public key {key.public_key_b64})
  names and URLs     {LOCAL_STATE_FILE.relative_to(ROOT)}

Send a signed webhook (any JSON body, as Telnyx would sign it):
  .venv/bin/voicebus sign my-webhook.json --url {stack.webhook_url} | sh
Then:
  .venv/bin/voicebus call <call_control_id> --local
  .venv/bin/voicebus redrive --local --dry-run

function runs:""",
            flush=True,
        )
        stop.wait()
        print("stopping the local stack")
    LOCAL_STATE_FILE.unlink(missing_ok=True)
    return 0
