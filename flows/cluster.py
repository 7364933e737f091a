"""Where a flow's tasks run: threads in this process (default) or a Dask cluster.

`cluster` is `local:N` (start N worker processes on this machine, loopback only, for the
length of the flow), `local` (one per core), or the address of a running scheduler
(`tcp://scheduler:8786`). Choose at call time: `on_cluster(some_flow, cluster)(...)`.
"""
from __future__ import annotations

import os

LOCAL = "local"


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def local_workers(cluster: str) -> int | None:
    """N for `local:N` (cores for plain `local`), None for a scheduler address."""
    if cluster == LOCAL:
        return cpu_count()
    if not cluster.startswith(LOCAL + ":"):
        return None
    n = cluster.split(":", 1)[1]
    if not n.isdigit() or int(n) < 1:
        raise ValueError(f"cluster '{cluster}': expected local:N with N >= 1 workers")
    return int(n)


def check_cluster(cluster: str) -> str:
    """cluster itself, or ValueError saying what a cluster looks like."""
    if local_workers(cluster) is None and ":" not in cluster:
        raise ValueError(f"cluster '{cluster}': expected local:N or a scheduler address like tcp://host:8786")
    return cluster


def dask_task_runner(cluster: str):
    """A prefect-dask task runner for `cluster` (see the module doc)."""
    from prefect_dask import DaskTaskRunner
    n = local_workers(check_cluster(cluster))
    if n is None:
        return DaskTaskRunner(address=cluster)
    # processes, not threads: the model and torch/ORT thread pools stay per worker, and the
    # GIL is not shared. Loopback only; the scheduler's HTTP port is picked free (its default, 8787,
    # would clash between concurrent runs).
    return DaskTaskRunner(cluster_class="distributed.LocalCluster",
                          cluster_kwargs={"n_workers": n, "threads_per_worker": 1, "processes": True,
                                          "host": "127.0.0.1", "dashboard_address": "127.0.0.1:0"})


def worker_threads(cluster: str, threads: int | None) -> int | None:
    """Compute threads per worker: as asked, else this machine's cores shared among local workers.

    Dask sets OMP_NUM_THREADS=1 in its workers; for a remote cluster pass --threads to use more.
    """
    if threads:
        return threads
    n = local_workers(cluster)
    return max(1, cpu_count() // n) if n else None


def on_cluster(flow_obj, cluster: str | None):
    """flow_obj itself without a cluster, else a copy whose tasks run on that Dask cluster."""
    if not cluster:
        return flow_obj
    return flow_obj.with_options(task_runner=dask_task_runner(cluster))
