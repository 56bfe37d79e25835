"""Call control (call.initiated, .answered, .bridged, .hangup, .gather.ended, .dtmf.received).

Keeps the call's status, parties, gather result and DTMF on its record, and runs
the IVR flows in ./flows on every call (it also hears call.speak.ended,
call.playback.ended and call.recording.saved, which only advance flows).
"""

from pathlib import Path

from voicebus.calls.consumer import build_handler
from voicebus.flows.runner import FlowRunner

FLOWS_DIR = Path(__file__).resolve().parent / "flows"

runner = FlowRunner.from_environment(FLOWS_DIR)
lambda_handler = build_handler(act=runner.on_event)
