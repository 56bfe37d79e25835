"""Recordings (call.recording.saved, .error, .transcription.saved): the call's recordings."""

from voicebus.consumer import build_handler

lambda_handler = build_handler()
