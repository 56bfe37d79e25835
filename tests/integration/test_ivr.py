"""Whole calls through the real CallControlFunction: moto for DynamoDB, the Telnyx stand-in for commands.

Each test plays Telnyx's part: it sends the webhooks of a call as EventBridge
events, each echoing the client_state of the last command the function sent
(as Telnyx does), and asserts exactly which commands reached the stand-in,
with their command_id and decoded client_state, and the call's `flow` lane.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import boto3
import pytest
from boto3.dynamodb.types import TypeDeserializer

from tests.support.calls import CallScript, as_bus_event
from tests.support.routing import targets
from voicebus.calls.records import Feature
from voicebus.calls.store import CallStore
from voicebus.commands.ids import command_id
from voicebus.commands.sender import CommandRetryableError
from voicebus_cli.local.functions import LoadedFunction
from voicebus_cli.local.provision import ProvisionedStack
from voicebus_cli.local.telnyx_api import Fault, RecordedRequest, TelnyxApiStandIn

pytestmark = pytest.mark.integration

FUNCTION = "CallControlFunction"
CALLER = "+15550001111"
MAIN_NUMBER = "+15550002222"  # matched by no flow: the default flow, main
LIVE_MEDIA_NUMBER_DEFAULT = "+15550100200"  # live_media.yaml's match when FLOW_LIVE_MEDIA_NUMBER is not set
VOICE = "AWS.Polly.Joanna-Neural"
MENU_PROMPT = "Thank you for calling. Press 1 for sales, 2 to leave a message, or 3 for our opening hours."
RETRY_PROMPT = "Sorry, I did not get that. Press 1 for sales, 2 to leave a message, or 3 for our opening hours."


@dataclass(frozen=True)
class Command:
    """A command as the stand-in saw it: action, command_id, decoded client_state, and chosen body fields."""

    action: str | None
    command_id: str | None
    client_state: Any
    fields: dict[str, Any] = field(default_factory=dict)


def sent_by(webhook: dict[str, Any], step: str, action: str, position: dict[str, Any], **fields: Any) -> Command:
    """The command a step sends for `webhook`: its id is derived from the webhook's id, the action and the step."""
    return Command(action, command_id(webhook["data"]["id"], action, step), position, fields)


def at(step: str, attempt: int, seq: int, flow: str = "main") -> dict[str, Any]:
    """A flow position, as every command's client_state carries it."""
    return {"flow": flow, "step": step, "attempt": attempt, "seq": seq}


def position_of(client_state: Any) -> Any:
    """The flow position in a command's decoded client_state envelope (`voicebus.flows.envelope`)."""
    return client_state.get("voicebus", client_state) if isinstance(client_state, dict) else client_state


def assert_sent(requests: list[RecordedRequest], *expected: Command, status: int = 200) -> None:
    """Exactly these commands, in this order, each accepted by the spec-checking stand-in."""
    assert [request.action for request in requests] == [command.action for command in expected]
    received = [
        Command(
            request.action,
            request.command_id,
            position_of(request.client_state),
            {name: request.body.get(name) for name in command.fields},
        )
        for request, command in zip(requests, expected, strict=True)
    ]
    assert received == list(expected)
    assert [request.status for request in requests] == [status] * len(requests)


