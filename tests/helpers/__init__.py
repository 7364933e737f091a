"""Helpers shared by the tests: paths, generated photos and datasets (fixtures live in conftest.py)."""
from __future__ import annotations

import struct
import zlib

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO.parent / "shared" / "data"


def make_photo(path: Path, color=(200, 30, 30), size=(320, 240), fmt=None, seed: int = 0) -> Path:
    """A generated 'photo': a coloured shoe-like blob on white, with a little noise."""
    import random

    from PIL import Image, ImageDraw
    rnd = random.Random(seed)
    img = Image.new("RGB", size, (250, 250, 250))
    d = ImageDraw.Draw(img)
    w, h = size
    x0, y0 = rnd.randint(5, w // 6), rnd.randint(h // 3, h // 2)
    d.ellipse([x0, y0, w - rnd.randint(5, w // 6), h - rnd.randint(5, h // 6)], fill=color)
    d.rectangle([x0, h - h // 5, w - 10, h - h // 8], fill=(30, 30, 30))
    for _ in range(200):
        img.putpixel((rnd.randrange(w), rnd.randrange(h)), tuple(rnd.randrange(256) for _ in range(3)))
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format=fmt)
    return path


def photo_items(folder: Path, n: int) -> list[tuple[str, str]]:
    """n distinct generated photos in `folder`, as (path, sha256) items for embed_images."""
    from shoefind.images import sha256_file
    paths = [make_photo(folder / f"p{i}.jpg", seed=i, color=(i * 6 % 255, 90, 200)) for i in range(n)]
    return [(str(p), sha256_file(p)) for p in paths]


def make_labeled_dataset(root: Path, n_per_shoe: int = 2) -> Path:
    """A small dataset in the Brand_Top_Color_Sole_Name convention with generated photos."""
    shoes = [("Nike", "High", "Red", "Plain Sole", "Air Test Red", (200, 30, 30)),
             ("Nike", "Low", "Blue", "Plain Sole", "Dunk Test Blue", (30, 40, 200)),
             ("Vans", "Low", "Black", "Rubber Sole", "Old Test Black", (20, 20, 20)),
             ("Converse", "High", "White", "Plain Sole", "Chuck Test White", (235, 235, 235))]
    for i, (brand, top, color, sole, name, rgb) in enumerate(shoes):
        folder = root / f"{brand}_{top}_{color}_{sole}_{name}"
        for j in range(n_per_shoe):
            make_photo(folder / f"photo {j}.jpg", color=rgb, seed=i * 10 + j)
    return root


def png_header_only(path, width, height):
    """A PNG that claims a huge size (a decompression bomb) in a few bytes."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path

