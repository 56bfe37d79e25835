"""What an accepted command means for the call record, for features Telnyx sends no webhook about.

Noise suppression and supervisor roles change without any later event, so the
record learns of them when Telnyx accepts the command. Recording, forking,
streaming, transcription, refer and SIPREC report themselves by webhook and are
recorded from those instead.
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
    return None
