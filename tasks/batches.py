"""Running one task over many batches on the flow's task runner (threads here, or Dask).

Any flow can use this: split the work into batches, map a batch task over them, and choose
where they run with `flows.cluster.on_cluster(flow, cluster)` at call time. Keep batch
parameters small (paths, hashes): they travel to the workers.
"""
from __future__ import annotations

from typing import Sequence, TypeVar

from prefect import Task, unmapped

T = TypeVar("T")


def split(items: Sequence[T], size: int) -> list[list[T]]:
    """Consecutive batches of at most `size` items."""
    if size < 1:
        raise ValueError(f"batch size must be at least 1, not {size}")
    return [list(items[i:i + size]) for i in range(0, len(items), size)]


def map_batches(batch_task: Task, batches: Sequence[Sequence], **shared) -> list:
    """Run batch_task(batch, **shared) for every batch on the current task runner; results in order.

    Waits for all batches before raising the first failure, so finished batches are not
    abandoned mid-write.
    """
    if not batches:
        return []
    futures = batch_task.map(list(batches), **{k: unmapped(v) for k, v in shared.items()})
    futures.wait()
    return futures.result()
