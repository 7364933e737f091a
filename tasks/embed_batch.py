"""Task: embed one batch of images on whichever worker runs it (Dask or local threads).

The model is loaded once per worker process (load_model is memoised per process) and so
is the cache index (only new shards are read before each batch). Several workers write to
the same cache at once safely: each batch lands as its own atomically renamed shard.
"""
from __future__ import annotations

import os
import socket
import threading

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from shoefind.features.cache import EmbeddingCache
from shoefind.features.embed import embed_images
from shoefind.encoders.load import load_model

_CACHES: dict[str, EmbeddingCache] = {}
_CACHES_LOCK = threading.Lock()


def worker_cache(data_dir: str, encoder) -> EmbeddingCache:
    """This process's view of the embedding cache (kept between batches)."""
    with _CACHES_LOCK:
        cache = _CACHES.get(data_dir + "|" + encoder.cache_key)
        if cache is None:
            cache = EmbeddingCache.for_encoder(data_dir, encoder)
            _CACHES[data_dir + "|" + encoder.cache_key] = cache
        return cache


@task(name="embed-batch", cache_policy=NO_CACHE, retries=1)
def embed_batch(items: list[tuple[str, str]], data_dir: str, model: str | None = None,
                runtime: str | None = None, batch_size: int = 32, threads: int | None = None) -> dict:
    """Encode the (path, sha256) items the cache lacks; report what was done and where."""
    encoder = load_model(model, threads=threads, batch_size=batch_size, runtime=runtime)
    cache = worker_cache(data_dir, encoder)
    report = embed_images(encoder, cache, items, batch_size=batch_size)
    for path, reason in report.failed:
        get_run_logger().warning("skipped %s", reason)
    # the encoder's id shows the model was loaded once per worker process, not per batch
    return report.as_dict() | {"worker": f"{socket.gethostname()}:{os.getpid()}", "encoder_id": id(encoder.model)}
