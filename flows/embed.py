"""embed: feature table -> cached CLIP embeddings (only images not seen before are encoded)."""
from __future__ import annotations

from prefect import flow

from shoefind.checks import dataset_problem, model_problem
from shoefind.settings import data_dir as resolve_data_dir
from tasks.embed import embed_table_images

from .build_table import build_table_flow, dataset_path
from .cluster import on_cluster, worker_threads
from .embed_batches import embed_batches_flow
from .guard import stop


@flow(name="embed")
def embed_flow(dataset: str | None = None, data_dir: str | None = None, model: str | None = None,
               catalog: str | None = None, batch_size: int = 32, threads: int | None = None,
               cluster: str | None = None, runtime: str | None = None) -> dict:
    """cluster: None (this process), local:N or a Dask scheduler address; runtime: torch|onnx|onnx-int8."""
    data_dir = str(resolve_data_dir(data_dir))
    dataset = dataset_path(dataset, data_dir)
    if problem := dataset_problem(dataset) or model_problem(model):
        return stop(problem)
    table_dir = build_table_flow(dataset, data_dir, catalog=catalog)
    if cluster:
        result = on_cluster(embed_batches_flow, cluster)(
            table_dir, data_dir, model=model, runtime=runtime, batch_size=batch_size,
            threads=worker_threads(cluster, threads))
    else:
        result = embed_table_images(table_dir, data_dir, model=model, batch_size=batch_size, threads=threads,
                                    runtime=runtime)
    return _with_table_unreadable(result, table_dir) | {"table": table_dir}


def _with_table_unreadable(result: dict, table_dir: str) -> dict:
    """Count the images the table step found unreadable too, so the summary's unreadable
    count is what issues.csv lists (they never reach the encoder)."""
    from pathlib import Path

    from shoefind.features.table import load_table
    table = load_table(table_dir)
    known = {f["path"] for f in result["failed"]}
    unreadable = [{"path": str(Path(table.root) / i.where), "reason": i.message} for i in table.issues
                  if i.kind == "unreadable-image" and str(Path(table.root) / i.where) not in known]
    return result | {"total": result["total"] + len(unreadable), "failed": unreadable + list(result["failed"])}


if __name__ == "__main__":
    embed_flow()
