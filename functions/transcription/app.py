"""Live transcription (call.transcription, and call.hangup to finish): segments in order, archived at the end."""

from aws_lambda_powertools import Logger, Metrics

from voicebus.archive.settings import writer_from_env
from voicebus.archive.transcripts import LiveTranscripts
from voicebus.calls.consumer import build_handler, store_from_env

transcripts = LiveTranscripts(writer_from_env(), store_from_env(), Logger(), Metrics())
lambda_handler = build_handler(act=transcripts.on_event)
