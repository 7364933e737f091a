"""Augmented views of photos (random resized crop + horizontal flip), encoded once and cached.

CoOp re-augments every photo every epoch and Tip-Adapter averages its cache keys over
augmented views. Both need only embeddings, so N views per photo are encoded once and kept
in their own embedding cache, keyed by the encoder's cache key plus the augmentation recipe
(never mixed with the plain embeddings); training then reads no pixels. A view is
reproducible: its crop and flip are drawn from a seed made of the photo's hash, the view
number and `seed`.

Each method augments as its official code does (`RECIPES`): Tip-Adapter's cache crops keep half of
the photo or more (its main.py: RandomResizedCrop scale (0.5, 1)); CoOp and CoCoOp train on Dassl's
`random_resized_crop` (INPUT.RRCROP_SCALE (0.08, 1.0)) and `random_flip`. CoOp draws a fresh crop
every epoch; here an epoch draws one of the N cached views of each photo (N = 10 by default: a fresh
crop per epoch would encode every photo once per epoch, 200 times at 16 shots).

How many views each method gets: shoefind.learn.augmented_views.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from shoefind.features.cache import EmbeddingCache
from shoefind.images import ImageError, open_image


@dataclass(frozen=True)
class ViewRecipe:
    name: str                        # part of the view cache's name
    scale: tuple[float, float]       # RandomResizedCrop's area range
    draft: bool = True               # JPEG draft decoding at the model's resolution (False: full size)


# Tip-Adapter's cache augmentation (main.py train_tranform): crops keep at least half of the photo.
TIP_ADAPTER_VIEWS = ViewRecipe("rrc-0.5-1-flip-v1", (0.5, 1.0))
# CoOp / CoCoOp (configs INPUT.TRANSFORMS random_resized_crop, random_flip; Dassl's RRCROP_SCALE).
# Full-size decoding: an 8% crop of a draft-decoded photo would be upscaled from a few dozen pixels.
COOP_VIEWS = ViewRecipe("rrc-0.08-1-flip-v1", (0.08, 1.0), draft=False)
RECIPES = {"tip-adapter": TIP_ADAPTER_VIEWS, "tip-adapter-f": TIP_ADAPTER_VIEWS, "coop": COOP_VIEWS,
           "cocoop": COOP_VIEWS}
VIEW_RECIPE = TIP_ADAPTER_VIEWS.name
DEFAULT_VIEWS = 10   # Tip-Adapter's augment_epoch; the cached pool CoOp draws an epoch's crop from


def can_augment(encoder) -> bool:
    """Whether the encoder's preprocessing can be rebuilt with a random crop (a torchvision pipeline)."""
    return getattr(encoder.preprocess, "transforms", None) is not None


def view_cache(embeddings_root: str | os.PathLike, encoder, recipe: ViewRecipe = TIP_ADAPTER_VIEWS) -> EmbeddingCache:
    """The cache of augmented views next to the plain one: <root>/<cache key>|views-<recipe>."""
    return EmbeddingCache(embeddings_root, f"{encoder.cache_key}|views-{recipe.name}")


def view_key(sha: str, view: int, seed: int) -> str:
    return f"{sha}#v{view}s{seed}"


def augmenter(encoder, scale: tuple[float, float] = (0.5, 1.0)) -> Callable:
    """The encoder's own preprocessing with its resize + centre crop replaced by a random resized
    crop and a random horizontal flip."""
    from torchvision import transforms as T
    steps = getattr(encoder.preprocess, "transforms", None)
    if steps is None:
        raise ValueError(f"{encoder.model_id}: its preprocessing cannot be augmented (not a torchvision pipeline)")
    rest = [t for t in steps if not isinstance(t, (T.Resize, T.CenterCrop))]
    return T.Compose([T.RandomResizedCrop(encoder.input_resolution, scale=scale,
                                          interpolation=T.InterpolationMode.BICUBIC),
                      T.RandomHorizontalFlip()] + rest)


def _view_seed(sha: str, view: int, seed: int) -> int:
    return int(hashlib.sha256(f"{sha}|{view}|{seed}".encode()).hexdigest()[:15], 16)


def embed_views(encoder, cache: EmbeddingCache, items: Sequence[tuple[str, str]], n_views: int = DEFAULT_VIEWS,
                seed: int = 0, batch_size: int = 32, progress: Callable[[int], None] | None = None,
                recipe: ViewRecipe = TIP_ADAPTER_VIEWS) -> int:
    """Make sure every (path, sha256) has `n_views` cached views; returns how many were encoded.
    A photo that cannot be read is skipped (the plain embedding step reports it)."""
    cache.refresh()
    augment = augmenter(encoder, recipe.scale)
    todo = [(path, sha, v) for path, sha in dict(((s, (p, s)) for p, s in items)).values()
            for v in range(n_views) if view_key(sha, v, seed) not in cache]
    encoded = 0
    for start in range(0, len(todo), batch_size):
        chunk = todo[start:start + batch_size]
        tensors, keys = [], []
        for path, sha, v in chunk:
            try:
                image = open_image(path, size_hint=encoder.input_resolution if recipe.draft else None)
            except ImageError:
                continue
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(_view_seed(sha, v, seed))
                tensors.append(augment(image))
            keys.append(view_key(sha, v, seed))
        if tensors:
            cache.add(keys, encoder.encode_tensors(torch.stack(tensors)))
            encoded += len(keys)
        if progress:
            progress(len(chunk))
    return encoded


def view_matrix(cache: EmbeddingCache, shas: Sequence[str], n_views: int, seed: int = 0) -> np.ndarray:
    """(N, V, D) cached views of the photos `shas` (KeyError names a view not embedded)."""
    if not len(shas):
        return np.zeros((0, n_views, 0), np.float32)
    flat = cache.matrix([view_key(s, v, seed) for s in shas for v in range(n_views)])
    return flat.reshape(len(shas), n_views, -1)

