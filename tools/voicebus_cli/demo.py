"""`make demo`: a whole inbound call played through every function of the bundle, on this machine.

The local stack (moto as AWS, the HTTP API, the template's rules and functions, the
Telnyx API and storage stand-ins) takes a call the way Telnyx would send it: signed
webhooks over HTTP, each echoing the client_state of the command that caused it.
The caller presses 2 for voicemail, hears the prompt, records, hangs up; then the
recording and its transcript are saved. One webhook is delivered twice and one
arrives out of order. Then a second call plays a failure, the shipped scenario
`main_sales_failed.yaml`: the caller presses 1, the transfer's far leg hangs up
before it is bridged, and the caller hears an apology and is hung up. The demo
prints a timeline, the first call's record and the archived objects, what Telnyx
received on the second call, stops everything it started, and exits 0 only if
both calls ended as expected.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import time
import urllib.error
import urllib.request
import uuid
import warnings
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3

from voicebus.calls.store import CallStore
from voicebus.ingress.signature import sign
from voicebus_cli.local.journal import Journal
from voicebus_cli.local.stack import LocalStack
from voicebus_cli.local.telnyx_api import RecordedRequest
from voicebus_cli.local.workers import Invocation
from voicebus_cli.scenario_call import ScenarioCall
from voicebus_cli.scenarios import SCENARIOS_DIR, load_scenario
from voicebus_cli.testkey import ROOT, TestKeyPair, load_test_key
from voicebus_cli.webhooks import compact, envelope

EXPECTED_COMMANDS = ["answer", "gather_using_speak", "speak", "record_start"]
FAILURE_SCENARIO = SCENARIOS_DIR / "main_sales_failed.yaml"
FAILURE_COMMANDS = ["answer", "gather_using_speak", "transfer", "speak", "hangup"]
FUNCTION_LOG = ROOT / ".voicebus" / "demo-functions.log"


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """POST like Telnyx does; returns (status, JSON answer)."""
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)  # noqa: S310 - loopback
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


class TelnyxSide:
    """Plays Telnyx: signs and posts webhooks, echoing the client_state of the last command."""

    def __init__(self, stack: LocalStack, key: TestKeyPair, journal: Journal) -> None:
        self.stack = stack
        self.key = key
        self.journal = journal
        self.call_control_id = f"v3:demo-{uuid.uuid4().hex[:12]}"
        self.session = str(uuid.uuid4())
        self.clock = datetime.now(UTC)

    def webhook(self, event_type: str, **payload: Any) -> dict[str, Any]:
        self.clock += timedelta(milliseconds=400)
        state = self._last_client_state()
        payload = {
            "call_control_id": self.call_control_id,
            "call_leg_id": str(uuid.uuid4()),
            "call_session_id": self.session,
            "connection_id": "1494404757140276705",
            **({"client_state": state} if state else {}),
            **payload,
        }
        return envelope(event_type, payload, occurred_at=self.clock, delivered_to=self.stack.webhook_url)

    def deliver(self, webhook: dict[str, Any], note: str = "") -> None:
        """Sign and post; the stack's journal shows it arrive ("webhook in") with its answer."""
        if note:
            self.journal.add("telnyx", f"sends {webhook['data']['event_type']} {note}")
        body = compact(webhook)
        post(self.stack.webhook_url, body, sign(body, self.key.signing_key, int(time.time())))

    def settle(self) -> None:
        """Wait for every function to finish (the journal heard the commands they sent)."""
        if not self.stack.wait_until_idle(timeout=60, quiet_for=0.8):
            raise RuntimeError("the functions did not settle within 60 s")

    def _last_client_state(self) -> str | None:
        assert self.stack.telnyx_api is not None
        for request in reversed(self.stack.telnyx_api.requests()):
            if request.call_control_id == self.call_control_id and isinstance(request.body, dict):
                state = request.body.get("client_state")
                if isinstance(state, str):
                    return state
        return None


