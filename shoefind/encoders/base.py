"""What every encoder shares: the Encoder interface, the one batching loop, the errors.

An encoder turns images (and, when it has a text side, texts) into L2-normalised vectors of
one dimension. Everything downstream (cache, zero-shot, few-shot, retrieval) asks only this
interface; `has_text` says whether text methods can run.
"""
from __future__ import annotations

import hashlib
import importlib
import json
import warnings
from typing import TYPE_CHECKING, Callable, Protocol, Sequence, runtime_checkable

import numpy as np

from shoefind.encoders.weights import weights_id  # noqa: F401  (part of this module's API)
from shoefind.errors import UserError

if TYPE_CHECKING:
    import torch


class ModelUnavailable(UserError):
    """The requested model cannot be loaded; str() tells the user what to do."""


class NoTextSide(UserError):
    """A method that needs text prompts was asked of an image-only encoder."""


def no_text_message(model_id: str, method: str) -> str:
    return (f"{model_id} is an image-only backbone with no text side, so {method} cannot run with it. "
            "Use a few-shot method (--method fewshot), or a model with a text side: a CLIP model "
            "(--model ViT-B/32) or a LiT checkpoint trained with `shoefind learn --method lit`.")


def require_text(encoder, method: str) -> None:
    """Raise NoTextSide with what to do instead when `encoder` cannot encode prompts."""
    if not encoder.has_text:
        raise NoTextSide(no_text_message(encoder.model_id, method))


class NoPromptLearning(UserError):
    """CoOp was asked of a model whose text tower shoefind cannot feed learned context vectors."""


def require_prompt_learning(encoder, method: str = "CoOp prompt learning") -> None:
    """Raise with what to do instead unless `encoder` exposes OpenAI CLIP's text tower (CoOp's path)."""
    require_text(encoder, method)
    if not getattr(encoder, "supports_prompt_learning", False):
        raise NoPromptLearning(
            f"{method} trains context vectors through the OpenAI CLIP text tower (clip: models and CLIP "
            f"checkpoints); {encoder.model_id} is a {getattr(encoder, 'family', 'different')} model, so it "
            "cannot run here. Use --method fewshot (Tip-Adapter, works with every family) or a clip: model.")


def config_id(config) -> str:
    """A short id for a preprocessing config (any JSON-able value)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:12]


@runtime_checkable
class Encoder(Protocol):
    """The interface every model family implements."""

    model_id: str            # names the weights (shown to users, part of the cache key)
    is_random: bool          # random weights: answers mean nothing, reports say so
    has_text: bool           # False for image-only backbones
    runtime: str             # torch | onnx | onnx-int8 | bf16 ...
    family: str              # clip | open_clip | hf | backbone ...
    device: str
    batch_size: int
    preprocess: Callable

    @property
    def cache_key(self) -> str: ...            # what embeddings depend on: weights + preprocessing
    @property
    def embed_dim(self) -> int: ...
    @property
    def input_resolution(self) -> int: ...
    def load_image(self, src) -> torch.Tensor: ...
    def encode_tensors(self, batch: torch.Tensor) -> np.ndarray: ...
    def encode_images(self, images: Sequence, batch_size: int | None = None, progress=None) -> np.ndarray: ...
    def encode_texts(self, texts: Sequence[str]) -> np.ndarray: ...
    def encode_ensemble(self, prompt_lists: Sequence[Sequence[str]]) -> np.ndarray: ...


def encode_in_batches(encoder, images: Sequence, batch_size: int, progress=None) -> np.ndarray:
    """Any image encoder's `encode_images`: decode/preprocess, then `encode_tensors` per batch."""
    out = []
    for start in range(0, len(images), batch_size):
        chunk = images[start:start + batch_size]
        tensors = [encoder.preprocess(im) if hasattr(im, "mode") else encoder.load_image(im) for im in chunk]
        out.append(encoder.encode_tensors(stack_pixels(tensors)))
        if progress:
            progress(len(chunk))
    if not out:
        return np.zeros((0, encoder.embed_dim), dtype=np.float32)
    return np.concatenate(out).astype(np.float32)


def stack_pixels(pixels: Sequence):
    """One batch from preprocessed images: numpy arrays (the torch-free encoder's) stack in numpy,
    tensors in torch."""
    if len(pixels) and isinstance(pixels[0], np.ndarray):
        return np.stack(pixels)
    import torch
    return torch.stack(list(pixels))


def memoised_texts(memo: dict, texts: Sequence[str], encode_new: Callable[[list[str]], np.ndarray], dim: int,
                   chunk: int = 256) -> np.ndarray:
    """Normalised embeddings of texts (float32, in order), encoding only those not in `memo` (in chunks,
    with `encode_new(list) -> normalised vectors`) and keeping them there: prompts repeat a lot."""
    todo = [t for t in dict.fromkeys(texts) if t not in memo]
    for start in range(0, len(todo), chunk):
        part = todo[start:start + chunk]
        for text, vec in zip(part, encode_new(part)):
            memo[text] = vec
    if not texts:
        return np.zeros((0, dim), dtype=np.float32)
    return np.stack([memo[t] for t in texts]).astype(np.float32)


def ensemble_means(emb: np.ndarray, prompt_lists: Sequence[Sequence[str]], dim: int) -> np.ndarray:
    """One embedding per class: the renormalised mean of its normalised prompt embeddings."""
    out, i = [], 0
    for prompts in prompt_lists:
        mean = emb[i:i + len(prompts)].mean(axis=0)
        out.append(mean / (np.linalg.norm(mean) + 1e-12))
        i += len(prompts)
    return np.stack(out).astype(np.float32) if out else np.zeros((0, dim), np.float32)


def match_probability(encoder, cosines: np.ndarray) -> np.ndarray | None:
    """Per-text match probability: SigLIP's sigmoid(scale*cos + bias); None for softmax-trained models."""
    bias = getattr(encoder, "logit_bias", None)
    if bias is None:
        return None
    return 1.0 / (1.0 + np.exp(-(encoder.logit_scale * np.asarray(cosines, np.float32) + bias)))


def import_family_package(module: str, pip_name: str, family: str):
    """Import a model family's optional package quietly, or say how to install it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return importlib.import_module(module)
    except ImportError as exc:
        raise ModelUnavailable(f"{family} models need the package {pip_name}: "
                               "pip install -r requirements.txt (or pip install 'shoefind[families]')") from exc
