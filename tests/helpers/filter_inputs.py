"""Awkward crawl files for the filter tests: each maker writes one file and returns its path."""
from __future__ import annotations

from pathlib import Path

from PIL import Image

from tests.helpers import make_photo


def photo(path: Path, size=(400, 300), color=(200, 30, 30), seed=0, fmt=None, quality=95) -> Path:
    """A photo big enough (noise keeps JPEGs over 5 KB) to pass the automatic checks."""
    import numpy as np
    make_photo(path, color=color, size=size, seed=seed, fmt=fmt)
    img = Image.open(path)
    fmt = img.format
    # light sensor-like noise: real photos do not compress to a few hundred bytes
    noisy = np.asarray(img.convert("RGB"), dtype=np.int16) + np.random.default_rng(seed).integers(
        -6, 7, (size[1], size[0], 3))
    Image.fromarray(noisy.clip(0, 255).astype(np.uint8)).save(
        path, format=fmt, **({"quality": quality} if fmt == "JPEG" else {}))
    return path


def truncated_jpeg(path: Path) -> Path:
    photo(path.with_suffix(".full.jpg"))
    data = path.with_suffix(".full.jpg").read_bytes()
    path.with_suffix(".full.jpg").unlink()
    path.write_bytes(data[: len(data) // 2])
    return path


def html_as_jpg(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("<!DOCTYPE html><html><body>403 Forbidden" + " " * 6000 + "</body></html>")
    return path


def empty_file(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def decompression_bomb(path: Path) -> Path:
    """A 10,000 x 10,000 PNG of one colour: a few KB on disk, 100 M pixels decoded."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("1", (10_000, 10_000)).save(path)
    return path


def cmyk_jpeg(path: Path) -> Path:
    make_photo(path.with_suffix(".png"), size=(400, 300), seed=3)
    Image.open(path.with_suffix(".png")).convert("CMYK").save(path, quality=95)
    path.with_suffix(".png").unlink()
    return path


def png_16bit(path: Path) -> Path:
    import numpy as np
    rng = np.random.default_rng(1)
    arr = (rng.random((300, 400)) * 65535).astype(np.uint16)
    arr[100:200, 50:350] = 20000
    Image.fromarray(arr).save(path)  # uint16 -> mode I;16
    return path


def animated_png(path: Path) -> Path:
    frames = [make_photo(path.with_name(f"_f{i}.png"), seed=i) for i in range(3)]
    imgs = [Image.open(f).copy() for f in frames]
    imgs[0].save(path, save_all=True, append_images=imgs[1:], duration=100)
    for f in frames:
        f.unlink()
    return path


def exif_rotated_jpeg(path: Path, size=(400, 240)) -> Path:
    """Stored landscape, shown portrait: EXIF orientation 6 (rotate 90 degrees)."""
    make_photo(path, size=size, seed=5, fmt="JPEG")
    img = Image.open(path)
    exif = img.getexif()
    exif[0x0112] = 6
    img.save(path, exif=exif, quality=95)
    return path
