"""Ingress: Telnyx webhook over HTTP API -> verified event on the custom EventBridge bus.

Imports are chosen for cold start (see bench/ingress_cost.py and bench/cold_starts.py): no telnyx SDK, no
pydantic, no Powertools parser or idempotency.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from voicebus.ingress.publisher import events_client_config
from voicebus.ingress.receiver import WEBHOOK_PATH, IngressAnswer, WebhookIngress
from voicebus.ingress.settings import IngressSettings

logger = Logger()
metrics = Metrics()
app = APIGatewayHttpResolver()

# Telnyx waits about 2 s for an answer: the put's worst case is bounded by the publisher (1.4 s).
_EVENTS_CLIENT = boto3.client("events", config=events_client_config())
ingress = WebhookIngress.from_settings(IngressSettings.from_env(), _EVENTS_CLIENT, logger, metrics)


def _json(answer: IngressAnswer, headers: dict[str, str] | None = None) -> Response[str]:
    return Response(
        status_code=answer.status,
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps(answer.body),
        headers=headers,
    )


@app.post(WEBHOOK_PATH)
def receive_webhook() -> Response[str]:
    event = app.current_event
    return _json(ingress.receive(event.body, bool(event.is_base64_encoded), event.headers))


@app.route(WEBHOOK_PATH, method=["GET", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])
def wrong_method() -> Response[str]:
    answer = IngressAnswer(405, {"error": "method_not_allowed", "message": "Telnyx webhooks are POSTed"})
    return _json(answer, {"Allow": "POST"})


@app.not_found
def not_found(_: Exception) -> Response[str]:
    return _json(IngressAnswer(404, {"error": "not_found", "message": f"the webhook path is {WEBHOOK_PATH}"}))


@app.exception_handler(Exception)  # type: ignore[untyped-decorator]
def unexpected(_: Exception) -> Response[str]:
    logger.exception("unexpected ingress failure")
    return _json(IngressAnswer(500, {"error": "internal", "message": "unexpected failure; Telnyx will retry"}))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
