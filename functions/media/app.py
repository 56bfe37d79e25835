"""Media (call.playback.*, call.speak.*): the call's playback and speak status."""

from voicebus.calls.consumer import build_handler

lambda_handler = build_handler()
