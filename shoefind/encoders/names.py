"""Model spec names that can be read without loading anything (no torch import): the image-only
backbones and the test-time augmentation suffix."""
from __future__ import annotations

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
