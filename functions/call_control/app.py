"""Call control (call.initiated, .answered, .bridged, .hangup, .gather.ended, .dtmf.received).

Keeps the call's status, parties, gather result and DTMF on its record.
"""

from voicebus.consumer import build_handler

lambda_handler = build_handler()
