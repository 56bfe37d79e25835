"""Limits Telnyx's OpenAPI spec states only in prose, merged into the generated command schemas.

The generator (`command_schemas.py`) takes every request schema from the spec as
it is; this overlay adds what the spec's descriptions say but its keywords do
not, so that voicebus refuses such a command before sending it. Each entry is
`location -> JSON Schema keywords to set there`, with the spec's own words above
it. A location is `definitions/<Component>` (a shared component, for every action
that uses it), `definitions/<Component>.<field>` (one field of it) or
`<action>.<field>` (a top-level body field of one action).

Limits that relate two fields (mutually exclusive, only with, required if) or add
a list up are not schema keywords here but rules in
`voicebus/commands/limits.py`, so that each message names the field and the rule.

The generator refuses an entry whose location is gone (the spec changed) or
whose keywords the spec already states (the entry is no longer needed), so this
file cannot silently drift from the spec.

Not here because the spec states them itself: the uuid format of recording_id,
stream_id, billing_group_id and video_room_id (checked with a format function at
run time, since draft-07 has no `uuid` format), custom_file_name and
record_custom_file_name (1..40), transfer time_limit_secs (30..14400),
stream_auth_token (<= 4000), gather_id (1..40), webhook retries_ms (<= 5 items),
deepfake_detection's timeouts and noise suppression's attenuation_limit (0..100).

Read and left out: "Can't be modified for an existing queue" (enqueue max_size: a
fact about the queue, not the request), "Must be a valid and existing Billing
Group ID" (only Telnyx knows), the Azure transcription models' `region` (the
assistant's TranscriptionConfig has no such field), and bridge's `call_control_id`
"can't be used together with queue or video_room_id": the spec also makes it
required, so enforcing both would refuse every queue bridge (queue and
video_room_id together are refused, in limits.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

_NOT_EMPTY: Final = {"minLength": 1}
"""A required text field: an empty string is no payload, voice or destination."""

_MAXIMUM_DIGITS: Final = {"maximum": 128}
"""GatherRequest and friends, maximum_digits: "This parameter has a maximum value of 128." """

_MINIMUM_DIGITS: Final = {"minimum": 1}
"""GatherRequest and friends, minimum_digits: "This parameter has a minimum value of 1." """

_SPEECH: Final = {"maxLength": 3000}
"""Text to speak (payload, invalid_payload, greeting): "There is a 3,000 character limit." """

_REQUIRED_SPEECH: Final = {**_NOT_EMPTY, **_SPEECH}

_RECORD_MAX_LENGTH: Final = {"maximum": 43200, "minimum": 0}
"""answer/bridge/transfer record_max_length: "The minimum value is 0. The maximum value is 43200." """

_NOT_NEGATIVE: Final = {"minimum": 0}
"""record_timeout_secs / timeout_secs (recording): "The minimum value is 0." """

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
    "gather.minimum_digits": _MINIMUM_DIGITS,
    "gather_using_audio.minimum_digits": _MINIMUM_DIGITS,
    "gather_using_speak.minimum_digits": _MINIMUM_DIGITS,
    # StartRecordingRequest.timeout_secs: "The minimum value is 0."
    "record_start.timeout_secs": _NOT_NEGATIVE,
    "answer.record_max_length": _RECORD_MAX_LENGTH,
    "bridge.record_max_length": _RECORD_MAX_LENGTH,
    "transfer.record_max_length": _RECORD_MAX_LENGTH,
    "answer.record_timeout_secs": _NOT_NEGATIVE,
    "bridge.record_timeout_secs": _NOT_NEGATIVE,
    "transfer.record_timeout_secs": _NOT_NEGATIVE,
    # TransferCallRequest.timeout_secs: "Minimum value is 5 seconds. Maximum value is 600 seconds."
    "transfer.timeout_secs": {"maximum": 600, "minimum": 5},
    # TransferCallRequest.from_display_name: "The string should have a maximum of 128 characters, containing only
    # letters, numbers, spaces, and -_~!.+ special characters."
    "transfer.from_display_name": {"maxLength": 128, "pattern": "^[\\w .~!+-]*$"},
    # TransferCallRequest.send_digits_on_answer: "Allowed characters: `0-9`, `A-D`, `w` (0.5s pause), `W` (1s
    # pause), `*`, `#`. Maximum 64 characters."
    "transfer.send_digits_on_answer": {"maxLength": 64, "pattern": "^[0-9A-D*#wW]*$"},
    # StartSiprecRequest.session_timeout_secs: "Minimum value is 90, set to 0 to disable."
    "siprec_start.session_timeout_secs": {"if": {"maximum": 0}, "then": {"enum": [0]}, "else": {"minimum": 90}},
    # SendSIPInfoRequest.content_type: "There is a 1,400 bytes limit" (MIME types are ASCII: characters are bytes).
    "send_sip_info.content_type": {"maxLength": 1400},
    # SoundModifications (answer, transfer): octaves "values should be between -1 and 1", semitone "between -14
    # and 14", pitch "value should be > 0", track "Accepted values are `inbound` or `outbound`".
    "definitions/SoundModifications.octaves": {"maximum": 1, "minimum": -1},
    "definitions/SoundModifications.semitone": {"maximum": 14, "minimum": -14},
    "definitions/SoundModifications.pitch": {"exclusiveMinimum": 0},
    "definitions/SoundModifications.track": {"enum": ["inbound", "outbound"]},
    # AIAssistantStartRequest.greeting, GatherUsingAIRequest.greeting: "There is a 3,000 character limit."
    "ai_assistant_start.greeting": _SPEECH,
    "gather_using_ai.greeting": _SPEECH,
    "gather_using_speak.invalid_payload": _SPEECH,
    # PlayAudioUrlRequest.target_legs: "the value must be either `self`, `opposite` or `both`."
    "playback_start.target_legs": {"enum": ["self", "opposite", "both"]},
    # TranscriptionStartRequest.transcription_tracks: "Use `inbound` for the leg that requested the transcription,
    # `outbound` for the other leg, and `both` for both legs of the call."
    "transcription_start.transcription_tracks": {"enum": ["inbound", "outbound", "both"]},
    # Required text: SpeakRequest/GatherUsingSpeakRequest payload ("The text or SSML to be converted into speech")
    # and voice; TransferCallRequest.to ("The DID or SIP URI to dial out to"); ReferRequest.sip_address ("The SIP
    # URI to which the call will be referred to"); BridgeRequest.call_control_id ("The Call Control ID of the call
    # you want to bridge with").
    "speak.payload": _REQUIRED_SPEECH,
    "speak.voice": _NOT_EMPTY,
    "gather_using_speak.payload": _REQUIRED_SPEECH,
    "gather_using_speak.voice": _NOT_EMPTY,
    "transfer.to": _NOT_EMPTY,
    "refer.sip_address": _NOT_EMPTY,
    "bridge.call_control_id": _NOT_EMPTY,
}
