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
from voicebus.archive.download import DEFAULT_MAX_BYTES, MIB, DownloadPolicy, http_pool
from voicebus.archive.writer import ArchiveWriter

# RECORDING_MAX_BYTES: from a 1 MiB toy recording to S3's 5 TiB object.
MIN_RECORDING_BYTES = MIB
MAX_RECORDING_BYTES = 5 * 1024 * 1024 * MIB


def download_policy(environ: Mapping[str, str] | None = None) -> DownloadPolicy:
    """RECORDING_MAX_BYTES (the template's RecordingMaxBytes), and RECORDING_HTTP_HOSTS.

    RECORDING_HTTP_HOSTS names hosts that may be fetched over plain http, comma-separated:
    only the local stack and the tests set it (to the storage stand-in's 127.0.0.1);
    the template never does, so in AWS every link and every redirect must be https.
    """
    env = os.environ if environ is None else environ
    max_bytes = config.integer(
        "RECORDING_MAX_BYTES", DEFAULT_MAX_BYTES, minimum=MIN_RECORDING_BYTES, maximum=MAX_RECORDING_BYTES, environ=env
    )
    hosts = frozenset(host.strip().lower() for host in env.get("RECORDING_HTTP_HOSTS", "").split(",") if host.strip())
    return DownloadPolicy(max_bytes=max_bytes, http_hosts=hosts)


def writer_from_env(environ: Mapping[str, str] | None = None) -> ArchiveWriter:
    """ARCHIVE_BUCKET_NAME, and ARCHIVE_KMS_KEY_ARN when the bucket uses a KMS key; the download policy."""
    env = os.environ if environ is None else environ
    # Each part already carries its SHA-256 checksum over TLS: signing the payload too would hash it a third time.
    client = boto3.client("s3", config=Config(s3={"payload_signing_enabled": False}))
    return ArchiveWriter(
        client,
        config.require("ARCHIVE_BUCKET_NAME", env),
        http=http_pool(),
        kms_key_id=env.get("ARCHIVE_KMS_KEY_ARN", "").strip() or None,
        policy=download_policy(env),
    )
