"""Features stage: labeled photo folder -> feature table (build-table) -> cached embeddings (embed).

embed encodes only images the cache has not seen; with a Dask cluster its batches become one task
each on the cluster's workers (embed-batches).
"""
from __future__ import annotations

from prefect import flow, get_run_logger

from shoefind.checks import dataset_problem, model_problem
from shoefind.stages.features import merge_batch_reports, plan_batches, with_table_unreadable
from tasks.common import map_batches
from tasks.features import build_table_task, embed_batch_task, embed_table_task

from .cluster import on_cluster
from .common import (BatchSize, Catalog, Cluster, DataDir, Dataset, Device, Model, Runtime, Threads, fails_clearly,
                     given, paths, stop)


@flow(name="build-table")
@fails_clearly
def build_table_flow(dataset: Dataset = "", data_dir: DataDir = "", catalog: Catalog = "",
                     strict: bool = False) -> str:
    """Build the feature table (shoes.csv, images.csv, issues.csv) of a labeled photo folder.

    Args:
        strict: Fail the run when the table lists any problem.
    """
    dataset, data_dir = paths(dataset, data_dir)
    if problem := dataset_problem(dataset):
        return stop(problem)
    return build_table_task(dataset, data_dir, catalog=given(catalog), strict=strict)


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
@fails_clearly
def embed_flow(dataset: Dataset = "", data_dir: DataDir = "", model: Model = "", catalog: Catalog = "",
               batch_size: BatchSize = 32, threads: Threads = 0, cluster: Cluster = "", runtime: Runtime = "auto",
               device: Device = "auto") -> dict:
    """Cache the image embeddings of a dataset (only images not seen before are encoded)."""
    from shoefind.cluster import check_cluster, check_reachable, worker_threads
    dataset, data_dir = paths(dataset, data_dir)
    model, runtime, device, cluster = given(model), given(runtime), given(device), given(cluster)
    if problem := dataset_problem(dataset) or model_problem(model):
        return stop(problem)
    if cluster:
        check_reachable(check_cluster(cluster))
    table_dir = build_table_task(dataset, data_dir, catalog=given(catalog))
    if cluster:
        result = on_cluster(embed_batches_flow, cluster)(table_dir, data_dir, model=model, runtime=runtime,
                                                         device=device, batch_size=batch_size,
                                                         threads=worker_threads(cluster, threads or None))
    else:
        result = embed_table_task(table_dir, data_dir, model=model, batch_size=batch_size, threads=threads or None,
                                  runtime=runtime, device=device)
    return with_table_unreadable(result, table_dir) | {"table": table_dir}


if __name__ == "__main__":
    embed_flow()
