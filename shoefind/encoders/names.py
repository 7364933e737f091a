"""Model spec names and ids that can be read without loading anything (no torch import): the image-only
backbones, the test-time augmentation suffix, a weights file's id."""
from __future__ import annotations

import hashlib
from pathlib import Path

EFFICIENTNET_LITE0 = "efficientnet-lite0"
EFFICIENTNET_LITE2 = "efficientnet-lite2"
IMAGE_BACKBONES = (EFFICIENTNET_LITE0, EFFICIENTNET_LITE2)
TTA_SUFFIXES = {"+flip": "flip"}


def split_spec(spec: str | None) -> tuple[str | None, str | None]:
    """'efficientnet-lite2+flip' -> ('efficientnet-lite2', 'flip'); no suffix -> (spec, None)."""
    for suffix, tta in TTA_SUFFIXES.items():
        if spec and spec.endswith(suffix):
            return spec[: -len(suffix)], tta
    return spec, None


def is_image_backbone(spec: str | None) -> bool:
    return split_spec(spec)[0] in IMAGE_BACKBONES


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
