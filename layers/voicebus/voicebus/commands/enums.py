"""The enumerations of Telnyx's Call Control request bodies, copied from the OpenAPI spec.

Literal aliases rather than StrEnums: callers pass plain strings (they arrive as
JSON), mypy still checks literals written in code, and pydantic's error names
every allowed value. tests/unit/test_commands.py compares each alias with the
vendored spec (tools/voicebus_cli/local/telnyx-voice-openapi.json), so a spec update that
changes a value fails there first. Where two request fields share one set of
values (`format` and `record_format`), they share one alias.
"""

from __future__ import annotations

from typing import Literal

# Recording: record_start, and the record_* options of answer, bridge and transfer

RecordingFormat = Literal["wav", "mp3"]
"""StartRecordingRequest.format; record_format elsewhere."""

RecordingChannels = Literal["single", "dual"]
"""StartRecordingRequest.channels; record_channels elsewhere."""

RecordingTrack = Literal["both", "inbound", "outbound"]
"""StartRecordingRequest.recording_track; record_track elsewhere."""

RecordingTrim = Literal["trim-silence"]
"""StartRecordingRequest.trim; record_trim elsewhere."""

RecordFromAnswer = Literal["record-from-answer"]
"""The `record` option of answer, bridge and transfer."""

RecordingTranscriptionEngine = Literal["A", "B", "deepgram/nova-3"]
"""StartRecordingRequest.transcription_engine (not the live-transcription engines)."""

TranscriptionLanguage = Literal[
    "af",
    "af-ZA",
    "am",
    "am-ET",
    "ar",
    "ar-AE",
    "ar-BH",
    "ar-DZ",
    "ar-EG",
    "ar-IL",
    "ar-IQ",
    "ar-JO",
    "ar-KW",
    "ar-LB",
    "ar-MA",
    "ar-MR",
    "ar-OM",
    "ar-PS",
    "ar-QA",
    "ar-SA",
    "ar-TN",
    "ar-YE",
    "as",
    "auto_detect",
    "az",
    "az-AZ",
    "ba",
    "be",
    "bg",
    "bg-BG",
    "bn",
    "bn-BD",
    "bn-IN",
    "bo",
    "br",
    "bs",
    "bs-BA",
    "ca",
    "ca-ES",
    "cs",
    "cs-CZ",
    "cy",
    "da",
    "da-DK",
    "de",
    "de-AT",
    "de-CH",
    "de-DE",
    "el",
    "el-GR",
    "en",
    "en-AU",
    "en-CA",
    "en-GB",
    "en-GH",
    "en-HK",
    "en-IE",
    "en-IN",
    "en-KE",
    "en-NG",
    "en-NZ",
    "en-PH",
    "en-PK",
    "en-SG",
    "en-TZ",
    "en-US",
    "en-ZA",
    "es",
    "es-419",
    "es-AR",
    "es-BO",
    "es-CL",
    "es-CO",
    "es-CR",
    "es-DO",
    "es-EC",
    "es-ES",
    "es-GT",
    "es-HN",
    "es-MX",
    "es-NI",
    "es-PA",
    "es-PE",
    "es-PR",
    "es-PY",
    "es-SV",
    "es-US",
    "es-UY",
    "es-VE",
    "et",
    "et-EE",
    "eu",
    "eu-ES",
    "fa",
    "fa-IR",
    "fi",
    "fi-FI",
    "fil-PH",
    "fo",
    "fr",
    "fr-BE",
    "fr-CA",
    "fr-CH",
    "fr-FR",
    "gl",
    "gl-ES",
    "gu",
    "gu-IN",
    "ha",
    "haw",
    "he",
    "hi",
    "hi-IN",
    "hr",
    "hr-HR",
    "ht",
    "hu",
    "hu-HU",
    "hy",
    "hy-AM",
    "id",
    "id-ID",
    "is",
    "is-IS",
    "it",
    "it-CH",
    "it-IT",
    "iw-IL",
    "ja",
    "ja-JP",
    "jv-ID",
    "jw",
    "ka",
    "ka-GE",
    "kk",
    "kk-KZ",
    "km",
    "km-KH",
    "kn",
    "kn-IN",
    "ko",
    "ko-KR",
    "la",
    "lb",
    "ln",
    "lo",
    "lo-LA",
    "lt",
    "lt-LT",
    "lv",
    "lv-LV",
    "mg",
    "mi",
    "mk",
    "mk-MK",
    "ml",
    "ml-IN",
    "mn",
    "mn-MN",
    "mr",
    "mr-IN",
    "ms",
    "ms-MY",
    "mt",
    "my",
    "my-MM",
    "ne",
    "ne-NP",
    "nl",
    "nl-BE",
    "nl-NL",
    "nn",
    "no",
    "no-NO",
    "oc",
    "pa",
    "pa-Guru-IN",
    "pl",
    "pl-PL",
    "ps",
    "pt",
    "pt-BR",
    "pt-PT",
    "ro",
    "ro-RO",
    "ru",
    "ru-RU",
    "rw-RW",
    "sa",
    "sd",
    "si",
    "si-LK",
    "sk",
    "sk-SK",
    "sl",
    "sl-SI",
    "sn",
    "so",
    "sq",
    "sq-AL",
    "sr",
    "sr-RS",
    "ss-latn-za",
    "st-ZA",
    "su",
    "su-ID",
    "sv",
    "sv-SE",
    "sw",
    "sw-KE",
    "sw-TZ",
    "ta",
    "ta-IN",
    "ta-LK",
    "ta-MY",
    "ta-SG",
    "te",
    "te-IN",
    "tg",
    "th",
    "th-TH",
    "tk",
    "tl",
    "tn-latn-za",
    "tr",
    "tr-TR",
    "ts-ZA",
    "tt",
    "uk",
    "uk-UA",
    "ur",
    "ur-IN",
    "ur-PK",
    "uz",
    "uz-UZ",
    "ve-ZA",
    "vi",
    "vi-VN",
    "xh-ZA",
    "yi",
    "yo",
    "yue-Hant-HK",
    "zh",
    "zh-TW",
    "zu-ZA",
]
"""components/schemas/TranscriptionLanguage: StartRecordingRequest.transcription_language."""

