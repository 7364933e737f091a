"""The features stage as the CLI and the flows both run it: build and save a dataset's table, then
fill the embedding cache for it (only images not seen before are encoded).

Each function is one step a flow task wraps; `embed_dataset` is the two in a row, as the CLI runs
them in-process. Both steps skip what is already done: an unchanged dataset's saved table is reused
(its fingerprint, shoefind.features.table_fingerprint), and when the cache already holds every
image (its key known without the model, shoefind.encoders.cache_key) no model is loaded and torch
is never imported.
"""
from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from typing import Annotated

from pydantic import Field

from shoefind.errors import UserError
from shoefind.stages.request import (BatchSize, Catalog, Cluster, DataDir, Dataset, Device, Model, Request, Runtime,
                                     ImageLoading, Threads, direct)
from shoefind.features.table import (FeatureTable, build_table, count_images, load_table, saved_table_if_current,
                                     table_dir_for)
from shoefind.features.table_fingerprint import table_fingerprint

Progress = Callable[[int], None]
Log = Callable[[str], None]


@dataclass
class SavedTable:
    table: FeatureTable
    folder: Path          # where shoes.csv, images.csv and issues.csv were written

    def summary(self) -> dict:
        t = self.table
        return {"table": str(self.folder), "layout": t.layout, "shoes": len(t.shoes), "images": len(t.images),
                "issues": len(t.issues)}


def save_table(dataset: str | os.PathLike, data_dir: str | os.PathLike, catalog: str | os.PathLike | None = None,
               strict: bool = False, progress: Progress | None = None) -> SavedTable:
    """Read the labeled folder and save its table under DATA_DIR/tables/<folder> (the saved one is
    reused when nothing it was built from changed).

    strict: any listed problem is a UserError (after the table is saved, so issues.csv can be read).
    """
    out = table_dir_for(Path(data_dir), dataset)
    if not Path(dataset).is_dir():
        build_table(dataset, catalog=catalog)   # raises, saying what is wrong
    fingerprint = table_fingerprint(dataset, catalog)   # before reading: a photo changed meanwhile is read next time
    table = saved_table_if_current(out, fingerprint)
    if table is not None:
        saved = SavedTable(table, out)
        if progress:
            progress(count_images(dataset))
    else:
        table = build_table(dataset, catalog=catalog, progress=progress)
        saved = SavedTable(table, table.save(out, fingerprint))
    if strict and table.issues:
        raise UserError(f"{len(table.issues)} problems in {dataset} (strict): see {saved.folder}/issues.csv")
    return saved


def images_of(table: FeatureTable) -> list[tuple[str, str]]:
    """(path, sha256) of every image in the table, as the embedding steps take them."""
    return [(str(table.root / p), s) for p, s in zip(table.images["path"], table.images["sha256"])]


def model_options(runtime: str | None = None, device: str | None = None, threads: int | None = None,
                  batch_size: int | None = None) -> dict:
    """load_encoder keyword arguments for the options that were given (None: the settings decide)."""
    given = {"runtime": runtime, "device": device, "threads": threads, "batch_size": batch_size}
    return {k: v for k, v in given.items() if v is not None}


def all_cached(items: list[tuple[str, str]], data_dir: str | os.PathLike, model: str | None = None,
               runtime: str | None = None, device: str | None = None) -> tuple[dict | None, list[Path]]:
    """(embed_table's report, damaged shards moved aside) when the cache holds every item already,
    known without loading the model; (None, damaged) when the model is needed."""
    from shoefind.encoders.cache_key import known_cache_key
    from shoefind.features.cache import EmbeddingCache
    from shoefind.features.embed import EmbedReport
    known = known_cache_key(model, runtime, device)
    cache = EmbeddingCache.without_model(data_dir, known.key) if known else None
    if cache is None or cache.damaged or cache.missing(s for _, s in items):
        return None, list(cache.damaged) if cache is not None else []
    report = EmbedReport(total=len(items), cached=len(items)).as_dict()
    return report | {"model": known.model_id, "cache": str(cache.dir), "runtime": known.runtime,
                     "random_weights": known.is_random, "damaged_shards": []}, []


