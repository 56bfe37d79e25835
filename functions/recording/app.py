"""Recordings (call.recording.saved, .error, .transcription.saved): recorded on the call and archived to S3."""

from aws_lambda_powertools import Logger, Metrics

from voicebus.archive.recordings import RecordingArchive, configured_formats
from voicebus.archive.settings import writer_from_env
from voicebus.calls.consumer import build_handler, store_from_env

archive = RecordingArchive(writer_from_env(), store_from_env(), configured_formats(), Logger(), Metrics())
lambda_handler = build_handler(act=archive.on_event)
