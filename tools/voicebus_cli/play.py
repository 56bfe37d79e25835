"""`voicebus play SCENARIO --local`: a flow scenario played through the running `make local` stack.

The same scenario file `test-flows` runs in process goes, webhook by webhook, to the
stack's webhook URL: signed with the test key, each echoing the client_state of the
command that caused it (read back from the Telnyx stand-in, exactly as sent), so
nobody builds base64 client_state by hand. After each webhook, play waits until the
commands it expects have reached the stand-in and nothing more arrives for a moment,
then prints what Telnyx received and, on a mismatch, a diff.

A `timeout: true` event does not wait out the step's time limit: once the stack has
settled (its rule queues empty), play fires the call's pending schedule in the stack's
moto now (`voicebus_cli.local.schedules.fire_call_now`) and delivers its event as the
stack's own Scheduler loop would, onto the call-control function's schedule queue.

The stack must use the test key and the Telnyx stand-in (plain `make local`): play
signs as Telnyx with the test key, and reads the stand-in's requests.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol, TextIO, runtime_checkable

import boto3

from voicebus.flows.envelope import unwrap
from voicebus.ingress.signature import sign
from voicebus_cli.cli_errors import CliError
from voicebus_cli.demo import post
from voicebus_cli.local.schedules import ScheduleDelivery, ScheduleTargetError, fire_call_now
from voicebus_cli.local.telnyx_api import INSPECT_PATH
from voicebus_cli.operations import load_local_state
from voicebus_cli.scenario_call import ScenarioCall
from voicebus_cli.scenarios import (
    DEFAULT_LEG,
    ExpectedCommand,
    LoadedScenario,
    ScenarioError,
    SentCommand,
    compare,
    load_scenario,
)
from voicebus_cli.testkey import load_test_key
from voicebus_cli.webhooks import compact

POLL_SECONDS = 0.05


class PlayError(CliError):
    """The scenario cannot be played through this stack (not running, real Telnyx, another signing key)."""


class StandInRequests:
    """The Telnyx stand-in's received requests, read over HTTP from another process."""

    def __init__(self, telnyx_api_url: str) -> None:
        parts = urllib.parse.urlsplit(telnyx_api_url)
        self.url = f"{parts.scheme}://{parts.netloc}{INSPECT_PATH}"

    def read(self) -> list[dict[str, Any]]:
        try:
            with urllib.request.urlopen(self.url, timeout=5) as response:  # noqa: S310 - the local stand-in
                data = json.loads(response.read())["data"]
        except (OSError, ValueError, KeyError) as error:
            raise PlayError(f"cannot read the Telnyx stand-in's requests at {self.url}: {error}") from None
        return [item for item in data if isinstance(item, dict)]


class LocalPlayer:
    """Delivers a scenario's webhooks to the stack and collects the commands each one caused."""

    def __init__(self, state: dict[str, Any], *, settle_seconds: float = 15.0, quiet_seconds: float = 0.8) -> None:
        if state.get("TelnyxApi") != "stand-in":
            raise PlayError(
                "play needs the Telnyx stand-in, but this local stack sends commands to the real Telnyx "
                "(TELNYX_API_KEY is set): start `make local` without it"
            )
        self.webhook_url = str(state["WebhookUrl"])
        self.requests = StandInRequests(str(state["TelnyxApiUrl"]))
        self.key = load_test_key()
        self.settle_seconds = settle_seconds
        self.quiet_seconds = quiet_seconds
        self.seen = len(self.requests.read())
        self.state = state

    def _client(self, service: str) -> Any:
        """A client of the stack's moto (not whatever AWS the environment points at)."""
        arns = [str(arn) for arn in dict(self.state.get("FunctionArns") or {}).values()]
        return boto3.client(
            service,  # type: ignore[call-overload]
            endpoint_url=str(self.state["EndpointUrl"]),
            region_name=arns[0].split(":")[3] if arns else "us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106 - moto's
        )

    @cached_property
    def _sqs(self) -> Any:
        return self._client("sqs")

    def fire_timeout(self, call: ScenarioCall) -> dict[str, Any]:
        """Fire the call's pending step time limit now, once the stack has settled; the webhook it delivers."""
        group = self.state.get("StepTimeoutScheduleGroup")
        if not group:
            raise PlayError("local.json names no StepTimeoutScheduleGroup: restart `make local`")
        self._settle()
        fired: list[dict[str, Any]] = []

        def deliver(target_arn: str, event: dict[str, Any]) -> None:
            ScheduleDelivery(self.state.get("FunctionArns") or {}, self.state.get("RuleQueues") or {}, self._sqs)(
                target_arn, event
            )
            fired.append(event)

        try:
            fire_call_now(self._client("scheduler"), str(group), call.call_control_id(DEFAULT_LEG), deliver)
        except ScheduleTargetError as error:
            raise PlayError(f"the call's step time limit cannot be delivered: {error}") from None
        if not fired:
            raise ScenarioError("no step time limit is pending on the call (the step has none, or it moved on)")
        detail: dict[str, Any] = fired[0]["detail"]
        return detail

    def _settle(self) -> None:
        """Wait until every rule queue is empty: the last webhook's run (and the schedule it made) is done."""
        names: Any = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        deadline = time.monotonic() + self.settle_seconds
        while time.monotonic() < deadline:
            queues = [str(url) for url in dict(self.state.get("RuleQueues") or {}).values()]
            counts = [
                self._sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"] for url in queues
            ]
            if not any(int(value) for attributes in counts for value in attributes.values()):
                return
            time.sleep(POLL_SECONDS)

    def deliver(self, body: dict[str, Any]) -> int:
        raw = compact(body)
        status, answer = post(self.webhook_url, raw, sign(raw, self.key.signing_key, int(time.time())))
        if status == 401:
            raise PlayError(
                "the local stack refused the test key's signature (401): it was started with "
                "TELNYX_PUBLIC_KEY; play signs as Telnyx with the test key, so start `make local` without it"
            )
        if status >= 300:
            raise PlayError(f"the webhook URL answered {status}: {json.dumps(answer)}")
        return status

    def commands(self, call: ScenarioCall, expected: int) -> list[dict[str, Any]]:
        """The call's command requests since the last webhook, once `expected` arrived and then no more came."""
        deadline = time.monotonic() + self.settle_seconds
        found: list[dict[str, Any]] = []
        last_change = time.monotonic()
        total = self.seen
        while time.monotonic() < deadline:
            received = self.requests.read()
            fresh = [item for item in received[self.seen :] if ours(call, item)]
            if len(fresh) != len(found):
                found, last_change = fresh, time.monotonic()
            total = len(received)
            if len(found) >= expected and time.monotonic() - last_change >= self.quiet_seconds:
                break
            time.sleep(POLL_SECONDS)
        self.seen = total
        return found


