"""Call control (call.initiated, .answered, .bridged, .hangup, .gather.ended, .dtmf.received).

Keeps the call's status, parties, gather result and DTMF on its record, and runs
the IVR flows in ./flows on every call. It also hears, only to advance flows,
call.speak.ended, call.playback.ended, call.recording.saved / .error and
call.refer.completed / .failed; and EventBridge Scheduler invokes it directly with
`flow.step.timeout` when a step's time limit passes (voicebus.flows.timeouts).
"""

from pathlib import Path

from voicebus.calls.consumer import build_handler
from voicebus.flows.runner import FlowRunner

FLOWS_DIR = Path(__file__).resolve().parent / "flows"

runner = FlowRunner.from_environment(FLOWS_DIR)
lambda_handler = build_handler(act=runner.on_event)
