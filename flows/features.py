"""Features stage: labeled photo folder -> feature table (build-table) -> cached embeddings (embed).

embed encodes only images the cache has not seen; with a Dask cluster its batches become one task
each on the cluster's workers (embed-batches).
"""
from __future__ import annotations

from prefect import flow, get_run_logger

from shoefind.stages.features import (EmbedRequest, TableRequest, merge_batch_reports, plan_batches,
                                      with_table_unreadable)
from tasks.common import map_batches
from tasks.features import build_table_task, embed_batch_task, embed_table_task

from .cluster import on_cluster
from .common import declared


@flow(name="build-table")
@declared(TableRequest)
def build_table_flow(request: TableRequest) -> str:
    """Build the feature table (shoes.csv, images.csv, issues.csv) of a labeled photo folder."""
    dataset, data_dir = request.dataset_paths()
    return build_table_task(dataset, data_dir, catalog=request.catalog, strict=request.strict)


@flow(name="embed-batches")
def embed_batches_flow(table_dir: str, data_dir: str, model: str | None = None, runtime: str | None = None,
                       device: str | None = None, batch_size: int = 32, threads: int | None = None) -> dict:
    """The embedding cache filled by batch tasks mapped over the task runner (a Dask cluster)."""
    log = get_run_logger()
    batches, plan = plan_batches(table_dir, data_dir, model, runtime, device, batch_size)
    log.info("%d images, %d to encode in %d tasks", plan["total"], sum(map(len, batches)), len(batches))
    reports = map_batches(embed_batch_task, batches, data_dir=data_dir, model=model, runtime=runtime,
                          batch_size=batch_size, threads=threads, device=device)
    result = merge_batch_reports(reports, plan)
    log.info("%d images: %d encoded on %d workers, %d unreadable", result["total"], result["encoded"],
             len(result["workers"]), len(result["failed"]))
    return result


@flow(name="embed")
@declared(EmbedRequest)
def embed_flow(request: EmbedRequest) -> dict:
    """Cache the image embeddings of a dataset (only images not seen before are encoded); with a Dask
    cluster its batches are tasks on the cluster's workers (embed-batches)."""
    from shoefind.checks import require_model
    from shoefind.cluster import check_reachable, worker_threads
    dataset, data_dir = request.dataset_paths()
    require_model(request.model_text())
    if request.cluster:
        check_reachable(request.cluster)
    table_dir = build_table_task(dataset, data_dir, catalog=request.catalog)
    options = dict(model=request.model_text(), runtime=request.runtime, device=request.device,
                   batch_size=request.batch_size)
    if request.cluster:
        result = on_cluster(embed_batches_flow, request.cluster)(
            table_dir, data_dir, **options, threads=worker_threads(request.cluster, request.threads))
    else:
        result = embed_table_task(table_dir, data_dir, **options, threads=request.threads)
    return with_table_unreadable(result, table_dir) | {"table": table_dir}


if __name__ == "__main__":
    embed_flow()
