"""The one error hierarchy of voicebus: retry me, or record me and move on.

Every error voicebus raises on purpose derives from `VoicebusError`, through one
of two branches that tell the caller what to do with the event that caused it:

- `RetryableError`: a dependency (EventBridge, DynamoDB, S3, Telnyx) failed in a
  way that can pass. Let it propagate: Lambda and EventBridge retry the event and
  the dead-letter queue catches what never works.
- `PermanentError`: the input or the configuration is wrong, so the same event
  would fail the same way forever. Record it, answer it, count it; never retry it.

Consumers and the command function decide from the branch, never from a list of
classes. Each concrete error lives next to the code that raises it.
"""

from __future__ import annotations


class VoicebusError(Exception):
    """Base of every error voicebus raises on purpose."""


class RetryableError(VoicebusError):
    """A dependency failed in a way that can pass: let the event source try again."""


class PermanentError(VoicebusError):
    """Retrying the same event cannot help: record it and move on."""