def embed_table(table_dir: str | os.PathLike, data_dir: str | os.PathLike, model: str | None = None,
                batch_size: int = 32, threads: int | None = None, runtime: str | None = None,
                device: str | None = None, progress: Progress | None = None, log: Log | None = None,
                table: FeatureTable | None = None) -> dict:
    """Encode every image of a saved table (given, or read from table_dir) that the cache lacks;
    report what was done. The model is loaded only when an image is missing."""
    items = images_of(table if table is not None else load_table(table_dir))
    done, damaged = all_cached(items, data_dir, model, runtime, device)
    if done is not None:
        if done["random_weights"] and log:
            log(f"model {done['model']} has RANDOM weights: embeddings are for testing only")
        if progress:
            progress(len(items))
        return done
    from shoefind.encoders.load import load_encoder
    from shoefind.features.cache import EmbeddingCache
    from shoefind.features.embed import embed_images
    encoder = load_encoder(model, **model_options(runtime, device, threads, batch_size))
    if encoder.is_random and log:
        log(f"model {encoder.model_id} has RANDOM weights: embeddings are for testing only")
    cache = EmbeddingCache.for_encoder(data_dir, encoder)
    report = embed_images(encoder, cache, items, batch_size=batch_size, progress=progress)
    for path, reason in report.failed:
        if log:
            log(f"skipped {reason}")
    damaged += cache.damaged
    for shard in damaged:
        if log:
            log(f"damaged cache shard moved to {shard}; its images were encoded again")
    return report.as_dict() | {"model": encoder.model_id, "cache": str(cache.dir), "runtime": encoder.runtime,
                               "random_weights": bool(encoder.is_random),
                               "damaged_shards": [str(p) for p in damaged]}


def with_table_unreadable(result: dict, table_dir: str | os.PathLike, table: FeatureTable | None = None) -> dict:
    """An embed report that also counts the images the table step found unreadable (they never
    reach the encoder), so its unreadable count is what issues.csv lists."""
    table = table if table is not None else load_table(table_dir)
    known = {f["path"] for f in result["failed"]}
    unreadable = [{"path": str(Path(table.root) / i.where), "reason": i.message} for i in table.issues
                  if i.kind == "unreadable-image" and str(Path(table.root) / i.where) not in known]
    return result | {"total": result["total"] + len(unreadable), "failed": unreadable + list(result["failed"])}


# --- batches on a cluster: the worker side, and the in-process driver (dask.distributed, no Prefect) ---

_CACHES: dict[str, object] = {}
_CACHES_LOCK = threading.Lock()


def _worker_cache(data_dir: str, encoder):
    """This process's view of the embedding cache (kept between batches)."""
    from shoefind.features.cache import EmbeddingCache
    key = data_dir + "|" + encoder.cache_key
    with _CACHES_LOCK:
        if key not in _CACHES:
            _CACHES[key] = EmbeddingCache.for_encoder(data_dir, encoder)
        return _CACHES[key]


def embed_batch(items: list[tuple[str, str]], data_dir: str, model: str | None = None,
                runtime: str | None = None, batch_size: int = 32, threads: int | None = None,
                device: str | None = None) -> dict:
    """Encode the (path, sha256) items the cache lacks, on whichever worker runs this; the model is
    loaded once per worker process. Several workers write one cache safely (a shard per batch)."""
    from shoefind.encoders.load import load_encoder
    from shoefind.features.embed import embed_images
    encoder = load_encoder(model, **model_options(runtime, device, threads, batch_size))
    report = embed_images(encoder, _worker_cache(data_dir, encoder), items, batch_size=batch_size)
    # the encoder's id shows the model was loaded once per worker process, not per batch
    return report.as_dict() | {"worker": f"{socket.gethostname()}:{os.getpid()}", "encoder_id": id(encoder.model)}


# Images per batch task: large enough that scheduling costs nothing next to encoding,
# small enough that a lost worker redoes little and the workers finish together.
IMAGES_PER_TASK = 256


