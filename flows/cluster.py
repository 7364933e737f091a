"""Where a flow's tasks run: threads in this process (default) or a Dask cluster.

The cluster string is parsed by shoefind.cluster (local:N, local, or a scheduler address); choose at
call time: `on_cluster(some_flow, cluster)(...)`.
"""
from __future__ import annotations

from shoefind.cluster import check_cluster, local_workers


def dask_task_runner(cluster: str):
    """A prefect-dask task runner for `cluster`."""
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


def on_cluster(flow_obj, cluster: str | None):
    """flow_obj itself without a cluster, else a copy whose tasks run on that Dask cluster."""
    if not cluster:
        return flow_obj
    return flow_obj.with_options(task_runner=dask_task_runner(cluster))