class PhoneCall:
    """One call's webhooks, delivered to the real function, echoing client_state as Telnyx does."""

    def __init__(self, consumers: dict[str, LoadedFunction], telnyx_api: TelnyxApiStandIn) -> None:
        self.script = CallScript()
        self.function = consumers[FUNCTION]
        self.api = telnyx_api
        self.client_state: str | None = None  # raw base64: what Telnyx echoes on later webhooks
        self.results: list[dict[str, Any]] = []

    @property
    def call_control_id(self) -> str:
        return self.script.call_control_id

    def webhook(self, event_type: str, **payload: Any) -> dict[str, Any]:
        if self.client_state is not None:
            payload.setdefault("client_state", self.client_state)
        return self.script.event(event_type, **payload)

    def deliver(self, webhook: dict[str, Any]) -> list[RecordedRequest]:
        """Invoke the function as the rule does; the requests it made to Telnyx."""
        event = as_bus_event(webhook)
        assert FUNCTION in targets(event), f"template.yaml routes no {webhook['data']['event_type']} to {FUNCTION}"
        self.results.append(self.function.invoke(event))
        requests = self.api.take_requests()
        for request in requests:
            if request.status == 200 and "client_state" in request.body:
                self.client_state = request.body["client_state"]
        return requests

    def event(self, event_type: str, **payload: Any) -> tuple[dict[str, Any], list[RecordedRequest]]:
        webhook = self.webhook(event_type, **payload)
        return webhook, self.deliver(webhook)

    def incoming(self, to: str = MAIN_NUMBER) -> tuple[dict[str, Any], list[RecordedRequest]]:
        return self.event("call.initiated", direction="incoming", state="parked", to=to, **{"from": CALLER})

    def answered_at_the_menu(self) -> None:
        initiated, requests = self.incoming()
        assert_sent(requests, sent_by(initiated, "answer", "answer", at("answer", 1, 1)))
        answered, requests = self.event("call.answered", to=MAIN_NUMBER, **{"from": CALLER})
        assert_sent(
            requests,
            sent_by(
                answered,
                "menu",
                "gather_using_speak",
                at("menu", 1, 2),
                payload=MENU_PROMPT,
                voice=VOICE,
                language="en-US",
                maximum_tries=1,
                maximum_digits=1,
                timeout_millis=8000,
            ),
        )


@pytest.fixture
def env(stack: ProvisionedStack) -> dict[str, str]:
    """The function's environment from the template: where FLOW_* values come from."""
    return stack.functions[FUNCTION].environment


def flow_lane(stack: ProvisionedStack, call_control_id: str) -> dict[str, Any] | None:
    """The call's `flow` lane exactly as stored."""
    item = boto3.client("dynamodb").get_item(
        TableName=stack.ref("CallsTable"),
        Key={"pk": {"S": f"CALL#{call_control_id}"}, "sk": {"S": "STATE"}},
        ConsistentRead=True,
    )["Item"]
    if "flow" not in item:
        return None
    lane: dict[str, Any] = TypeDeserializer().deserialize(item["flow"])
    return {name: int(value) if isinstance(value, Decimal) else value for name, value in lane.items()}


def position_in(lane: dict[str, Any] | None) -> tuple[str, str, int, int, str] | None:
    if lane is None:
        return None
    return lane["flow"], lane["step"], lane["attempt"], lane["seq"], lane["status"]


def forget_idempotency(stack: ProvisionedStack) -> None:
    """What the IdempotencyTable's TTL does after six hours."""
    dynamodb = boto3.client("dynamodb")
    table = stack.ref("IdempotencyTable")
    for item in dynamodb.scan(TableName=table)["Items"]:
        dynamodb.delete_item(TableName=table, Key={"id": item["id"]})


# ---------------------------------------------------------------------------
# The main flow, branch by branch


def test_pressing_1_transfers_to_the_sales_number(
    consumers: dict[str, LoadedFunction], telnyx_api: TelnyxApiStandIn, stack: ProvisionedStack, env: dict[str, str]
) -> None:
    call = PhoneCall(consumers, telnyx_api)
    call.answered_at_the_menu()

    pressed, requests = call.event("call.gather.ended", status="valid", digits="1")
    assert_sent(
        requests,
        sent_by(pressed, "sales", "transfer", at("sales", 1, 3), to=env["FLOW_SALES_NUMBER"], timeout_secs=30),
    )
    assert env["FLOW_SALES_NUMBER"] == stack.stack.parameter_value("SalesNumber")

    _, requests = call.event("call.bridged")
    assert requests == []
    hangup, requests = call.event("call.hangup", hangup_cause="normal_clearing", hangup_source="caller")
    assert requests == []

    lane = flow_lane(stack, call.call_control_id)
    assert position_in(lane) == ("main", "sales", 1, 3, "ended")
    assert lane is not None and (lane["event_id"], lane["event_type"]) == (hangup["data"]["id"], "call.hangup")


