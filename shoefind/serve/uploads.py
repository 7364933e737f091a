"""Uploaded photos: limits on bytes and pixels, checked before anything is decoded, and which HTTP
status each refusal gets.

The bytes are counted while the request body arrives (shoefind.serve.app's BodyLimit), so an
oversized upload is cut off rather than spooled to disk. The header is then read without
decoding the pixels (shoefind.images.probe): a file that is no image at all is 415, one whose
size is over the pixel limit (a decompression bomb) 413. A photo that passes both but cannot be
decoded (truncated, corrupt data) fails in shoefind.images.open_image while it is encoded: 422.
"""
from __future__ import annotations

from dataclasses import dataclass

from shoefind.errors import UserError
from shoefind.images import ImageError, probe

MAX_UPLOAD_MB = 20            # as a crawl download's cap: far above any phone photo
MAX_PIXELS = 40_000_000       # a 48 MP phone sensor writes 12 or 24 MP photos; more is a bomb
FORM_OVERHEAD = 64 * 1024     # multipart boundaries and the small form fields around the photo


@dataclass(frozen=True)
class UploadLimits:
    max_bytes: int = MAX_UPLOAD_MB * 1024 * 1024
    max_pixels: int = MAX_PIXELS

    @property
    def max_body(self) -> int:
        """The most a request body may hold: the photo and its form."""
        return self.max_bytes + FORM_OVERHEAD

    def describe(self) -> dict:
        return {"max_upload_bytes": self.max_bytes, "max_pixels": self.max_pixels}


class Refused(UserError):
    """A request the API refuses; `status` is its HTTP status, str() the reason."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def too_large(limits: UploadLimits, size: int | None = None) -> Refused:
    said = f" ({size / 2**20:.1f} MB)" if size else ""
    return Refused(413, f"the upload is too large{said}: photos up to {limits.max_bytes / 2**20:g} MB are accepted")


def check_upload(data: bytes, limits: UploadLimits) -> None:
    """Refuse an empty, oversized, non-image or too-many-pixel upload (a Refused with its status)."""
    if not data:
        raise Refused(400, "the photo is empty (0 bytes)")
    if len(data) > limits.max_bytes:
        raise too_large(limits, len(data))
    try:
        probe(data, max_pixels=limits.max_pixels)
    except ImageError as exc:
        reason = str(exc).replace("the uploaded data", "the uploaded photo", 1)
        # images.probe names a pixel count only when refusing a decompression bomb
        raise Refused(413 if "pixels" in reason else 415, reason) from None
