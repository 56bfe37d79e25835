"""Limits Telnyx's OpenAPI spec states only in prose, merged into the generated command schemas.

The generator (`command_schemas.py`) takes every request schema from the spec as
it is; this overlay adds what the spec's descriptions say but its keywords do
not, so that voicebus refuses such a command before sending it. Each entry is
`location -> JSON Schema keywords to set there`, with the spec's own words above
it. A location is either `definitions/<Component>` (a shared component, for every
action that uses it) or `<action>.<field>` (a top-level body field of one action).

The generator refuses an entry whose location is gone (the spec changed) or
whose keywords the spec already states (the entry is no longer needed), so this
file cannot silently drift from the spec.

Not here because the spec states them itself: the uuid format of recording_id,
stream_id, billing_group_id and video_room_id (checked with a format function at
run time, since draft-07 has no `uuid` format), custom_file_name and
record_custom_file_name (1..40), transfer time_limit_secs (30..14400),
stream_auth_token (<= 4000), gather_id (1..40), webhook retries_ms (<= 5 items),
deepfake_detection's timeouts and noise suppression's attenuation_limit (0..100).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

_NOT_EMPTY: Final = {"minLength": 1}
"""A required text field: an empty string is no payload, voice or destination."""

_MAXIMUM_DIGITS: Final = {"maximum": 128}
"""GatherRequest and friends, maximum_digits: "This parameter has a maximum value of 128." """

OVERLAY: Final[Mapping[str, Mapping[str, Any]]] = {
    # components/schemas/Loopcount is `string | integer`; PlayAudioUrlRequest.loop: "the value must be an
    # integer between 1 and 100, or the special string `infinity` for an endless loop." (speak's loop too)
    # As if/then/else rather than oneOf, so that an error says which limit was missed.
    "definitions/Loopcount": {
        "if": {"type": "string"},
        "then": {"enum": ["infinity"]},
        "else": {"maximum": 100, "minimum": 1, "type": "integer"},
    },
    # SendDTMFRequest.digits: "Valid digits are 0-9, A-D, *, and #. Pauses can be added using w (0.5s) and W (1s)."
    "send_dtmf.digits": {"minLength": 1, "pattern": "^[0-9A-D*#wW]+$"},
    # SendDTMFRequest.duration_millis: "Ranges from 100 to 500ms"
    "send_dtmf.duration_millis": {"maximum": 500, "minimum": 100},
    # StartRecordingRequest.max_length: "The minimum value is 0. The maximum value is 14400."
    "record_start.max_length": {"maximum": 14400, "minimum": 0},
    "gather.maximum_digits": _MAXIMUM_DIGITS,
    "gather_using_audio.maximum_digits": _MAXIMUM_DIGITS,
    "gather_using_speak.maximum_digits": _MAXIMUM_DIGITS,
    # PlayAudioUrlRequest.target_legs: "the value must be either `self`, `opposite` or `both`."
    "playback_start.target_legs": {"enum": ["self", "opposite", "both"]},
    # TranscriptionStartRequest.transcription_tracks: "Use `inbound` for the leg that requested the transcription,
    # `outbound` for the other leg, and `both` for both legs of the call."
    "transcription_start.transcription_tracks": {"enum": ["inbound", "outbound", "both"]},
    # Required text: SpeakRequest/GatherUsingSpeakRequest payload ("The text or SSML to be converted into speech")
    # and voice; TransferCallRequest.to ("The DID or SIP URI to dial out to"); ReferRequest.sip_address ("The SIP
    # URI to which the call will be referred to"); BridgeRequest.call_control_id ("The Call Control ID of the call
    # you want to bridge with").
    "speak.payload": _NOT_EMPTY,
    "speak.voice": _NOT_EMPTY,
    "gather_using_speak.payload": _NOT_EMPTY,
    "gather_using_speak.voice": _NOT_EMPTY,
    "transfer.to": _NOT_EMPTY,
    "refer.sip_address": _NOT_EMPTY,
    "bridge.call_control_id": _NOT_EMPTY,
}