def test_pressing_2_records_a_voicemail_until_pound(
    consumers: dict[str, LoadedFunction], telnyx_api: TelnyxApiStandIn, stack: ProvisionedStack
) -> None:
    call = PhoneCall(consumers, telnyx_api)
    call.answered_at_the_menu()

    pressed, requests = call.event("call.gather.ended", status="valid", digits="2")
    assert_sent(
        requests,
        sent_by(
            pressed,
            "voicemail_prompt",
            "speak",
            at("voicemail_prompt", 1, 3),
            payload="Please leave your message after the beep. Press the pound key when you are done.",
            voice=VOICE,
        ),
    )
    spoken, requests = call.event("call.speak.ended", status="completed")
    assert_sent(
        requests,
        sent_by(
            spoken,
            "voicemail",
            "record_start",
            at("voicemail", 1, 4),
            format="mp3",
            channels="single",
            play_beep=True,
            max_length=300,
        ),
    )
    assert position_in(flow_lane(stack, call.call_control_id)) == ("main", "voicemail", 1, 4, "active")

    _, requests = call.event("call.dtmf.received", digit="5")  # any other key is part of the message
    assert requests == []
    pound, requests = call.event("call.dtmf.received", digit="#")
    assert_sent(requests, sent_by(pound, "voicemail", "record_stop", at("voicemail", 1, 4)))
    assert position_in(flow_lane(stack, call.call_control_id)) == ("main", "voicemail", 1, 4, "finishing")
    _, requests = call.event("call.dtmf.received", digit="#")  # pressed twice: stopped once
    assert requests == []

    saved, requests = call.event(
        "call.recording.saved",
        recording_id="rec-voicemail",
        channels="single",
        recording_urls={"mp3": "https://storage.example.test/rec-voicemail.mp3"},
    )
    assert_sent(
        requests,
        sent_by(
            saved,
            "voicemail_thanks",
            "speak",
            at("voicemail_thanks", 1, 5),
            payload="Thank you, your message has been recorded. Goodbye.",
        ),
    )
    assert call.results[-1]["flow"]["reason"] == "recording rec-voicemail saved"
    thanked, requests = call.event("call.speak.ended", status="completed")
    assert_sent(requests, sent_by(thanked, "hangup", "hangup", at("hangup", 1, 6)))
    _, requests = call.event("call.hangup", hangup_cause="normal_clearing", hangup_source="callee")
    assert requests == []

    assert position_in(flow_lane(stack, call.call_control_id)) == ("main", "hangup", 1, 6, "ended")


def test_a_caller_who_hangs_up_during_the_voicemail_gets_nothing_more(
    consumers: dict[str, LoadedFunction], telnyx_api: TelnyxApiStandIn, stack: ProvisionedStack
) -> None:
    call = PhoneCall(consumers, telnyx_api)
    call.answered_at_the_menu()
    call.event("call.gather.ended", status="valid", digits="2")
    call.event("call.speak.ended", status="completed")

    _, requests = call.event("call.hangup", hangup_cause="normal_clearing", hangup_source="caller")
    assert requests == []
    _, requests = call.event("call.recording.saved", recording_id="rec-after-hangup", channels="single")
    assert requests == []
    assert call.results[-1]["flow"]["reason"] == "the call has hung up"

    assert position_in(flow_lane(stack, call.call_control_id)) == ("main", "voicemail", 1, 4, "ended")


def test_pressing_3_plays_the_opening_hours_then_the_menu_again(
    consumers: dict[str, LoadedFunction], telnyx_api: TelnyxApiStandIn, stack: ProvisionedStack, env: dict[str, str]
) -> None:
    call = PhoneCall(consumers, telnyx_api)
    call.answered_at_the_menu()

    pressed, requests = call.event("call.gather.ended", status="valid", digits="3")
    assert_sent(
        requests,
        sent_by(
            pressed,
            "opening_hours",
            "playback_start",
            at("opening_hours", 1, 3),
            audio_url=env["FLOW_ANNOUNCEMENT_AUDIO_URL"],
        ),
    )
    played, requests = call.event(
        "call.playback.ended", status="completed", media_url=env["FLOW_ANNOUNCEMENT_AUDIO_URL"]
    )
    assert_sent(requests, sent_by(played, "menu", "gather_using_speak", at("menu", 1, 4), payload=MENU_PROMPT))

    pressed, requests = call.event("call.gather.ended", status="valid", digits="1")
    assert_sent(requests, sent_by(pressed, "sales", "transfer", at("sales", 1, 5), to=env["FLOW_SALES_NUMBER"]))
    assert position_in(flow_lane(stack, call.call_control_id)) == ("main", "sales", 1, 5, "active")


