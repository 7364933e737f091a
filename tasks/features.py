"""Tasks of the features stage: build and save a dataset's table, fill the embedding cache (in this
process, or one batch per task on a Dask cluster)."""
from __future__ import annotations

from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from shoefind.stages.features import embed_batch, embed_table, save_table
from shoefind.features.table import count_images

from .common import progress_bar


@task(name="build-feature-table", cache_policy=NO_CACHE)
def build_table_task(dataset: str, data_dir: str, catalog: str | None = None, strict: bool = False) -> str:
    """Read the labeled folder, save shoes/images/issues CSVs; returns the table folder."""
    log = get_run_logger()
    with progress_bar("reading images", count_images(dataset)) as advance:
        saved = save_table(dataset, data_dir, catalog, progress=advance)
    table = saved.table
    for issue in table.issues:
        log.warning(str(issue))
    if table.issues:
        create_table_artifact([{"kind": i.kind, "where": i.where, "message": i.message} for i in table.issues],
                              key="feature-table-issues", description=f"Problems found in {dataset}")
    log.info("%s: %d shoes, %d images, %d issues -> %s", dataset, len(table.shoes), len(table.images),
             len(table.issues), saved.folder)
    if strict and table.issues:
        from shoefind.errors import UserError
        raise UserError(f"{len(table.issues)} problems in {dataset} (strict): see the warnings or "
                        f"{saved.folder}/issues.csv")
    return str(saved.folder)


@task(name="embed-images", cache_policy=NO_CACHE)
def embed_table_task(table_dir: str, data_dir: str, model: str | None = None, batch_size: int = 32,
                     threads: int | None = None, runtime: str | None = None, device: str | None = None) -> dict:
    """Encode every image of the table the cache has not seen yet; report what was done."""
    log = get_run_logger()
    from shoefind.features.table import load_table
    total = len(load_table(table_dir).images)
    with progress_bar("embedding", total) as advance:
        result = embed_table(table_dir, data_dir, model, batch_size, threads, runtime, device, progress=advance,
                             log=log.warning)
    log.info("%d images: %d already cached, %d encoded, %d unreadable (%s)", result["total"], result["cached"],
             result["encoded"], len(result["failed"]), result["model"])
    return result


@task(name="embed-batch", cache_policy=NO_CACHE, retries=1)
def embed_batch_task(items: list[tuple[str, str]], data_dir: str, model: str | None = None,
                     runtime: str | None = None, batch_size: int = 32, threads: int | None = None,
                     device: str | None = None) -> dict:
    """Encode one batch on whichever worker runs it (the model loads once per worker process)."""
    report = embed_batch(items, data_dir, model, runtime, batch_size, threads, device)
    for failed in report["failed"]:
        get_run_logger().warning("skipped %s", failed["reason"])
    return report
