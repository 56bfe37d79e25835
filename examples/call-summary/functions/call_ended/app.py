"""Your own code after each call: hears `call.hangup` by its own rule on the voicebus bus.

The event is the verified Telnyx webhook as EventBridge delivers it: `detail` is the
webhook body, `detail-type` its event_type. Stdlib only, so the same file runs in its
own stack (examples/call-summary/template.yaml) or added to voicebus's template.yaml.
"""

from __future__ import annotations

import json
from typing import Any


def lambda_handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    payload = event["detail"]["data"]["payload"]
    summary = {
        "call_control_id": payload.get("call_control_id"),
        "call_session_id": payload.get("call_session_id"),
        "from": payload.get("from"),
        "to": payload.get("to"),
        "hangup_cause": payload.get("hangup_cause"),
        "hangup_source": payload.get("hangup_source"),
        "started_at": payload.get("start_time"),
        "ended_at": event["detail"]["data"].get("occurred_at"),
    }
    print(json.dumps({"message": "call ended", **summary}))  # your CRM, ticket or Slack call goes here
    return summary