def test_three_failed_attempts_say_goodbye_and_hang_up(
    consumers: dict[str, LoadedFunction], telnyx_api: TelnyxApiStandIn, stack: ProvisionedStack
) -> None:
    call = PhoneCall(consumers, telnyx_api)
    call.answered_at_the_menu()

    silent, requests = call.event("call.gather.ended", status="timeout")
    assert_sent(requests, sent_by(silent, "menu", "gather_using_speak", at("menu", 2, 3), payload=RETRY_PROMPT))
    wrong, requests = call.event("call.gather.ended", status="valid", digits="9")
    assert_sent(requests, sent_by(wrong, "menu", "gather_using_speak", at("menu", 3, 4), payload=RETRY_PROMPT))
    invalid, requests = call.event("call.gather.ended", status="invalid", digits="*")
    assert_sent(
        requests,
        sent_by(
            invalid, "goodbye", "speak", at("goodbye", 1, 5), payload="We did not receive a valid choice. Goodbye."
        ),
    )
    spoken, requests = call.event("call.speak.ended", status="completed")
    assert_sent(requests, sent_by(spoken, "hangup", "hangup", at("hangup", 1, 6)))
    _, requests = call.event("call.hangup", hangup_cause="normal_clearing", hangup_source="callee")
    assert requests == []

    assert position_in(flow_lane(stack, call.call_control_id)) == ("main", "hangup", 1, 6, "ended")


# ---------------------------------------------------------------------------
# The live media flow


def test_the_live_media_flow_transcribes_streams_and_greets(
    consumers: dict[str, LoadedFunction],
    telnyx_api: TelnyxApiStandIn,
    stack: ProvisionedStack,
    env: dict[str, str],
    call_store: CallStore,
) -> None:
    call = PhoneCall(consumers, telnyx_api)
    initiated, requests = call.incoming(to=env.get("FLOW_LIVE_MEDIA_NUMBER", LIVE_MEDIA_NUMBER_DEFAULT))
    assert_sent(requests, sent_by(initiated, "answer", "answer", at("answer", 1, 1, flow="live_media")))

    answered, requests = call.event("call.answered")
    greeting = at("greeting", 1, 5, flow="live_media")
    assert_sent(
        requests,
        sent_by(answered, "clean_audio", "suppression_start", greeting, direction="both"),
        sent_by(
            answered,
            "transcription",
            "transcription_start",
            greeting,
            transcription_engine="Telnyx",
            transcription_tracks="both",
        ),
        sent_by(
            answered,
            "stream",
            "streaming_start",
            greeting,
            stream_url=env["FLOW_MEDIA_STREAM_URL"],
            stream_track="both_tracks",
        ),
        sent_by(answered, "greeting", "speak", greeting, voice=VOICE, language="en-US"),
    )
    assert len({request.command_id for request in requests}) == 4  # one webhook, four distinct command_ids
    # Noise suppression sends no webhook: the call learns of it when Telnyx accepts the command.
    record = call_store.get_call(call.call_control_id)
    assert record is not None
    assert record.features[Feature.NOISE_SUPPRESSION].model_extra == {"state": "active", "direction": "both"}

    _, requests = call.event("call.speak.ended", status="completed")
    assert requests == []  # the greeting has no next: the call streams until it hangs up
    call.event("call.hangup", hangup_cause="normal_clearing", hangup_source="caller")
    assert position_in(flow_lane(stack, call.call_control_id)) == ("live_media", "greeting", 1, 5, "ended")


# ---------------------------------------------------------------------------
# Duplicates, stale events, redeliveries, refusals and hang-ups


