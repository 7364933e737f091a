"""Model spec names and ids that can be read without loading anything (no torch import): the image-only
backbones, the test-time augmentation suffix, a weights file's id."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

EFFICIENTNET_LITE0 = "efficientnet-lite0"
EFFICIENTNET_LITE2 = "efficientnet-lite2"
IMAGE_BACKBONES = (EFFICIENTNET_LITE0, EFFICIENTNET_LITE2)
TTA_SUFFIXES = {"+flip": "flip"}
SEED_LOADING_SUFFIX = "+seed-loading"   # photos decoded as the seed decodes them (encoders/image_loading.py)
LIT_SUFFIX = ".lit.pt"   # a LiT checkpoint (shoefind.encoders.lit)


def is_lit_path(path) -> bool:
    return str(path).endswith(LIT_SUFFIX)


def split_spec(spec: str | None) -> tuple[str | None, str | None]:
    """'efficientnet-lite2+flip' -> ('efficientnet-lite2', 'flip'); no suffix -> (spec, None)."""
    for suffix, tta in TTA_SUFFIXES.items():
        if spec and spec.endswith(suffix):
            return spec[: -len(suffix)], tta
    return spec, None


def split_image_loading(spec: str | None) -> tuple[str | None, str]:
    """'ViT-B/32+seed-loading' -> ('ViT-B/32', 'seed'); no suffix -> (spec, 'shoefind')."""
    if spec and spec.endswith(SEED_LOADING_SUFFIX):
        return spec[: -len(SEED_LOADING_SUFFIX)], "seed"
    return spec, "shoefind"


def is_image_backbone(spec: str | None) -> bool:
    return split_spec(split_image_loading(spec)[0])[0] in IMAGE_BACKBONES


def weights_id(path: Path) -> str:
    """A short content id for a weights file (size + hash of head and tail: cheap for GB files)."""
    h = hashlib.sha256()
    size = path.stat().st_size
    h.update(str(size).encode())
    with open(path, "rb") as fh:
        h.update(fh.read(1 << 20))
        if size > 1 << 20:
            fh.seek(max(0, size - (1 << 20)))
            h.update(fh.read())
    return h.hexdigest()[:16]


def _sha256_memo(path: Path) -> tuple[Path, dict]:
    stat = path.stat()
    return path.with_name(f".{path.name}.sha256.json"), {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                                                         "inode": stat.st_ino}


def known_sha256(path: Path) -> str | None:
    """The sha256 remembered for this very version of the file (size, mtime, inode), else None."""
    memo, stamp = _sha256_memo(path)
    try:
        saved = json.loads(memo.read_text())
    except (OSError, ValueError):
        return None
    return saved.get("sha256") if isinstance(saved, dict) and saved.get("stamp") == stamp else None


def remembered_sha256(path: Path) -> str:
    """A weights file's full sha256, hashed once per version of the file (the answer is kept beside it,
    when that folder is writable): loading a 350 MB checkpoint then costs no second of hashing."""
    if found := known_sha256(path):
        return found
    memo, stamp = _sha256_memo(path)
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    digest = h.hexdigest()
    try:
        memo.write_text(json.dumps({"stamp": stamp, "sha256": digest}))
    except OSError:   # a read-only folder: hashed again next time
        pass
    return digest
