"""How `voicebus` fails: one line on stderr and an exit code, never a traceback.

Exit codes: 0 success, 1 the operation failed (AWS refused, the local stack is down,
the call is unknown, a dead letter could not be redriven), 2 usage error (argparse's
own, a missing option, an unknown profile). Errors the CLI raises on purpose derive
from `CliError`; `describe` turns the expected failures of the libraries it drives
(files, JSON, botocore, urllib, a closed pipe) into the same one line.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ProfileNotFound,
)

from voicebus.config import ConfigurationError

SUCCESS = 0
FAILED = 1
USAGE = 2


class CliError(Exception):
    """The operation failed; the message is the whole explanation."""

    exit_code = FAILED


class UsageError(CliError):
    """The command line does not say enough (or says something impossible)."""

    exit_code = USAGE


class LocalStackNotRunningError(CliError):
    """`--local` was asked for, but no local stack answers."""


def describe(error: BaseException) -> tuple[str, int] | None:
    """The one-line message and exit code for an expected failure; None for a bug (let it show)."""
    if isinstance(error, CliError):
        return str(error), error.exit_code
    if isinstance(error, ConfigurationError):
        return str(error), USAGE
    if isinstance(error, FileNotFoundError):
        return f"no such file: {error.filename}", FAILED
    if isinstance(error, IsADirectoryError):
        return f"a directory, not a file: {error.filename}", FAILED
    if isinstance(error, PermissionError):
        return f"permission denied: {error.filename}", FAILED
    if isinstance(error, json.JSONDecodeError):
        return f"not JSON: {error.msg} at line {error.lineno} column {error.colno}", FAILED
    if isinstance(error, UnicodeDecodeError):
        return f"not UTF-8 text: {error.reason} at byte {error.start}", FAILED
    return _describe_aws(error) or _describe_http(error)


def _describe_aws(error: BaseException) -> tuple[str, int] | None:
    if isinstance(error, ProfileNotFound):
        return f"{error} (see `aws configure list-profiles`)", USAGE
    if isinstance(error, NoRegionError):
        return "no AWS region: pass --region, or set AWS_REGION or a profile's region", FAILED
    if isinstance(error, NoCredentialsError):
        return "no AWS credentials: pass --profile, or configure them (`aws configure`, AWS_PROFILE)", FAILED
    if isinstance(error, EndpointConnectionError):
        return f"cannot reach {error.kwargs.get('endpoint_url', 'the AWS endpoint')}", FAILED
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        operation = error.operation_name or "the request"
        return f"AWS refused {operation}: {details.get('Code', '?')}: {details.get('Message', '')}".rstrip(), FAILED
    if isinstance(error, BotoCoreError):
        return f"AWS: {error}", FAILED
    return None


def _describe_http(error: BaseException) -> tuple[str, int] | None:
    if isinstance(error, urllib.error.URLError) and not isinstance(error, urllib.error.HTTPError):
        return f"cannot reach the URL: {error.reason}", FAILED
    if isinstance(error, TimeoutError | ConnectionError) and not isinstance(error, BrokenPipeError):
        return f"connection failed: {error}", FAILED
    return None


def quiet_broken_pipe() -> None:
    """The reader went away (`voicebus call X | head -1`): stop writing, and let exit not flush into it."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real stdout (captured in tests): nothing to redirect
        pass
