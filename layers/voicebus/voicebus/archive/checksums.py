"""What the archive knows about bytes: SHA-256 digests, S3's part checksums, and the object under a key.

Exactly once rests on these comparisons: an object is recognised as already
archived by S3's full or composite SHA-256 checksum, or by the `sha256` the
writer recorded as metadata or tag.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef


@dataclass(frozen=True)
class Digest:
    """What this call computed over the bytes it read: their SHA-256, and S3's composite of its parts."""

    sha256: str
    composite: str | None = None

    @property
    def full_checksum(self) -> str:
        """The SHA-256 as S3 shows a full-object checksum: base64."""
        return b64(bytes.fromhex(self.sha256))


@dataclass(frozen=True)
class ExistingObject:
    """What HeadObject (and, for a multipart object, its tags) say about the object under the key."""

    version_id: str | None
    size: int
    etag: str
    # Hex, from the `sha256` metadata or tag: what the archiver recorded.
    sha256: str | None
    # S3's SHA-256 checksum, base64, without the `-<parts>` of a composite one.
    checksum: str | None
    # The tag set, when it was read (a multipart object without `sha256` metadata).
    tags: Mapping[str, str] | None = None

    def holds(self, digest: Digest) -> bool:
        """Whether it has the bytes just read: by S3's checksum (whole, or of the same parts) or the recorded one."""
        if self.sha256 == digest.sha256:
            return True
        return self.checksum is not None and self.checksum in (digest.full_checksum, digest.composite)


@dataclass(frozen=True)
class UploadedPart:
    """One uploaded part, and the SHA-256 S3 checked it against."""

    number: int
    etag: str
    sha256: bytes

    def completed(self) -> CompletedPartTypeDef:
        """The part as CompleteMultipartUpload lists it: with its checksum, which S3 then requires."""
        return {"PartNumber": self.number, "ETag": self.etag, "ChecksumSHA256": b64(self.sha256)}


# ---------------------------------------------------------------------- helpers


def composite_checksum(parts: list[UploadedPart]) -> str:
    """S3's composite checksum of a multipart upload: the SHA-256 of the parts' SHA-256s, in order."""
    return b64(hashlib.sha256(b"".join(part.sha256 for part in parts)).digest())


def b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")