# Audio: playback, speak and the gathers

AudioType = Literal["mp3", "wav"]
"""PlayAudioUrlRequest.audio_type."""

TargetLegs = Literal["self", "opposite", "both"]
"""SpeakRequest.target_legs; also playback_start, whose schema only describes these values."""

PayloadType = Literal["text", "ssml"]
"""SpeakRequest.payload_type and GatherUsingSpeakRequest.payload_type."""

ServiceLevel = Literal["basic", "premium"]
"""SpeakRequest.service_level and GatherUsingSpeakRequest.service_level."""

SpeakLanguage = Literal[
    "arb",
    "cmn-CN",
    "cy-GB",
    "da-DK",
    "de-DE",
    "en-AU",
    "en-GB",
    "en-GB-WLS",
    "en-IN",
    "en-US",
    "es-ES",
    "es-MX",
    "es-US",
    "fr-CA",
    "fr-FR",
    "hi-IN",
    "is-IS",
    "it-IT",
    "ja-JP",
    "ko-KR",
    "nb-NO",
    "nl-NL",
    "pl-PL",
    "pt-BR",
    "pt-PT",
    "ro-RO",
    "ru-RU",
    "sv-SE",
    "tr-TR",
]
"""SpeakRequest.language and GatherUsingSpeakRequest.language."""

# Voice settings of speak and gather_using_speak (the `type` of each variant is its own Literal)

AzureVoiceEffect = Literal["eq_car", "eq_telecomhp8k"]
"""AzureVoiceSettings.effect."""

AzureVoiceGender = Literal["Male", "Female"]
"""AzureVoiceSettings.gender."""

InworldDeliveryMode = Literal["STABLE", "BALANCED", "CREATIVE"]
"""InworldVoiceSettings.delivery_mode."""

MinimaxLanguageBoost = Literal[
    "auto",
    "Chinese",
    "Chinese,Yue",
    "English",
    "Arabic",
    "Russian",
    "Spanish",
    "French",
    "Portuguese",
    "German",
    "Turkish",
    "Dutch",
    "Ukrainian",
    "Vietnamese",
    "Indonesian",
    "Japanese",
    "Italian",
    "Korean",
    "Thai",
    "Polish",
    "Romanian",
    "Greek",
    "Czech",
    "Finnish",
    "Hindi",
    "Bulgarian",
    "Danish",
    "Hebrew",
    "Malay",
    "Persian",
    "Slovak",
    "Swedish",
    "Croatian",
    "Filipino",
    "Hungarian",
    "Norwegian",
    "Slovenian",
    "Catalan",
    "Nynorsk",
    "Tamil",
    "Afrikaans",
]
"""MinimaxVoiceSettings.language_boost (the spec also allows null: leave it unset)."""

ResembleFormat = Literal["wav", "mp3"]
"""ResembleVoiceSettings.format."""

ResemblePrecision = Literal["PCM_16", "PCM_24", "PCM_32", "MULAW"]
"""ResembleVoiceSettings.precision."""

ResembleSampleRate = Literal["8000", "16000", "22050", "32000", "44100", "48000"]
"""components/schemas/ResembleSampleRate (strings, not numbers)."""

# Media streaming and forking

StreamTrack = Literal["inbound_track", "outbound_track", "both_tracks"]
"""StartStreamingRequest.stream_track; also StartSiprecRequest.siprec_track."""

StreamCodec = Literal["PCMU", "PCMA", "G722", "OPUS", "AMR-WB", "L16", "default"]
"""components/schemas/StreamCodec."""

