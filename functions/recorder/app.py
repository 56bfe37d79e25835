"""Record-only families (media, fork, streaming, refer, siprec, timeline): one code folder, family from EVENT_FAMILY."""

from voicebus.calls.consumer import build_handler

lambda_handler = build_handler()
