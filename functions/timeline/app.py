"""Every event type no family claims (call.hold, call.machine.*, conference.*, ...): kept on the timeline."""

from voicebus.calls.consumer import build_handler

lambda_handler = build_handler()