class StackTransport:
    """A scenario played through the demo's stack: signed webhooks posted, commands read from its Telnyx stand-in."""

    def __init__(self, telnyx: TelnyxSide) -> None:
        self.telnyx = telnyx
        self.seen = len(self._requests())

    def _requests(self) -> list[RecordedRequest]:
        assert self.telnyx.stack.telnyx_api is not None
        return self.telnyx.stack.telnyx_api.requests()

    def deliver(self, body: dict[str, Any]) -> int:
        raw = compact(body)
        return post(self.telnyx.stack.webhook_url, raw, sign(raw, self.telnyx.key.signing_key, int(time.time())))[0]

    def commands(self, call: ScenarioCall, expected: int) -> list[dict[str, Any]]:
        from voicebus_cli.play import ours  # play uses this module's `post`

        self.telnyx.settle()
        received = self._requests()
        fresh, self.seen = received[self.seen :], len(received)
        items = [{"call_control_id": r.call_control_id, "action": r.action, "body": r.body} for r in fresh]
        return [item for item in items if ours(call, item)]


def play_failure(telnyx: TelnyxSide) -> tuple[ScenarioCall, int, str]:
    """The failed transfer, as the shipped scenario describes it: the call, its mismatches, what was printed."""
    from voicebus_cli.play import play_scenario

    loaded = load_scenario(FAILURE_SCENARIO)
    call = ScenarioCall(
        loaded.scenario, f"demo-{uuid.uuid4().hex[:12]}", start=telnyx.clock, to_url=telnyx.stack.webhook_url
    )
    printed = io.StringIO()
    mismatches = play_scenario(loaded, call, StackTransport(telnyx), printed)
    return call, mismatches, printed.getvalue()


def play_call(telnyx: TelnyxSide, recording_url: str) -> None:
    parties = {"from": "+15550001111", "to": "+15550009999", "direction": "incoming"}
    telnyx.deliver(telnyx.webhook("call.initiated", state="parked", **parties))
    telnyx.settle()
    answered = telnyx.webhook("call.answered", **parties)
    telnyx.deliver(answered)
    telnyx.deliver(answered, "again (Telnyx retried: a duplicate)")
    telnyx.settle()
    telnyx.deliver(telnyx.webhook("call.gather.ended", digits="2", status="valid"))
    telnyx.settle()
    started = telnyx.webhook("call.speak.started")
    ended = telnyx.webhook("call.speak.ended", status="completed")
    telnyx.deliver(ended)
    telnyx.deliver(started, "late (out of order: sent before speak.ended)")
    telnyx.settle()
    recording_started = telnyx.clock
    telnyx.deliver(telnyx.webhook("call.hangup", hangup_cause="normal_clearing", hangup_source="caller"))
    telnyx.settle()
    telnyx.deliver(
        telnyx.webhook(
            "call.recording.saved",
            recording_id="demo-recording",
            channels="single",
            recording_started_at=recording_started.isoformat(),
            recording_ended_at=telnyx.clock.isoformat(),
            recording_urls={"mp3": recording_url, "wav": None},
        )
    )
    telnyx.settle()
    telnyx.deliver(
        telnyx.webhook(
            "call.recording.transcription.saved",
            recording_id="demo-recording",
            recording_transcription_id=str(uuid.uuid4()),
            status="completed",
            transcription_text="Hi, this is Sam. Please call me back about my order. Thanks!",
        )
    )
    telnyx.settle()


def failed_for_good(runs: list[Invocation]) -> list[Invocation]:
    """Failed runs of an event that no later run of the same function completed.

    A duplicate delivered while its original still runs is refused by idempotency
    (IdempotencyAlreadyInProgressError) and retried, as Lambda retries it: not a failure.
    """
    done = {(run.function, run.event_key) for run in runs if not run.error}
    return [run for run in runs if run.error and (run.function, run.event_key) not in done]


