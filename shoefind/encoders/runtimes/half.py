"""Half-precision torch encoders: bf16 on CPUs with AMX / AVX512-BF16, fp16 autocast on a CUDA GPU.

bf16 (CPU): a copy of the model whose matrix weights (convolution, linear, attention,
projections) are bf16, LayerNorms kept fp32, the way CLIP itself converts to fp16 for GPUs.
On the AVX512-BF16 CPU this was built on, that ran ~1.7x faster than fp32, while
`torch.autocast("cpu", bfloat16)` over the fp32 weights was no faster (it re-casts
weights and activations at every layer); on AMX CPUs both are several times faster.
fp16 (CUDA): the fp32 model moved to the GPU, run under `torch.autocast("cuda", float16)`.

Both are approximate: `shoefind.encoders.runtimes.choose` admits them only after the recorded
fidelity check (min cosine against fp32 >= 0.999), and only then do they share the fp32
embedding cache (see `shares_exact_cache`).
"""
from __future__ import annotations

import copy
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from shoefind.encoders.families.openai_clip import ClipEncoder, _short_text_features

_MATRIX_LAYERS = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Linear)
_ATTENTION_TENSORS = ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight", "in_proj_bias",
                      "bias_k", "bias_v")


def to_bf16_weights(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of a CLIP model with bf16 matrix weights (LayerNorms stay fp32, as CLIP's fp16 does)."""
    model = copy.deepcopy(model)

    def convert(layer):
        if isinstance(layer, _MATRIX_LAYERS):
            layer.weight.data = layer.weight.data.bfloat16()
            if layer.bias is not None:
                layer.bias.data = layer.bias.data.bfloat16()
        if isinstance(layer, torch.nn.MultiheadAttention):
            for name in _ATTENTION_TENSORS:
                tensor = getattr(layer, name, None)
                if tensor is not None:
                    tensor.data = tensor.data.bfloat16()
        for name in ("text_projection", "proj"):
            tensor = getattr(layer, name, None)
            if isinstance(tensor, torch.Tensor):
                tensor.data = tensor.data.bfloat16()

    model.apply(convert)
    return model.eval()


@dataclass
class HalfClipEncoder(ClipEncoder):
    """ClipEncoder in bf16 (CPU) or fp16 autocast (CUDA).

    `model` stays the fp32 model (prompt learning trains it; metadata is read from it);
    encoding runs `half_model`, its bf16 copy, or `model` itself under fp16 autocast.
    """

    runtime: str = "bf16"
    half_model: Any = field(default=None, repr=False)
    # set by the fidelity check: True when min cosine against fp32 >= 0.999 on this machine
    shares_exact_cache: bool = False

    @property
    def cache_key(self) -> str:
        base = super().cache_key
        return base if self.shares_exact_cache else f"{base}|{self.runtime}"

    def _autocast(self):
        if self.runtime == "fp16":
            return torch.autocast("cuda", dtype=torch.float16)
        return nullcontext()  # bf16 weights: the layers run in bf16 already

    @torch.no_grad()
    def encode_tensors(self, batch: torch.Tensor) -> np.ndarray:
        with self._autocast():
            feats = self.half_model.encode_image(batch.to(self.device)).float()
        return torch.nn.functional.normalize(feats, dim=-1).cpu().numpy()

    @torch.no_grad()
    def _text_features(self, tokens: torch.Tensor) -> np.ndarray:
        out = np.zeros((len(tokens), self.embed_dim), np.float32)
        order = tokens.argmax(dim=-1).argsort()  # as ClipEncoder: similar lengths batched together
        with self._autocast():
            for start in range(0, len(tokens), 64):
                idx = order[start:start + 64]
                feats = _short_text_features(self.half_model, tokens[idx].to(self.device))
                out[idx.numpy()] = feats.float().cpu().numpy()
        return out


def half_encoder(base: ClipEncoder, runtime: str) -> HalfClipEncoder:
    """The bf16 (CPU) or fp16 (CUDA) variant of a loaded fp32 encoder (shares its preprocessing)."""
    half = to_bf16_weights(base.model) if runtime == "bf16" else base.model
    return HalfClipEncoder(model=base.model, preprocess=base.preprocess, model_id=base.model_id,
                           is_random=base.is_random, batch_size=base.batch_size, device=base.device,
                           runtime=runtime, half_model=half)