def test_the_same_bus_event_twice_sends_one_command(
    consumers: dict[str, LoadedFunction], telnyx_api: TelnyxApiStandIn
) -> None:
    call = PhoneCall(consumers, telnyx_api)
    call.answered_at_the_menu()
    pressed = call.webhook("call.gather.ended", status="valid", digits="1")

    first = call.deliver(pressed)
    second = call.deliver(pressed)

    assert [request.action for request in first] == ["transfer"]
    assert second == []
    assert call.results[-1] == call.results[-2]


def test_a_stale_gather_ended_for_an_earlier_attempt_sends_nothing(
    consumers: dict[str, LoadedFunction], telnyx_api: TelnyxApiStandIn, stack: ProvisionedStack
) -> None:
    call = PhoneCall(consumers, telnyx_api)
    call.answered_at_the_menu()
    first_attempt = call.client_state
    _, requests = call.event("call.gather.ended", status="timeout")
    assert [request.action for request in requests] == ["gather_using_speak"]

    late = call.webhook("call.gather.ended", status="valid", digits="1", client_state=first_attempt)
    assert call.deliver(late) == []

    assert call.results[-1]["flow"]["decision"] == "ignored"
    assert call.results[-1]["flow"]["reason"].startswith("stale: the event answers main/menu attempt 1 (seq 2)")
    assert position_in(flow_lane(stack, call.call_control_id)) == ("main", "menu", 2, 3, "active")


def test_a_stale_speak_ended_from_a_replaced_prompt_sends_nothing(
    consumers: dict[str, LoadedFunction], telnyx_api: TelnyxApiStandIn, stack: ProvisionedStack
) -> None:
    call = PhoneCall(consumers, telnyx_api)
    call.answered_at_the_menu()
    call.event("call.gather.ended", status="valid", digits="2")
    prompt_state = call.client_state  # the voicemail prompt's
    call.event("call.speak.ended", status="completed")
    call.event("call.dtmf.received", digit="#")
    call.event("call.recording.saved", recording_id="rec-stale", channels="single")  # now thanking: a speak step

    late = call.webhook("call.speak.ended", status="completed", client_state=prompt_state)
    assert call.deliver(late) == []  # it would otherwise end the thanks early and hang up

    assert position_in(flow_lane(stack, call.call_control_id)) == ("main", "voicemail_thanks", 1, 5, "active")
    thanked, requests = call.event("call.speak.ended", status="completed")
    assert_sent(requests, sent_by(thanked, "hangup", "hangup", at("hangup", 1, 6)))


def test_a_late_event_delivered_after_a_newer_one_sends_nothing(
    consumers: dict[str, LoadedFunction], telnyx_api: TelnyxApiStandIn, stack: ProvisionedStack
) -> None:
    call = PhoneCall(consumers, telnyx_api)
    call.answered_at_the_menu()
    timed_out = call.webhook("call.gather.ended", status="timeout")
    hangup = call.webhook("call.hangup", hangup_cause="normal_clearing", hangup_source="caller")

    assert call.deliver(hangup) == []
    assert call.deliver(timed_out) == []  # occurred first, arrived last: the call is gone

    assert position_in(flow_lane(stack, call.call_control_id)) == ("main", "menu", 1, 2, "ended")


def test_a_redelivery_after_the_idempotency_record_expired_sends_the_same_command_id(
    consumers: dict[str, LoadedFunction], telnyx_api: TelnyxApiStandIn, stack: ProvisionedStack, env: dict[str, str]
) -> None:
    call = PhoneCall(consumers, telnyx_api)
    call.answered_at_the_menu()
    pressed = call.webhook("call.gather.ended", status="valid", digits="1")
    first = call.deliver(pressed)
    forget_idempotency(stack)

    again = call.deliver(pressed)

    expected = sent_by(pressed, "sales", "transfer", at("sales", 1, 3), to=env["FLOW_SALES_NUMBER"])
    assert_sent(first, expected)
    assert_sent(again, expected)  # Telnyx ignores a command_id it has seen on this call
    assert call.results[-1]["flow"]["decision"] == "replayed"
    lane = flow_lane(stack, call.call_control_id)
    assert position_in(lane) == ("main", "sales", 1, 3, "active")
    assert lane is not None and lane["event_id"] == pressed["data"]["id"]

    # An older event redelivered once the flow has moved on is stale: nothing at all.
    answered = call.script.webhooks[1]
    assert answered["data"]["event_type"] == "call.answered"
    assert call.deliver(answered) == []


