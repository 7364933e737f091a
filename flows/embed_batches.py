"""embed-batches: the embedding cache filled by batches mapped over the task runner (Dask).

The flow process loads the model too, to learn the cache key, skip images already cached
and export the ONNX towers once before the workers start (they then only read the export).
"""
from __future__ import annotations

from prefect import flow, get_run_logger

from shoefind.encoders.load import load_model
from shoefind.features.table import load_table
from tasks.batches import map_batches, split
from tasks.embed import embedding_cache
from tasks.embed_batch import embed_batch

# Images per task: large enough that scheduling costs nothing next to encoding,
# small enough that a lost worker redoes little and the workers finish together.
IMAGES_PER_TASK = 256


def task_size(todo: int, batch_size: int, most: int = IMAGES_PER_TASK, least_tasks: int = 8) -> int:
    """Images per task: at most `most`, but small datasets still make `least_tasks` tasks
    (so every worker gets some), and never less than one model batch."""
    return max(1, min(most, max(batch_size, -(-todo // least_tasks))))


@flow(name="embed-batches")
def embed_batches_flow(table_dir: str, data_dir: str, model: str | None = None, runtime: str | None = None,
                       batch_size: int = 32, threads: int | None = None,
                       images_per_task: int = IMAGES_PER_TASK) -> dict:
    log = get_run_logger()
    encoder = load_model(model, batch_size=batch_size, runtime=runtime)
    cache = embedding_cache(data_dir, encoder)
    table = load_table(table_dir)
    items = [(str(table.root / p), s) for p, s in zip(table.images["path"], table.images["sha256"])]
    todo, seen = [], set()
    for path, sha in items:  # each image once, even when the dataset holds copies
        if sha not in cache and sha not in seen:
            seen.add(sha)
            todo.append((path, sha))
    batches = split(todo, task_size(len(todo), batch_size, images_per_task))
    log.info("%d images, %d to encode in %d tasks", len(items), len(todo), len(batches))
    reports = map_batches(embed_batch, batches, data_dir=data_dir, model=model, runtime=runtime,
                          batch_size=batch_size, threads=threads)
    encoded = sum(r["encoded"] for r in reports)
    failed = [f for r in reports for f in r["failed"]]
    workers = sorted({r["worker"] for r in reports})
    log.info("%d images: %d encoded on %d workers, %d unreadable", len(items), encoded, len(workers), len(failed))
    return {"total": len(items), "cached": len(items) - encoded - len(failed), "encoded": encoded,
            "failed": failed, "model": encoder.model_id, "cache": str(cache.dir), "runtime": encoder.runtime,
            "workers": workers, "model_loads": {w: len({r["encoder_id"] for r in reports if r["worker"] == w})
                                                for w in workers}}
