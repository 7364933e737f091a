"""The demo catalog on disk: one folder per shoe (Brand_Top_Color_Sole_Name), drawings as PNG photos.

Photo k of a shoe is drawn from a generator seeded by (seed, shoe, k), so the same seed writes
the same bytes whatever the photo count (and the embedding cache finds them again). Writing into a folder that already holds the same catalog
keeps the files; another folder there is refused rather than mixed in.
"""
from __future__ import annotations

import io
import json
import os
import random
from pathlib import Path

from shoefind.demo.drawings import demo_shoes, draw_shoe
from shoefind.errors import UserError

PHOTOS_PER_SHOE = 10
PHOTO_SIZE = 96
MARK = ".shoefind-demo.json"


def demo_spec(photos_per_shoe: int = PHOTOS_PER_SHOE, size: int = PHOTO_SIZE, seed: int = 0) -> dict:
    return {"generator": "shoefind.demo.drawings v2", "photos_per_shoe": photos_per_shoe, "size": size,
            "seed": seed, "shoes": len(demo_shoes())}


def write_demo_catalog(folder: str | os.PathLike, photos_per_shoe: int = PHOTOS_PER_SHOE, size: int = PHOTO_SIZE,
                       seed: int = 0, progress=None) -> Path:
    """Write the catalog into `folder` (created); returns it. Idempotent for the same settings."""
    folder = Path(folder)
    spec = demo_spec(photos_per_shoe, size, seed)
    mark = folder / MARK
    if folder.exists() and any(folder.iterdir()):
        if not mark.is_file():
            raise UserError(f"{folder} exists and is not a shoefind demo catalog: give an empty or new folder")
        if json.loads(mark.read_text()) == spec and _complete(folder, photos_per_shoe):
            return folder
    folder.mkdir(parents=True, exist_ok=True)
    for shoe in demo_shoes():
        shoe_dir = folder / shoe.folder
        shoe_dir.mkdir(exist_ok=True)
        for k in range(photos_per_shoe):
            buf = io.BytesIO()
            # photo k of a shoe is the same whatever the photo count (an embedding cache keeps serving it)
            draw_shoe(shoe, random.Random(f"{seed}|{shoe.folder}|{k}"), size).save(buf, format="PNG", optimize=False)
            target = shoe_dir / f"photo-{k:02d}.png"
            if not target.is_file() or target.read_bytes() != buf.getvalue():
                tmp = shoe_dir / f".photo-{k:02d}.png.tmp"
                tmp.write_bytes(buf.getvalue())
                os.replace(tmp, target)
        if progress:
            progress(photos_per_shoe)
    mark.write_text(json.dumps(spec, indent=2))
    return folder


def _complete(folder: Path, photos_per_shoe: int) -> bool:
    return all(len(list((folder / s.folder).glob("photo-*.png"))) == photos_per_shoe for s in demo_shoes())
