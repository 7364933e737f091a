"""Embeddings a foreign model graph may have made are dropped, so they are encoded again, not trusted.

When an ONNX export found in use is not the model's (another model's graph dropped into an export
folder before exports were verified: its vectors had a cosine of -0.02 to the real ones), the fresh
export's meta.json records the time it replaced it, per cache key (`suspect_embeddings`, see
shoefind.encoders.runtimes.onnx_manifest), and encoders of that model carry it. Whichever data folder
a cache of that key is then opened in (EmbeddingCache.for_encoder), what it holds from before that time
is moved, not deleted, to `<key>/invalidated/<time>/` with one warning line: the shards (named by the
time they were written), the prompt embeddings and the vector store built from them. Those photos are
encoded again; what was written after the replacement stays.
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import re
import time
from pathlib import Path

log = logging.getLogger("shoefind.cache")
_SHARD_TIME = re.compile(r"shard-(\d{20})-")
# shoefind.features.vector_index.STORE_DIR: importing it would close an import cycle with the cache
# (tests/unit/test_stored_artifacts.py holds the two equal)
STORE_DIR = "vector-store"


def _written(path: Path) -> int:
    """When a cache file was written (ns): a shard's name says it, else its modification time."""
    found = _SHARD_TIME.match(path.name)
    return int(found.group(1)) if found else path.stat().st_mtime_ns


def drop_embeddings_made_before(cache_dir: str | os.PathLike, since_ns: int) -> int:
    """Move a cache folder's shards and prompt file written before `since_ns` (and then its vector store)
    to invalidated/; returns how many shards were moved."""
    folder = Path(cache_dir)
    try:
        old = [p for p in (*folder.glob("shard-*.npz"), *folder.glob("texts-*.npz")) if _written(p) < since_ns]
    except FileNotFoundError:   # another process moved one first
        return drop_embeddings_made_before(folder, since_ns)
    if not old:
        return 0
    target = folder / "invalidated" / time.strftime("%Y%m%d-%H%M%S")
    target.mkdir(parents=True, exist_ok=True)
    store = folder / STORE_DIR
    for path in old + ([store] if store.exists() else []):   # the store is rebuilt from the shards that remain
        try:
            os.replace(path, target / path.name)
        except FileNotFoundError:
            continue
    shards = sum(p.name.startswith("shard-") for p in old)
    when = dt.datetime.fromtimestamp(since_ns / 1e9).isoformat(timespec="seconds")
    log.warning("%d embedding-cache shards in %s were written before %s, when a graph that was not this "
                "model's was replaced in its ONNX export: moved to %s; those photos will be encoded again",
                shards, folder, when, target)
    return shards
