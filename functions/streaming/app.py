"""Streaming (streaming.started, .stopped, .failed): stream id, URL and failure reason."""

from voicebus.calls.consumer import build_handler

lambda_handler = build_handler()
