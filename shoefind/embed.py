"""Incremental embedding: encode only images the cache has not seen, in batches.

Decoding runs in a thread pool one batch ahead of the model (PIL releases the GIL while
decoding), so the model rarely waits for the disk. Each batch is written to the cache as
soon as it is encoded: a crash loses at most the batch in flight.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch

from .cache import EmbeddingCache
from .images import ImageError


@dataclass
class EmbedReport:
    total: int = 0
    cached: int = 0
    encoded: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)

    def as_dict(self) -> dict:
        return {"total": self.total, "cached": self.cached, "encoded": self.encoded,
                "failed": [{"path": p, "reason": r} for p, r in self.failed]}


def _decode_batch(encoder, items):
    tensors, ok, failed = [], [], []
    for path, sha in items:
        try:
            tensors.append(encoder.load_image(path))
            ok.append(sha)
        except ImageError as exc:
            failed.append((str(path), str(exc)))
    return tensors, ok, failed


def embed_images(encoder, cache: EmbeddingCache, items: Sequence[tuple[str, str]],
                 batch_size: int = 32, workers: int = 2,
                 progress: Callable[[int], None] | None = None) -> EmbedReport:
    """Make sure every (path, sha256) in items has an embedding in cache."""
    report = EmbedReport(total=len(items))
    cache.refresh()
    todo, seen = [], set()
    for path, sha in items:
        if sha in cache or sha in seen:
            report.cached += 1
            if progress:
                progress(1)
            continue
        seen.add(sha)
        todo.append((path, sha))
    batches = [todo[i:i + batch_size] for i in range(0, len(todo), batch_size)]
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        pending = [pool.submit(_decode_batch, encoder, b) for b in batches[:2]]
        for i in range(len(batches)):
            tensors, ok, failed = pending[i].result()
            if i + 2 < len(batches):
                pending.append(pool.submit(_decode_batch, encoder, batches[i + 2]))
            report.failed.extend(failed)
            if tensors:
                vecs = encoder.encode_tensors(torch.stack(tensors))
                cache.add(ok, vecs)
                report.encoded += len(ok)
            if progress:
                progress(len(batches[i]))
    return report


def embedding_matrix(cache: EmbeddingCache, shas: Sequence[str]) -> tuple[np.ndarray, list[int]]:
    """Embeddings for the shas that are cached, and the indices of those rows."""
    rows = [i for i, s in enumerate(shas) if s in cache]
    return cache.matrix([shas[i] for i in rows]), rows