def task_size(todo: int, batch_size: int, most: int = IMAGES_PER_TASK, least_tasks: int = 8) -> int:
    """Images per task: at most `most`, but small datasets still make `least_tasks` tasks
    (so every worker gets some), and never less than one model batch."""
    return max(1, min(most, max(batch_size, -(-todo // least_tasks))))


def split(items, size: int) -> list[list]:
    """Consecutive batches of at most `size` items."""
    if size < 1:
        raise ValueError(f"batch size must be at least 1, not {size}")
    return [list(items[i:i + size]) for i in range(0, len(items), size)]


def plan_batches(table_dir: str | os.PathLike, data_dir: str | os.PathLike, model: str | None = None,
                 runtime: str | None = None, device: str | None = None, batch_size: int = 32,
                 images_per_task: int = IMAGES_PER_TASK) -> tuple[list[list[tuple[str, str]]], dict]:
    """The images still to encode, split into batch tasks, and what the report needs besides.

    Loads the model here too, to learn the cache key and export any ONNX towers once before workers start.
    """
    from shoefind.encoders.load import load_encoder
    from shoefind.features.cache import EmbeddingCache
    encoder = load_encoder(model, **model_options(runtime, device, None, batch_size))
    cache = EmbeddingCache.for_encoder(data_dir, encoder)
    items = images_of(load_table(table_dir))
    todo, seen = [], set()
    for path, sha in items:  # each image once, even when the dataset holds copies
        if sha not in cache and sha not in seen:
            seen.add(sha)
            todo.append((path, sha))
    batches = split(todo, task_size(len(todo), batch_size, images_per_task))
    return batches, {"total": len(items), "model": encoder.model_id, "cache": str(cache.dir),
                     "runtime": encoder.runtime, "random_weights": bool(encoder.is_random)}


def merge_batch_reports(reports: list[dict], plan: dict) -> dict:
    encoded = sum(r["encoded"] for r in reports)
    failed = [f for r in reports for f in r["failed"]]
    workers = sorted({r["worker"] for r in reports})
    return {"total": plan["total"], "cached": plan["total"] - encoded - len(failed), "encoded": encoded,
            "failed": failed, "workers": workers,
            "model_loads": {w: len({r["encoder_id"] for r in reports if r["worker"] == w}) for w in workers},
            **{k: plan[k] for k in ("model", "cache", "runtime", "random_weights")}}


def embed_table_on_cluster(table_dir: str | os.PathLike, data_dir: str | os.PathLike, cluster: str,
                           model: str | None = None, batch_size: int = 32, threads: int | None = None,
                           runtime: str | None = None, device: str | None = None) -> dict:
    """embed_table with the batches spread over a Dask cluster (`local:N` or a scheduler address)."""
    from distributed import Client, LocalCluster

    from shoefind.cluster import check_reachable, local_workers, worker_threads
    check_reachable(cluster)
    batches, plan = plan_batches(table_dir, data_dir, model, runtime, device, batch_size)
    if not batches:
        return merge_batch_reports([], plan)
    threads = worker_threads(cluster, threads)
    n = local_workers(cluster)
    # processes, not threads: the model and its thread pools stay per worker; loopback only
    local = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                         dashboard_address="127.0.0.1:0") if n else None
    try:
        with Client(local if local else cluster) as client:
            futures = client.map(embed_batch, batches, data_dir=str(data_dir), model=model, runtime=runtime,
                                 batch_size=batch_size, threads=threads, device=device, pure=False)
            reports = client.gather(futures)
    finally:
        if local:
            local.close()
    return merge_batch_reports(reports, plan)


def embed_dataset(dataset: str | os.PathLike, data_dir: str | os.PathLike, model: str | None = None,
                  catalog: str | os.PathLike | None = None, batch_size: int = 32, threads: int | None = None,
                  cluster: str | None = None, runtime: str | None = None, device: str | None = None,
                  progress: Callable[[str, int], Progress] | None = None, log: Log | None = None) -> dict:
    """Table, then embeddings: the whole stage in this process (or its batches on a Dask cluster).

    progress(description, total) returns an advance(n) callable (a progress bar), or is None.
    """
    saved = save_table(dataset, data_dir, catalog,
                       progress=progress("reading images", count_images(dataset)) if progress else None)
    if cluster:
        result = embed_table_on_cluster(saved.folder, data_dir, cluster, model, batch_size, threads, runtime, device)
    else:
        result = embed_table(saved.folder, data_dir, model, batch_size, threads, runtime, device,
                             progress=progress("embedding", len(saved.table.images)) if progress else None, log=log,
                             table=saved.table)
    return with_table_unreadable(result, saved.folder, saved.table) | {"table": str(saved.folder),
                                                           "issues": [str(i) for i in saved.table.issues]}


class TableRequest(Request):
    dataset: Dataset = None
    data_dir: DataDir = None
    catalog: Catalog = None
    strict: Annotated[bool, Field(description="treat every listed problem as an error (exit 2)")] = False


class EmbedRequest(Request):
    dataset: Dataset = None
    data_dir: DataDir = None
    model: Model = None
    catalog: Catalog = None
    batch_size: BatchSize = 32
    threads: Threads = None
    cluster: Cluster = None
    runtime: Runtime = None
    device: Device = None
    image_loading: ImageLoading = None


def table(request: TableRequest, step=direct, progress=None, log: Log | None = None) -> SavedTable:
    """The table stage: the dataset's feature table, saved (reused when nothing it reads changed)."""
    dataset, data_dir = request.dataset_paths()
    saved = step("build-feature-table", save_table, dataset, data_dir, request.catalog,
                 progress=progress("reading images", count_images(dataset)) if progress else None)
    if request.strict and saved.table.issues:
        raise UserError(f"{len(saved.table.issues)} problems in {dataset} (strict): see {saved.folder}/issues.csv")
    return saved


def embed(request: EmbedRequest, step=direct, progress=None, log: Log | None = None) -> dict:
    """The embed stage: table, then the embeddings of the photos the cache has not seen."""
    dataset, data_dir = request.dataset_paths()
    return step("embed", embed_dataset, dataset, data_dir, request.model_text(), request.catalog, request.batch_size,
                request.threads, cluster=request.cluster, runtime=request.runtime, device=request.device,
                progress=progress, log=log)
