"""Fixtures the archive tests share: S3 through boto3, and the stack's archive bucket."""

from __future__ import annotations

from typing import TYPE_CHECKING

import boto3
import pytest

from voicebus_cli.local.provision import ProvisionedStack

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


@pytest.fixture
def s3(stack: ProvisionedStack) -> S3Client:
    return boto3.client("s3")


@pytest.fixture
def bucket(stack: ProvisionedStack) -> str:
    """The stack's ArchiveBucket; local provisioning leaves out its TLS-only statement, which plain HTTP would trip."""
    return stack.ref("ArchiveBucket")
