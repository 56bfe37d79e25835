"""The archive writer a function builds once per container, from its environment.

Apart from `voicebus.archive.recordings` so that the transcription function, which never
fetches a recording link, does not reach the telnyx SDK through it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import boto3
from botocore.config import Config

from voicebus import config
from voicebus.archive.download import http_pool
from voicebus.archive.writer import ArchiveWriter


def writer_from_env(environ: Mapping[str, str] | None = None) -> ArchiveWriter:
    """ARCHIVE_BUCKET_NAME, and ARCHIVE_KMS_KEY_ARN when the bucket uses a KMS key."""
    env = os.environ if environ is None else environ
    # Each part already carries its SHA-256 checksum over TLS: signing the payload too would hash it a third time.
    client = boto3.client("s3", config=Config(s3={"payload_signing_enabled": False}))
    return ArchiveWriter(
        client,
        config.require("ARCHIVE_BUCKET_NAME", env),
        http=http_pool(),
        kms_key_id=env.get("ARCHIVE_KMS_KEY_ARN", "").strip() or None,
    )
