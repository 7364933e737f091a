"""Automatic crawl checks: one file -> its measurements, hashes and the rules it breaks.

Everything is measured on the decoded, EXIF-rotated image (through shoefind.images), so a
portrait photo stored sideways is judged by the shape a person sees. A file that cannot be
used never raises: it comes back with a reason.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import imagehash
import numpy as np

from shoefind.settings import load_rules
from shoefind.images import ImageError, open_image, probe, sha256_file
from shoefind.errors import UserError

# The extension a stored copy gets comes from the decoded format, never from the file name
# (an HTML page saved as .jpg must not become a .jpg in the dataset).
FORMAT_SUFFIX = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "GIF": ".gif", "BMP": ".bmp", "TIFF": ".tif",
                 "MPO": ".jpg"}


EXIF_ORIENTATION = 0x0112
HASH_DECODE_SIDE = 256  # pHash looks at 32x32, dHash at 9x8, the colour signature at 64x64


@dataclass(frozen=True)
class CrawlRules:
    min_file_bytes: int = 5120
    max_aspect_ratio: float = 3.0
    min_short_side: int = 200
    allowed_formats: tuple[str, ...] = ("JPEG", "PNG", "WEBP")
    reject_animated: bool = True
    loose_images: str = "review"
    phash_max_distance: int = 6
    dhash_max_distance: int = 10
    review_dhash_max_distance: int = 20
    color_max_difference: float = 0.5
    reject_confidence: float = 0.8
    accept_confidence: float = 0.6
    without_model: str = "review"
    prompts: str = "filter_prompts"
    human_rules: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, raw: dict) -> "CrawlRules":
        auto, dup, sem = raw.get("automatic", {}), raw.get("duplicates", {}), raw.get("semantic", {})
        merged = {**auto, **{k: v for k, v in dup.items() if k != "keep"}, **sem,
                  "human_rules": tuple(raw.get("human_rules", ()))}
        if "allowed_formats" in merged:
            merged["allowed_formats"] = tuple(str(f).upper() for f in merged["allowed_formats"])
        unknown = set(merged) - set(cls.__dataclass_fields__)
        if unknown:
            raise UserError(f"crawl rules: unknown settings {sorted(unknown)}")
        for key, allowed in (("without_model", ("accept", "review")), ("loose_images", ("review", "reject"))):
            if key in merged and merged[key] not in allowed:
                raise UserError(f"crawl rules: {key} must be one of {allowed}, not {merged[key]!r}")
        return cls(**merged)


def load_crawl_rules(name: str = "crawl_rules") -> CrawlRules:
    return CrawlRules.from_dict(load_rules(name))


@dataclass
class ImageCheck:
    """What the automatic checks found out about one file."""

    path: str
    sha256: str
    file_bytes: int
    width: int = 0
    height: int = 0
    format: str = ""
    frames: int = 0
    phash: int | None = None      # 64-bit perceptual hashes as unsigned ints
    dhash: int | None = None
    color: list[float] = field(default_factory=list)  # hue and brightness histograms, see color_signature
    failures: list[tuple[str, str]] = field(default_factory=list)  # (rule, reason)

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def decodable(self) -> bool:
        return self.phash is not None

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def suffix(self) -> str:
        return FORMAT_SUFFIX.get(self.format, ".bin")

    def as_dict(self) -> dict:
        return asdict(self)


def _hash_int(h: imagehash.ImageHash) -> int:
    return int("".join("1" if b else "0" for b in h.hash.flatten()), 2)


TONE_BINS = 8


def color_signature(img) -> list[float]:
    """12-bin hue histogram of the colourful pixels, the colourful fraction, then an 8-bin brightness
    histogram of the pixels that are not white background (see dedupe.color_distance).

    pHash and dHash are grey-level: a sunflower-yellow and a dark-green Chuck in the same pose
    hash alike. The hue histogram tells them apart and ignores white backgrounds and borders; the
    brightness histogram tells a black-and-white colourway from a bone-white one, where hue says nothing.
    Both survive what makes a copy (resizing, re-encoding, a small crop of the background).
    """
    thumb = img.copy()
    thumb.thumbnail((64, 64))
    hsv = np.asarray(thumb.convert("HSV"), dtype=np.float32) / 255.0
    hue, sat, val = (hsv[..., k].ravel() for k in range(3))
    colourful = (sat > 0.25) & (val > 0.2)
    hist = np.bincount((hue[colourful] * 12).astype(int) % 12, minlength=12).astype(float)
    hist /= max(int(colourful.sum()), 1)
    shoe = ~((val > 0.94) & (sat < 0.08))
    tone = np.bincount(np.minimum((val[shoe] * TONE_BINS).astype(int), TONE_BINS - 1),
                       minlength=TONE_BINS).astype(float)
    tone /= max(int(shoe.sum()), 1)
    return ([round(float(x), 4) for x in hist] + [round(float(colourful.mean()), 4)]
            + [round(float(x), 4) for x in tone])


def _verify(path: Path) -> bool:
    """Pillow's structural check (chunk CRCs, broken headers) before decoding; returns whether
    the EXIF orientation turns the picture by 90 degrees."""
    from PIL import Image
    try:
        with Image.open(path) as raw:
            raw.verify()  # must come straight after open
        with Image.open(path) as raw:
            turned = raw.getexif().get(EXIF_ORIENTATION) in (5, 6, 7, 8)
    except Exception as exc:  # verify raises many kinds (SyntaxError, struct.error, OSError...)
        raise ImageError(f"{path}: fails Pillow's verify ({type(exc).__name__}: {exc})") from None
    return turned


def check_file(path: str | os.PathLike, rules: CrawlRules, sha256: str | None = None) -> ImageCheck:
    """Measure one file and list every automatic rule it breaks (decode failures first)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        sha = sha256 or sha256_file(path)
    except OSError as exc:
        return ImageCheck(str(path), "", 0, failures=[("unreadable", f"cannot read the file ({exc.strerror})")])
    check = ImageCheck(str(path), sha, size)
    try:
        info = probe(path)
        check.format, check.frames = info.format, info.frames
        turned = _verify(path)
        # Decode all the data (JPEGs at a reduced scale: the hashes need 64 px), EXIF applied.
        img = open_image(path, size_hint=HASH_DECODE_SIDE)
    except ImageError as exc:
        check.failures.append(("unreadable", str(exc).split(": ", 1)[-1]))
        return check
    # the size a person sees: the header's, turned as the EXIF orientation says
    check.width, check.height = (info.height, info.width) if turned else (info.width, info.height)
    check.phash, check.dhash = _hash_int(imagehash.phash(img)), _hash_int(imagehash.dhash(img))
    check.color = color_signature(img)

    if size < rules.min_file_bytes:
        check.failures.append(("min_file_bytes", f"{size:,} bytes is under the minimum {rules.min_file_bytes:,}"))
    if check.format not in rules.allowed_formats:
        check.failures.append(("allowed_formats",
                               f"format {check.format} is not allowed ({', '.join(rules.allowed_formats)})"))
    if rules.reject_animated and check.frames > 1:
        check.failures.append(("animated", f"{check.frames} frames (animated or multi-page file)"))
    short, long = sorted(img.size)
    if short < rules.min_short_side:
        check.failures.append(("min_short_side", f"short side {short} px is under {rules.min_short_side} px"))
    if long / short > rules.max_aspect_ratio:
        check.failures.append(("max_aspect_ratio",
                               f"aspect ratio {long / short:.2f} is over {rules.max_aspect_ratio:g}"))
    return check


def check_files(paths, rules: CrawlRules, shas: list[str] | None = None) -> list[ImageCheck]:
    """check_file over a batch (the unit a Prefect task works on)."""
    shas = shas or [None] * len(paths)
    return [check_file(p, rules, s) for p, s in zip(paths, shas)]