def run_demo() -> int:
    from voicebus_cli.local.storage import StorageServer  # the storage stand-in

    # A function run that adds no metric (a duplicate answered by idempotency) makes Powertools warn.
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    key = load_test_key()
    journal = Journal()
    FUNCTION_LOG.parent.mkdir(exist_ok=True)
    started = time.time()
    with (
        FUNCTION_LOG.open("w") as function_log,
        StorageServer() as storage,
        LocalStack(journal=journal, function_output=function_log) as stack,
    ):
        stack.start(os.environ)
        print(f"voicebus demo: local stack {stack.name} up in {time.time() - started:.1f} s")
        print(f"  webhook URL {stack.webhook_url}, AWS (moto) {stack.moto.endpoint_url if stack.moto else '?'}")
        print(f"  function logs in {FUNCTION_LOG.relative_to(ROOT)}\n")
        recording = storage.publish("demo-recording.mp3", 480_000)
        telnyx = TelnyxSide(stack, key, journal)
        play_started = time.time()
        play_call(telnyx, recording.url)
        failed_call, mismatches, failure_play = play_failure(telnyx)

        print("timeline")
        journal.print(play_started)
        store = CallStore(boto3.client("dynamodb"), stack.ref("CallsTable"))
        record = store.get_call(telnyx.call_control_id)
        bucket = stack.ref("ArchiveBucket")
        objects = boto3.client("s3").list_object_versions(Bucket=bucket).get("Versions", [])
        print("\nthe call's record in DynamoDB")
        print(json.dumps(record.model_dump(mode="json", exclude_none=True) if record else None, indent=2))
        print(f"\narchived in s3://{bucket}")
        for obj in objects:
            print(f"  {obj['Key']}  {obj['Size']} bytes")

        print(f"\na failure: {FAILURE_SCENARIO.relative_to(ROOT)}, call {failed_call.call_control_id('a')}")
        print(failure_play, end="")
        assert stack.telnyx_api is not None
        commands = [r.action for r in stack.telnyx_api.requests() if r.call_control_id == telnyx.call_control_id]
        failure_commands = [
            r.action for r in stack.telnyx_api.requests() if r.call_control_id == failed_call.call_control_id("a")
        ]
        failures = failed_for_good(journal.invocations)
        retried = [run for run in journal.invocations if run.error and run not in failures]
        archive = (record.recordings[0].model_extra or {}) if record and record.recordings else {}
        stored = (
            boto3.client("s3").get_object(Bucket=bucket, Key=archive["archive"]["mp3"]["s3_uri"].split("/", 3)[3])
            if archive.get("archive")
            else None
        )
        checks = {
            "Telnyx received exactly answer, menu, prompt, record (the duplicate sent nothing)": commands
            == EXPECTED_COMMANDS,
            "the call is hung up, normal clearing": bool(
                record
                and record.status
                and (record.status.value, record.status.hangup_cause) == ("hung_up", "normal_clearing")
            ),
            "the recording is in S3, byte for byte (SHA-256)": bool(
                stored and hashlib.sha256(stored["Body"].read()).hexdigest() == recording.sha256()
            ),
            "its transcript is in S3 and linked on the call": "transcript" in archive,
            "a transfer whose far leg hung up got an apology, then a hang-up": failure_commands == FAILURE_COMMANDS
            and mismatches == 0,
            "no function failed for good (a retried attempt that then succeeded is not a failure)": not failures,
        }
    print("\nchecks")
    for name, passed in checks.items():
        print(f"  {'ok  ' if passed else 'FAIL'} {name}")
    for run in retried:
        print(f"       retried, then done: {run.function} attempt {run.attempt}: {run.error}")
    if failures:
        for run in failures:
            print(f"       {run.function}: {run.error}")
    ok = all(checks.values())
    print(f"\ndemo {'passed' if ok else 'FAILED'} in {time.time() - started:.1f} s; everything it started is stopped")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(run_demo())
