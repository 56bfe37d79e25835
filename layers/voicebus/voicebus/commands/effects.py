"""What an accepted command means for the call record, for features Telnyx sends no webhook about.

Noise suppression, supervisor roles, pausing and resuming a recording and stopping
live transcription change without any later event, so the record learns of them
when Telnyx accepts the command. Starting and saving a recording, forking,
streaming, transcription segments, refer and SIPREC report themselves by webhook
and are recorded from those instead.
"""

from __future__ import annotations

from typing import Any

from voicebus.calls.records import Feature
from voicebus.commands.validation import CallCommand


def feature_change(command: CallCommand) -> tuple[Feature, dict[str, Any]] | None:
    """The lane and fields an accepted `command` sets, or None when a webhook will say."""
    match command.action:
        case "suppression_start":
            return Feature.NOISE_SUPPRESSION, {"state": "active", **command.body()}
        case "suppression_stop":
            return Feature.NOISE_SUPPRESSION, {"state": "stopped"}
        case "switch_supervisor_role":
            return Feature.SUPERVISOR_ROLE, {"state": str(command.params["role"])}
        case "record_pause":
            return Feature.RECORDING, {"state": "paused", **command.body()}
        case "record_resume":
            return Feature.RECORDING, {"state": "resumed", **command.body()}
        case "transcription_stop":
            return Feature.TRANSCRIPTION, {"state": "stopped"}
    return None
