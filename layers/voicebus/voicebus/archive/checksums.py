"""What the archive knows about bytes: SHA-256 digests, S3's part checksums, and the object under a key.

Exactly once rests on these comparisons: an object is recognised as already
archived by the `sha256` the writer recorded as metadata or tag, or by S3's
checksum: the full SHA-256 of a one-request object, or the composite CRC32 of
a multipart one's parts.

Parts carry CRC32, not SHA-256: S3 checks each part against it, which is all a
part's checksum is for, and it costs a third of SHA-256's CPU (the whole
recording's SHA-256 is computed anyway). It is what the AWS SDKs send by
default. The composite is only consulted for a multipart object whose `sha256`
tag is missing (the archiving call died between completing and tagging), under
the recording's own key and at its size: a 32-bit match there is no accident
worth guarding, and whoever can write the object could write the tag as well.
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef


@dataclass(frozen=True)
class Digest:
    """What this call computed over the bytes it read: their SHA-256, and S3's composite CRC32 of its parts."""

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
    # S3's checksum, base64, without the `-<parts>` of a composite one: a full SHA-256 or a composite CRC32.
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
    """One uploaded part, and the CRC32 S3 checked it against."""

    number: int
    etag: str
    crc32: bytes

    def completed(self) -> CompletedPartTypeDef:
        """The part as CompleteMultipartUpload lists it: with its checksum, which S3 then requires."""
        return {"PartNumber": self.number, "ETag": self.etag, "ChecksumCRC32": b64(self.crc32)}


# ---------------------------------------------------------------------- helpers


def part_crc32(data: bytes | bytearray) -> bytes:
    """A part's CRC32 as S3 takes it: four bytes, big-endian."""
    return zlib.crc32(data).to_bytes(4, "big")


def composite_checksum(parts: list[UploadedPart]) -> str:
    """S3's composite checksum of a multipart upload: the CRC32 of the parts' CRC32s, in order."""
    return b64(part_crc32(b"".join(part.crc32 for part in parts)))


def b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")
