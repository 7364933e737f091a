"""embed: feature table -> cached CLIP embeddings (only images not seen before are encoded)."""
from __future__ import annotations

from prefect import flow

from shoefind.checks import dataset_problem, model_problem
from shoefind.features.stage import with_table_unreadable
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
    return with_table_unreadable(result, table_dir) | {"table": table_dir}


if __name__ == "__main__":
    embed_flow()
