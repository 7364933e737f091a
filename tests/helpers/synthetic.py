"""Synthetic embeddings with a known class structure (no model): fast tests of the maths."""
from __future__ import annotations

import numpy as np


def clustered(classes: int, per_class: int, dim: int, spread: float = 0.9, seed: int = 0):
    """Unit vectors around one random centre per class, and a 'prompt' per class near its centre.

    Returns (x (N, D), y (N,), text (C, D)), all float32 and L2-normalised.
    """
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    y = np.repeat(np.arange(classes), per_class)
    x = centres[y] + rng.normal(size=(len(y), dim)) * spread / np.sqrt(dim)
    text = centres + rng.normal(size=centres.shape) * 0.8 / np.sqrt(dim)
    norm = lambda a: (a / np.linalg.norm(a, axis=1, keepdims=True)).astype(np.float32)  # noqa: E731
    return norm(x), y, norm(text)
