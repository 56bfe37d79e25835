"""SIP refer (call.refer.started, .completed, .failed): the call's refer status."""

from voicebus.calls.consumer import build_handler

lambda_handler = build_handler()
