"""Task: build and save the feature table of a dataset folder."""
from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from shoefind.features.table import build_table, count_images, table_dir_for

from .progress import progress_bar


@task(name="build-feature-table", cache_policy=NO_CACHE)
def build_feature_table(dataset: str, data_dir: str, catalog: str | None = None, strict: bool = False) -> str:
    """Read the labeled folder, save shoes/images/issues CSVs; returns the table folder."""
    log = get_run_logger()
    with progress_bar("reading images", count_images(dataset)) as advance:
        table = build_table(dataset, catalog=catalog, progress=advance)
    out = table.save(table_dir_for(Path(data_dir), dataset))
    for issue in table.issues:
        log.warning(str(issue))
    if table.issues:
        create_table_artifact([{"kind": i.kind, "where": i.where, "message": i.message} for i in table.issues],
                              key="feature-table-issues", description=f"Problems found in {dataset}")
    log.info("%s: %d shoes, %d images, %d issues -> %s", dataset, len(table.shoes), len(table.images),
             len(table.issues), out)
    if strict and table.issues:
        raise ValueError(f"{len(table.issues)} problems in {dataset} (strict): see the warnings above or {out}/issues.csv")
    return str(out)
