"""The torch encoder shared by the open_clip and Hugging Face families (batching, text memo, scales,
cache key); their modules set the model and the two feature functions."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch

from shoefind.encoders.base import encode_in_batches, ensemble_means, memoised_texts


@dataclass
class FamilyEncoder:
    """What the open_clip and Hugging Face families share: batching, text memo, scales, cache key.

    A family subclass sets the model and implements `_image_features(pixels)` and
    `_text_features(texts)` (unnormalised tensors). Similarity is the cosine of normalised
    embeddings times `logit_scale`; sigmoid-trained models (SigLIP) also have `logit_bias`,
    which shifts every class's logit equally, so a softmax over classes (zero-shot, the
    5-step method) depends only on the scale, and `match_probability` gives the sigmoid's
    own per-text probability.
    """

    model: torch.nn.Module
    preprocess: Callable
    model_id: str
    family: str
    weights: str                 # weights content id (part of the cache key)
    preprocess_id: str           # preprocessing config id (part of the cache key)
    resolution: int
    dim: int
    is_random: bool = False
    batch_size: int = 32
    device: str = "cpu"
    dtype: torch.dtype = torch.float32
    source: str = ""             # where the weights were read from (shown by `model check`)
    _text_cache: dict = field(default_factory=dict, repr=False)

    has_text = True
    runtime = "torch"
    supports_prompt_learning = False

    @property
    def cache_key(self) -> str:
        return f"{self.family}:{self.model_id}|w={self.weights}|p={self.preprocess_id}"

    @property
    def embed_dim(self) -> int:
        return self.dim

    @property
    def input_resolution(self) -> int:
        return self.resolution

    def load_image(self, src) -> torch.Tensor:
        from shoefind.images import open_image
        return self.preprocess(open_image(src, size_hint=self.resolution))

    @torch.no_grad()
    def encode_tensors(self, batch: torch.Tensor) -> np.ndarray:
        feats = self._image_features(batch.to(self.device, dtype=self.dtype)).float()
        return torch.nn.functional.normalize(feats, dim=-1).cpu().numpy()

    def encode_images(self, images: Sequence, batch_size: int | None = None, progress=None) -> np.ndarray:
        return encode_in_batches(self, images, batch_size or self.batch_size, progress)

    @torch.no_grad()
    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Normalised text embeddings (memoised per process)."""
        def encode(chunk: list[str]) -> np.ndarray:
            return torch.nn.functional.normalize(self._text_features(chunk).float(), dim=-1).cpu().numpy()
        return memoised_texts(self._text_cache, texts, encode, self.embed_dim, chunk=128)

    def encode_ensemble(self, prompt_lists: Sequence[Sequence[str]]) -> np.ndarray:
        flat = [p for prompts in prompt_lists for p in prompts]
        return ensemble_means(self.encode_texts(flat), prompt_lists, self.embed_dim)

    def _image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _text_features(self, texts: list[str]) -> torch.Tensor:
        raise NotImplementedError

    @property
    def logit_scale(self) -> float:
        return float(self.model.logit_scale.exp().item())

    @property
    def logit_bias(self) -> float | None:
        bias = getattr(self.model, "logit_bias", None)
        return None if bias is None else float(bias.item())
