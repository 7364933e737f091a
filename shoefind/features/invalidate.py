"""Embeddings made by a bad model file are dropped, so they are encoded again rather than trusted.

When an ONNX export that may have been used is found not to be the model's (another model's graph
dropped into the export folder before exports were verified: its vectors had a cosine of -0.02 to the
real ones), every embedding its runtime could have cached is suspect: the cache key's shards, its
prompt embeddings and the vector store built from them. They are moved, not deleted, to
`<key>/invalidated/<time>/` with one warning line; the next run encodes those photos again and the
vector store is rebuilt from the shards that remain.
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from shoefind.features.cache import _safe
from shoefind.features.vector_index import STORE_DIR

log = logging.getLogger("shoefind.cache")


def invalidate_embeddings(data_dir: str | os.PathLike, key: str, why: str) -> int:
    """Move the cache of `key` in a data folder aside; returns how many shards were moved."""
    folder = Path(data_dir) / "embeddings" / _safe(key)
    if not folder.is_dir():
        return 0
    shards = sorted(folder.glob("shard-*.npz"))
    moved = shards + sorted(folder.glob("texts-*.npz")) + [p for p in (folder / STORE_DIR,) if p.exists()]
    if not moved:
        return 0
    target = folder / "invalidated" / time.strftime("%Y%m%d-%H%M%S")
    target.mkdir(parents=True, exist_ok=True)
    for path in moved:
        try:
            os.replace(path, target / path.name)
        except FileNotFoundError:   # another process moved it first
            continue
    log.warning("the cached embeddings in %s were made by %s: %d shards moved to %s; those photos will be "
                "encoded again", folder, why, len(shards), target)
    return len(shards)
