"""What an accepted command means for the call record, for features Telnyx sends no webhook about.

Noise suppression and supervisor roles change without any later event, so the
record learns of them when Telnyx accepts the command. Recording, forking,
streaming, transcription, refer and SIPREC report themselves by webhook and are
recorded from those instead.
"""

from __future__ import annotations

from typing import Any

from voicebus.calls.store import Feature
from voicebus.commands.models import CallCommand, SuppressionStart, SuppressionStop, SwitchSupervisorRole


def feature_change(command: CallCommand) -> tuple[Feature, dict[str, Any]] | None:
    """The lane and fields an accepted `command` sets, or None when a webhook will say."""
    if isinstance(command, SuppressionStart):
        return Feature.NOISE_SUPPRESSION, {"state": "active", **command.body()}
    if isinstance(command, SuppressionStop):
        return Feature.NOISE_SUPPRESSION, {"state": "stopped"}
    if isinstance(command, SwitchSupervisorRole):
        return Feature.SUPERVISOR_ROLE, {"state": str(command.role)}
    return None
