"""Reading photos safely: one place that turns any file into an RGB image or a clear error.

Every reader in shoefind goes through `open_image`, so corrupt, truncated, empty, non-image
(HTML saved as .jpg) and decompression-bomb files all fail the same way: `ImageError`
with a reason a person can act on. A path that is not a regular file (a FIFO would block the
reader forever, /dev/zero never ends) is refused before it is opened, here and by `sha256_file`.
"""
from __future__ import annotations

import errno
import hashlib
import io
import os
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError
from shoefind.errors import UserError

# 8k x 8k is far more than CLIP (224 px) needs; anything larger is refused before decoding.
MAX_PIXELS = 64_000_000
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


class ImageError(UserError):
    """A file that cannot be used as a photo; str() is the reason."""


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int
    format: str
    frames: int


def special_file_reason(path: str | os.PathLike) -> str | None:
    """Why a path must not be opened as a photo (a FIFO, a device, a socket), else None (a regular file,
    a folder, or nothing there: opening it says so)."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "a socket" if stat.S_ISSOCK(mode) else "a special file")
    return f"{kind}, not a photo file: refused without reading it"


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """The file's sha256; a special file is an OSError before it is opened (reading it may never end)."""
    if reason := special_file_reason(path):
        raise OSError(errno.EINVAL, reason, str(path))
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def is_image_name(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def _source(src):
    return io.BytesIO(src) if isinstance(src, (bytes, bytearray)) else src


def _describe(src) -> str:
    return "the uploaded data" if isinstance(src, (bytes, bytearray)) else str(src)


def _sniff_text(src) -> str | None:
    """Name what a non-image file looks like (HTML, empty), for a better message."""
    try:
        head = bytes(src[:512]) if isinstance(src, (bytes, bytearray)) else open(src, "rb").read(512)
    except OSError:
        return None
    if not head:
        return "it is empty (0 bytes)"
    low = head.lstrip().lower()
    if low.startswith((b"<!doctype html", b"<html", b"<head", b"<?xml", b"<svg")):
        return "it is an HTML/XML page, not an image"
    return None


def _open(src, max_pixels: int) -> Image.Image:
    where = _describe(src)
    reason = None if isinstance(src, (bytes, bytearray)) else special_file_reason(src)
    reason = reason or _sniff_text(src)
    if reason:
        raise ImageError(f"{where}: {reason}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(_source(src))
    except FileNotFoundError:
        raise ImageError(f"{where}: no such file") from None
    except (UnidentifiedImageError, Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        if isinstance(exc, UnidentifiedImageError):
            raise ImageError(f"{where}: not a readable image (unknown or corrupt format)") from None
        raise ImageError(f"{where}: refused, too many pixels (decompression bomb guard)") from None
    except OSError as exc:
        raise ImageError(f"{where}: cannot be read ({exc})") from None
    if img.width * img.height > max_pixels:
        raise ImageError(
            f"{where}: refused, {img.width}x{img.height} is more than {max_pixels:,} pixels "
            "(decompression bomb guard)"
        )
    return img


def probe(src, max_pixels: int = MAX_PIXELS) -> ImageInfo:
    """Size, format and frame count from the header, without decoding the pixels."""
    img = _open(src, max_pixels)
    return ImageInfo(img.width, img.height, img.format or "?", getattr(img, "n_frames", 1))


def open_image(src, size_hint: int | None = None, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode `src` (path or bytes) to an upright RGB image.

    size_hint: the smallest side the caller needs; JPEGs are then decoded at a reduced
    scale with `Image.draft`, which is several times faster than decoding full size.
    """
    img = _open(src, max_pixels)
    where = _describe(src)
    try:
        if size_hint and img.format == "JPEG":
            img.draft("RGB", (size_hint, size_hint))
        img.load()
        samples = _integer_samples(img)   # read from the header, which the transposed copy lacks
        img = ImageOps.exif_transpose(img)
        if img.mode != "RGB":
            img = _to_rgb(img, where, samples)
    except ImageError:
        raise
    except (OSError, ValueError, SyntaxError) as exc:
        raise _unreadable(where, exc) from None
    return img


def _unreadable(where: str, exc: Exception) -> ImageError:
    """What a decoder's error means for the user: a truncated file, or corrupt data."""
    if "truncated" in str(exc):
        return ImageError(f"{where}: the file is truncated (incomplete download?)")
    return ImageError(f"{where}: corrupt image data ({exc})")


def open_image_as_seed(src, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode `src` as the seed project does (`--image-loading seed`, for parity runs): the image as
    `Image.open` gives it, decoded at full size (no JPEG draft), not turned by its EXIF orientation and
    in its own mode. CLIP's preprocessing then resizes, crops and calls `convert("RGB")`
    (clip.clip._convert_image_to_rgb), which drops transparency: a transparent PNG shows whatever
    colour its transparent pixels store (often black) where `open_image` pastes it on white.
    The same guards as `open_image` (bombs, HTML, truncated files) give the same ImageError."""
    img = _open(src, max_pixels)
    where = _describe(src)
    try:
        img.load()
    except (OSError, ValueError, SyntaxError) as exc:
        raise _unreadable(where, exc) from None
    return img


def _integer_samples(img: Image.Image) -> tuple[int, bool] | None:
    """(bits, unsigned) of a 32-bit-container ("I") image's samples, from its TIFF header; None without one."""
    tags = getattr(img, "tag_v2", None)
    if img.mode != "I" or tags is None:
        return None
    first = lambda v: v[0] if isinstance(v, tuple) else v  # noqa: E731
    bits, sample_format = first(tags.get(258)), first(tags.get(339))
    return int(bits or 32), sample_format in (None, 1)   # TIFF's default sample format is unsigned


def _to_rgb(img: Image.Image, where: str = "the image", samples: tuple[int, bool] | None = None) -> Image.Image:
    # Transparent pixels become white (product shots), 16-bit, 32-bit and CMYK are converted.
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        bg = Image.new("RGB", rgba.size, (255, 255, 255))
        bg.paste(rgba, mask=rgba.getchannel("A"))
        return bg
    if img.mode in ("I;16", "I;16B", "I;16L"):
        return img.point(lambda v: v / 256).convert("L").convert("RGB")
    if img.mode == "I":
        return _int32_to_rgb(img, where, samples)
    if img.mode == "F":
        return _float_to_rgb(img, where)
    return img.convert("RGB")


def _int32_to_rgb(img: Image.Image, where: str, samples: tuple[int, bool] | None) -> Image.Image:
    # Pillow holds 32-bit integer samples (and some 16-bit ones) as signed int32: scaled by their
    # full range, not as 16-bit (which turned a 32-bit TIFF almost all white). The range is the
    # header's; without one, values up to 65535 are 16-bit. Unsigned 32-bit samples above 2^31 come
    # back negative and are read as unsigned again; negative signed samples have no brightness scale.
    import numpy as np
    arr = np.asarray(img).astype(np.int64)
    negative = bool(arr.size) and int(arr.min()) < 0
    if samples is not None and samples[1]:          # unsigned samples of the header's width
        arr &= (1 << samples[0]) - 1
        full = 1 << samples[0]
    elif negative:
        raise ImageError(f"{where}: refused, a signed integer image with negative pixels has no brightness scale "
                         "(save it as an 8- or 16-bit image)")
    elif samples is not None:                       # signed samples: 0 .. 2^(bits-1) - 1
        full = 1 << (samples[0] - 1)
    else:
        full = 1 << 16 if not arr.size or int(arr.max()) <= 0xFFFF else 1 << 31
    grey = np.clip(arr * 256 // full, 0, 255).astype(np.uint8)
    return Image.fromarray(grey, "L").convert("RGB")


def _float_to_rgb(img: Image.Image, where: str) -> Image.Image:
    # A float image (32-bit TIFF) has no fixed range: Pillow's convert() clips it to 0..255,
    # so a 0..1 image turns black. 0..1 is scaled to 0..255, any other range is stretched.
    import numpy as np
    arr = np.asarray(img, dtype=np.float64)
    if not np.isfinite(arr).all():
        raise ImageError(f"{where}: refused, a floating-point image with NaN or "
                         "infinite pixels")
    lo, hi = float(arr.min()), float(arr.max())
    if 0.0 <= lo and hi <= 1.0:
        arr = arr * 255.0
    elif hi > lo and (lo < 0.0 or hi > 255.0):
        arr = (arr - lo) / (hi - lo) * 255.0
    grey = Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "L")
    return grey.convert("RGB")
