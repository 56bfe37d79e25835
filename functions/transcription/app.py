"""Live transcription (call.transcription): the call's transcription status."""

from voicebus.consumer import build_handler

lambda_handler = build_handler()
