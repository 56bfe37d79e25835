"""Your own code for each finished recording: hears `call.recording.saved` by its own rule.

Telnyx sends it after the hang-up, once the recording is stored. voicebus's recording
function archives it to S3 at the same time, so do not expect the archive to be there
yet; Telnyx's own download links (`recording_urls`) are valid for 10 minutes.
"""

from __future__ import annotations

import json
from typing import Any


def lambda_handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    payload = event["detail"]["data"]["payload"]
    saved = {
        "call_control_id": payload.get("call_control_id"),
        "recording_id": payload.get("recording_id"),
        "channels": payload.get("channels"),
        "started_at": payload.get("recording_started_at"),
        "ended_at": payload.get("recording_ended_at"),
        "formats": sorted(payload.get("recording_urls") or {}),
    }
    print(json.dumps({"message": "recording saved", **saved}))  # transcription, QA sampling... goes here
    return saved
