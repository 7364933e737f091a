"""Tasks: load the model once per process and fill the embedding cache in batches."""
from __future__ import annotations


from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from shoefind.features.cache import EmbeddingCache
from shoefind.features.embed import embed_images
from shoefind.encoders.load import load_model
from shoefind.features.table import load_table

from .progress import progress_bar


def embedding_cache(data_dir: str, encoder) -> EmbeddingCache:
    return EmbeddingCache.for_encoder(data_dir, encoder)


@task(name="embed-images", cache_policy=NO_CACHE)
def embed_table_images(table_dir: str, data_dir: str, model: str | None = None, batch_size: int = 32,
                       threads: int | None = None, runtime: str | None = None) -> dict:
    """Encode every image of the table the cache has not seen yet; report what was done."""
    log = get_run_logger()
    encoder = load_model(model, threads=threads, batch_size=batch_size, runtime=runtime)
    if encoder.is_random:
        log.warning("model %s has RANDOM weights: embeddings are for testing only", encoder.model_id)
    table = load_table(table_dir)
    cache = embedding_cache(data_dir, encoder)
    items = [(str(table.root / p), s) for p, s in zip(table.images["path"], table.images["sha256"])]
    with progress_bar(f"embedding ({encoder.model_id})", len(items)) as advance:
        report = embed_images(encoder, cache, items, batch_size=batch_size, progress=advance)
    for path, reason in report.failed:
        log.warning("skipped %s", reason)
    for shard in cache.damaged:
        log.warning("damaged cache shard moved to %s; its images were encoded again", shard)
    log.info("%d images: %d already cached, %d encoded, %d unreadable", report.total, report.cached,
             report.encoded, len(report.failed))
    return report.as_dict() | {"model": encoder.model_id, "cache": str(cache.dir), "runtime": encoder.runtime,
                               "damaged_shards": [str(p) for p in cache.damaged]}