class Transport(Protocol):
    """Where a scenario is played: delivers a webhook, then tells what Telnyx received because of it."""

    def deliver(self, body: dict[str, Any]) -> int: ...

    def commands(self, call: ScenarioCall, expected: int) -> list[dict[str, Any]]: ...


@runtime_checkable
class FiresTimeLimits(Protocol):
    """A transport that can fire a call's pending step time limit now (`timeout: true`)."""

    def fire_timeout(self, call: ScenarioCall) -> dict[str, Any]: ...


def ours(call: ScenarioCall, item: dict[str, Any]) -> bool:
    """A command request (not a recording fetch) to one of the call's legs."""
    return bool(item.get("action")) and not call.leg_of(item.get("call_control_id")).startswith("?")


def _sent(
    call: ScenarioCall, received: Sequence[dict[str, Any]], expect: Sequence[ExpectedCommand]
) -> list[SentCommand]:
    """The requests as SentCommands. Telnyx never sees a command's step: it is the expected one where the
    action agrees, else the one its client_state names (for `client_state_of` on later webhooks)."""
    sent = []
    for index, item in enumerate(received):
        leg, action = call.leg_of(item.get("call_control_id")), str(item["action"])
        body = item.get("body") if isinstance(item.get("body"), dict) else {}
        like = expect[index] if index < len(expect) else None
        step = like.step if like is not None and (like.action, like.leg) == (action, leg) else None
        sent.append(SentCommand(leg, action, body or {}, step or _step_carried(body)))
    return sent


def _step_carried(body: dict[str, Any] | None) -> str | None:
    """The step a command's client_state names (where the flow rests after the webhook that sent it)."""
    raw = (body or {}).get("client_state")
    position = unwrap(raw).position if isinstance(raw, str) else None
    return position.step if position is not None else None


def play_local(path: Path, *, out: TextIO | None = None, state_file: Path | None = None) -> int:
    """Play `path` through `make local`; 0 when Telnyx received every command expected, and nothing else."""
    out = out or sys.stdout
    try:
        loaded = load_scenario(path)
    except ScenarioError as error:
        raise PlayError(str(error)) from None
    scenario = loaded.scenario
    player = LocalPlayer(load_local_state(state_file))
    call = ScenarioCall(scenario, f"play-{uuid.uuid4().hex[:12]}", start=datetime.now(UTC), to_url=player.webhook_url)
    print(f"playing {loaded.label}: {scenario.description}", file=out)
    print(f"  to {player.webhook_url}, call {call.call_control_id('a')}", file=out)
    if scenario.functions:
        print("  (its `functions:` answers are for test-flows: here the stack invokes the real functions)", file=out)
    print(file=out)
    mismatches = play_scenario(loaded, call, player, out)
    verdict = "as expected" if not mismatches else f"{mismatches} webhook(s) did not cause what was expected"
    print(f"\nplay: {len(scenario.events)} webhooks, {len(call.sent)} commands, {verdict}", file=out)
    return 1 if mismatches else 0


def play_scenario(loaded: LoadedScenario, call: ScenarioCall, transport: Transport, out: TextIO) -> int:
    """Deliver every webhook, print what Telnyx received and a diff where it differs; the number of mismatches."""
    mismatches = 0
    for index, event in enumerate(loaded.scenario.events, 1):
        try:
            if event.timeout:
                if not isinstance(transport, FiresTimeLimits):
                    raise ScenarioError("this stack cannot fire a step's time limit: `voicebus test-flows` plays it")
                call.delivered_elsewhere(event, transport.fire_timeout(call))
                status: int | str = "fired"
            else:
                status = transport.deliver(call.webhook(event))
        except ScenarioError as error:
            raise PlayError(f"{loaded.label}: event {index}: {error}") from None
        note = f"  ({event.note})" if event.note else ""
        print(f"{index:>3} {event.describe()} -> {status}{note}", file=out)
        sent = _sent(call, transport.commands(call, len(event.expect)), event.expect)
        call.record(sent)
        for command in sent:
            print(f"      Telnyx received {command.describe(with_step=False)}", file=out)
        diff = compare(event.expect, sent, steps_known=False)
        if diff:
            mismatches += 1
            print("      MISMATCH (- expected, + received)", file=out)
            for line in diff:
                print(f"        {line}", file=out)
    return mismatches
