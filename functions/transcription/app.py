"""Live transcription (call.transcription, and call.hangup to finish): segments in order, archived at the end."""

from aws_lambda_powertools import Logger, Metrics

from voicebus.archive_settings import archiver_from_env
from voicebus.consumer import build_handler, store_from_env
from voicebus.transcripts import LiveTranscripts

transcripts = LiveTranscripts(archiver_from_env(), store_from_env(), Logger(), Metrics())
lambda_handler = build_handler(act=transcripts.on_event)