StreamBidirectionalCodec = Literal["PCMU", "PCMA", "G722", "OPUS", "AMR-WB", "L16"]
"""components/schemas/StreamBidirectionalCodec."""

StreamBidirectionalMode = Literal["mp3", "rtp"]
"""components/schemas/StreamBidirectionalMode."""

StreamBidirectionalSamplingRate = Literal[8000, 16000, 22050, 24000, 48000]
"""components/schemas/StreamBidirectionalSamplingRate (integers)."""

StreamBidirectionalTargetLegs = Literal["both", "self", "opposite"]
"""components/schemas/StreamBidirectionalTargetLegs."""

ForkStartStreamType = Literal["decrypted"]
"""StartForkingRequest.stream_type."""

ForkStopStreamType = Literal["raw", "decrypted"]
"""StopForkingRequest.stream_type."""

# Transcription, SIPREC, noise suppression, supervisor role

TranscriptionEngine = Literal[
    "Google", "Telnyx", "Deepgram", "Azure", "xAI", "AssemblyAI", "Speechmatics", "Soniox", "Parakeet", "A", "B"
]
"""TranscriptionStartRequest.transcription_engine."""

TranscriptionTracks = Literal["inbound", "outbound", "both"]
"""TranscriptionStartRequest.transcription_tracks: a plain string in the schema; its description allows these."""

SiprecTransport = Literal["udp", "tcp", "tls"]
"""StartSiprecRequest.sip_transport."""

NoiseSuppressionDirection = Literal["inbound", "outbound", "both"]
"""components/schemas/NoiseSuppressionDirection."""

NoiseSuppressionEngine = Literal[
    "Denoiser",
    "DeepFilterNet",
    "Krisp",
    "AiCoustics",
    "aic_l_quail",
    "aic_l_rook",
    "aic_s_quail",
    "aic_s_rook",
    "quail_voice_focus_s",
    "quail_voice_focus_xs",
]
"""components/schemas/NoiseSuppressionEngine."""

NoiseSuppressionFamily = Literal["sparrow", "quail"]
"""NoiseSuppressionEngineConfig.family."""

NoiseSuppressionMode = Literal["standard", "advanced"]
"""NoiseSuppressionEngineConfig.mode."""

NoiseSuppressionModel = Literal[
    "krisp-viva-tel-v2.kef", "krisp-viva-tel-lite-v1.kef", "krisp-viva-pro-v1.kef", "krisp-viva-ss-v1.kef"
]
"""NoiseSuppressionEngineConfig.model."""

NoiseSuppressionSize = Literal["s", "l", "xs", "xxs", "vf_l", "vf_1_1_l"]
"""NoiseSuppressionEngineConfig.size."""

SupervisorRole = Literal["barge", "whisper", "monitor"]
"""SwitchSupervisorRoleRequest.role."""

# Call legs: answer, reject, bridge, transfer, refer

RejectCause = Literal["CALL_REJECTED", "USER_BUSY"]
"""RejectRequest.cause."""

MuteDtmf = Literal["none", "both", "self", "opposite"]
"""BridgeRequest.mute_dtmf and TransferCallRequest.mute_dtmf."""

Ringtone = Literal[
    "at",
    "au",
    "be",
    "bg",
    "br",
    "ch",
    "cl",
    "cn",
    "cz",
    "de",
    "dk",
    "ee",
    "es",
    "fi",
    "fr",
    "gr",
    "hu",
    "il",
    "in",
    "it",
    "jp",
    "lt",
    "mx",
    "my",
    "nl",
    "no",
    "nz",
    "ph",
    "pl",
    "pt",
    "ru",
    "se",
    "sg",
    "th",
    "tw",
    "uk",
    "us-old",
    "us",
    "ve",
    "za",
]
"""BridgeRequest.ringtone."""

AnswerPreferredCodecs = Literal["G722,PCMU,PCMA,G729,OPUS,VP8,H264"]
"""AnswerRequest.preferred_codecs: the spec's enum holds one comma-separated list, nothing else."""

SipHeaderName = Literal["User-to-User"]
"""components/schemas/SipHeader: only User-to-User is supported."""

WebhookMethod = Literal["POST", "GET"]
"""webhook_url_method and webhook_urls_method of answer and transfer."""

AnsweringMachineDetection = Literal["premium", "detect", "detect_beep", "detect_words", "greeting_end", "disabled"]
"""TransferCallRequest.answering_machine_detection."""

MediaEncryption = Literal["disabled", "SRTP", "DTLS"]
"""TransferCallRequest.media_encryption."""

Privacy = Literal["id", "none"]
"""TransferCallRequest.privacy."""

SipRegion = Literal["US", "Europe", "Canada", "Australia", "Middle East"]
"""TransferCallRequest.sip_region."""

SipTransportProtocol = Literal["UDP", "TCP", "TLS"]
"""TransferCallRequest.sip_transport_protocol."""
