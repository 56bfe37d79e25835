"""Family functions whose work must not repeat: the shared consumer with Powertools idempotency on `data.id`.

Call control (commands sent to Telnyx), recording and transcription (uploads to S3)
build their handler here: a redelivered event's whole invocation is skipped, with its
first result returned. The store's conditional writes still make a late or repeated
event harmless after the idempotency record has expired. Record-only families need
none of this and use `voicebus.calls.handler.build_handler` (no idempotency table,
no IdempotencyAccess).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from voicebus import config
from voicebus.calls.events import TelnyxWebhook
from voicebus.calls.families import EventFamily, family_from_env
from voicebus.calls.handler import (
    CORRELATION_ID_PATH,
    Act,
    EventConsumer,
    Handler,
    lambda_handler_for,
    store_from_env,
)
from voicebus.calls.recorder import CallEventRecorder

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

__all__ = [
    "CORRELATION_ID_PATH",
    "IDEMPOTENCY_EXPIRY_SECONDS",
    "Act",
    "Handler",
    "IdempotentEventConsumer",
    "build_handler",
    "store_from_env",
]

IDEMPOTENCY_EXPIRY_SECONDS = 6 * 3600  # longer than Telnyx's retries and EventBridge's retry window


class IdempotentEventConsumer(EventConsumer):
    """An EventConsumer that processes each webhook (`data.id`) once per function."""

    def __init__(
        self,
        recorder: CallEventRecorder,
        family: EventFamily,
        logger: Logger,
        metrics: Metrics,
        act: Act | None = None,
        *,
        idempotency_client: DynamoDBClient | None = None,
    ) -> None:
        super().__init__(recorder, family, logger, metrics, act)
        self.idempotency = IdempotencyConfig(
            event_key_jmespath="data.id", expires_after_seconds=IDEMPOTENCY_EXPIRY_SECONDS
        )
        # The container's own client: Powertools would otherwise build a second boto3 session (100-250 ms).
        persistence = DynamoDBPersistenceLayer(
            table_name=config.require("IDEMPOTENCY_TABLE_NAME"), boto3_client=idempotency_client
        )
        self._process_once = idempotent_function(
            data_keyword_argument="webhook", config=self.idempotency, persistence_store=persistence
        )(self.process)

    def handle(self, event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        self.idempotency.register_lambda_context(context)
        return super().handle(event, context)

    def run(self, webhook: TelnyxWebhook) -> dict[str, Any]:
        result: dict[str, Any] = self._process_once(webhook=webhook)
        return result


def build_handler(act: Act | None = None) -> Handler:
    """The Lambda handler of a family function with idempotency (EVENT_FAMILY; service from POWERTOOLS_SERVICE_NAME)."""
    dynamodb = boto3.client("dynamodb")  # one client for the store and the idempotency layer
    consumer = IdempotentEventConsumer(
        CallEventRecorder(store_from_env(dynamodb)),
        family_from_env(),
        Logger(),
        Metrics(),
        act,
        idempotency_client=dynamodb,
    )
    return lambda_handler_for(consumer)
