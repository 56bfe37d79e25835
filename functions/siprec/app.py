"""SIPREC (siprec.started, .stopped, .failed): the call's SIPREC session status."""

from voicebus.calls.consumer import build_handler

lambda_handler = build_handler()
