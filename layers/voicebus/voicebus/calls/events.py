"""pydantic models of Telnyx webhooks as the consumers receive them, inside EventBridge events.

Only the fields voicebus acts on are typed; everything else is kept (`extra="allow"`),
so a new field from Telnyx never breaks parsing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class CallPayload(BaseModel):
    """`data.payload` of call, streaming and SIPREC events."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    call_control_id: str | None = None
    call_leg_id: str | None = None
    call_session_id: str | None = None
    connection_id: str | None = None
    conference_id: str | None = None
    client_state: str | None = None
    from_: str | None = Field(default=None, alias="from")
    to: str | None = None
    direction: str | None = None
    status: str | None = None
    # call.hangup
    hangup_cause: str | None = None
    hangup_source: str | None = None
    sip_hangup_cause: str | None = None
    # call.gather.ended / call.dtmf.received
    digits: str | None = None
    digit: str | None = None
    # recordings
    recording_id: str | None = None
    channels: str | None = None
    recording_urls: dict[str, str | None] | None = None
    recording_started_at: datetime | None = None
    recording_ended_at: datetime | None = None
    # streaming, fork, siprec, refer
    stream_id: str | None = None
    stream_url: str | None = None
    stream_type: str | None = None
    failure_reason: str | None = None


class WebhookData(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str = Field(min_length=1)
    event_type: str = Field(min_length=1)
    # Some events (the spec's conference.* examples) carry it in the payload instead;
    # TelnyxBusEvent fills it in, so consumers always see a value.
    occurred_at: datetime | None = None
    record_type: str = "event"
    payload: CallPayload = Field(default_factory=CallPayload)

    @field_validator("occurred_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        """Timestamps compare as text in DynamoDB conditions: always UTC."""
        return _as_utc(value) if value is not None else None

    @property
    def occurred(self) -> datetime:
        if self.occurred_at is None:
            raise ValueError("occurred_at was not resolved; parse webhooks through TelnyxBusEvent")
        return self.occurred_at


class TelnyxWebhook(BaseModel):
    """The webhook body exactly as the ingress put it on the bus (its `detail`)."""

    model_config = ConfigDict(extra="allow")

    data: WebhookData
    meta: dict[str, Any] | None = None


class TelnyxBusEvent(EventBridgeModel):
    """An EventBridge event whose detail is a Telnyx webhook."""

    detail: TelnyxWebhook

    @model_validator(mode="after")
    def _resolve_occurred_at(self) -> TelnyxBusEvent:
        """Order needs a time: `data.occurred_at`, else the payload's, else when the bus got it."""
        data = self.detail.data
        if data.occurred_at is None:
            from_payload = (data.payload.model_extra or {}).get("occurred_at")
            data.occurred_at = _as_utc(datetime.fromisoformat(from_payload) if from_payload else self.time)
        return self


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def occurred_key(moment: datetime) -> str:
    """A fixed-width UTC timestamp: sorts and compares correctly as a string."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