def test_a_failed_send_is_retried_by_redelivery_with_the_same_command_id(
    consumers: dict[str, LoadedFunction], telnyx_api: TelnyxApiStandIn, stack: ProvisionedStack
) -> None:
    call = PhoneCall(consumers, telnyx_api)
    initiated = call.webhook("call.initiated", direction="incoming", to=MAIN_NUMBER, **{"from": CALLER})
    telnyx_api.fail_next(*[Fault.server_error(503)] * 4)

    with pytest.raises(CommandRetryableError):
        call.deliver(initiated)
    failed = telnyx_api.take_requests()
    answer = sent_by(initiated, "answer", "answer", at("answer", 1, 1))
    assert_sent(failed, answer, answer, answer, answer, status=503)

    retried = call.deliver(initiated)  # EventBridge's retry: the failed invocation left no idempotency record

    assert_sent(retried, answer)
    assert call.results[-1]["flow"]["decision"] == "replayed"
    assert position_in(flow_lane(stack, call.call_control_id)) == ("main", "answer", 1, 1, "active")


def test_a_command_refused_because_the_call_ended_is_recorded_not_retried(
    consumers: dict[str, LoadedFunction], telnyx_api: TelnyxApiStandIn, stack: ProvisionedStack
) -> None:
    call = PhoneCall(consumers, telnyx_api)
    initiated, _ = call.incoming()
    telnyx_api.fail_next(Fault.call_ended())

    answered, requests = call.event("call.answered")

    assert_sent(requests, sent_by(answered, "menu", "gather_using_speak", at("menu", 1, 2)), status=422)
    outcome = call.results[-1]["flow"]["commands"]
    reason = "90018 Call has already ended: This call is no longer active and can't receive commands."
    assert outcome == [
        {
            "step": "menu",
            "action": "gather_using_speak",
            "command_id": command_id(answered["data"]["id"], "gather_using_speak", "menu"),
            "status": "rejected",
            "reason": reason,
        }
    ]
    lane = flow_lane(stack, call.call_control_id)
    assert lane is not None and lane["rejected"] == {
        "step": "menu",
        "action": "gather_using_speak",
        "command_id": outcome[0]["command_id"],
        "reason": reason,
    }

    _, requests = call.event("call.hangup", hangup_cause="normal_clearing")
    assert requests == []
    lane = flow_lane(stack, call.call_control_id)
    assert position_in(lane) == ("main", "menu", 1, 2, "ended")
    assert lane is not None and lane["rejected"]["action"] == "gather_using_speak"
    assert initiated["data"]["id"] != answered["data"]["id"]


def test_after_a_hangup_nothing_more_is_sent(
    consumers: dict[str, LoadedFunction], telnyx_api: TelnyxApiStandIn, stack: ProvisionedStack
) -> None:
    call = PhoneCall(consumers, telnyx_api)
    call.answered_at_the_menu()

    _, requests = call.event("call.hangup", hangup_cause="normal_clearing", hangup_source="caller")
    assert requests == []
    for event_type, payload in [
        ("call.gather.ended", {"status": "valid", "digits": "1"}),
        ("call.speak.ended", {"status": "completed"}),
        ("call.dtmf.received", {"digit": "#"}),
        ("call.answered", {}),
    ]:
        _, requests = call.event(event_type, **payload)
        assert requests == [], event_type

    assert position_in(flow_lane(stack, call.call_control_id)) == ("main", "menu", 1, 2, "ended")


def test_an_outgoing_leg_starts_no_flow(
    consumers: dict[str, LoadedFunction], telnyx_api: TelnyxApiStandIn, stack: ProvisionedStack
) -> None:
    """The leg a transfer dials is a call of its own, with call.initiated direction outgoing."""
    call = PhoneCall(consumers, telnyx_api)
    _, requests = call.event("call.initiated", direction="outgoing", to="+15550100100", **{"from": MAIN_NUMBER})
    assert requests == []
    _, requests = call.event("call.answered")
    assert requests == []
    assert flow_lane(stack, call.call_control_id) is None
