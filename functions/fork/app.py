"""Fork (call.fork.started, call.fork.stopped): the call's media fork status."""

from voicebus.calls.consumer import build_handler

lambda_handler = build_handler()
