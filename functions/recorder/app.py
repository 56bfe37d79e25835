"""Record-only families (media, fork, streaming, refer, siprec, timeline): one code folder, family from EVENT_FAMILY.

No idempotency record: recording is already safe to repeat (voicebus.calls.handler).
"""

from voicebus.calls.handler import build_handler

lambda_handler = build_handler()
