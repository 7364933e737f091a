"""Embedding on a Dask cluster through Prefect: same results as one process, safe shared cache."""
from __future__ import annotations

import hashlib
import json
import time

import numpy as np
import pandas as pd
import prefect_dask  # noqa: F401  requirements.txt installs it: missing, the set-up is broken (no skip)
import pytest

from shoefind.features.cache import EmbeddingCache
from shoefind.encoders.load import load_model
from shoefind.stages.features import split

from tests.helpers import make_labeled_dataset


@pytest.fixture(scope="module")
def dask_cluster():
    """A running 2-worker cluster (processes, loopback), used by address like a remote one."""
    from distributed import LocalCluster
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0") as cluster:
        yield cluster


def sha(name: str) -> str:
    """A real sha256 for a test name (the cache refuses shards whose keys are not sha256s)."""
    return hashlib.sha256(name.encode()).hexdigest()


def write_shards(cache_dir: str, key: str, worker: int, start_at: float, shards: int = 30) -> int:
    """Add many small shards, half of their hashes shared with the other writer."""
    import os
    time.sleep(max(0.0, start_at - time.time()))  # both writers start together
    cache = EmbeddingCache(cache_dir, key)
    for i in range(shards):
        shas = [sha(f"shared-{i}-{j}") for j in range(3)] + [sha(f"w{worker}-{i}-{j}") for j in range(3)]
        cache.add(shas, np.stack([expected_vector(s) for s in shas]))
        cache.refresh()  # reading while the other writes, as embed_images does
    return os.getpid()


def expected_vector(sha: str) -> np.ndarray:
    seed = int(hashlib.sha256(sha.encode()).hexdigest()[:8], 16)  # same in every process, unlike hash()
    return np.random.default_rng(seed).standard_normal(8).astype(np.float32)


def test_two_workers_writing_one_cache_lose_nothing(dask_cluster, tmp_path):
    from distributed import Client
    with Client(dask_cluster) as client:
        start = time.time() + 2
        futures = [client.submit(write_shards, str(tmp_path), "k|v1", w, start, pure=False) for w in (0, 1)]
        pids = client.gather(futures)
    assert len(set(pids)) == 2, "both writers must be separate worker processes"
    cache = EmbeddingCache(tmp_path, "k|v1")
    expected = [sha(f"shared-{i}-{j}") for i in range(30) for j in range(3)] + \
        [sha(f"w{w}-{i}-{j}") for w in (0, 1) for i in range(30) for j in range(3)]
    assert len(cache) == len(expected) and not cache.missing(expected)
    np.testing.assert_array_equal(cache.matrix(expected), np.stack([expected_vector(s) for s in expected]))
    assert not list(cache.dir.glob(".*.tmp")), "no temporary file is left behind"


def test_embed_on_a_running_cluster_loads_the_model_once_per_worker(dask_cluster, tiny_model, prefect_harness,
                                                                     tmp_path):
    from flows.features import embed_flow
    dataset = make_labeled_dataset(tmp_path / "images", n_per_shoe=6)
    # exact runtime: onnx-int8 (auto on CPUs without bf16) quantises each batch's activations, so its
    # vectors depend on the batching, and this test is about the cluster, not the runtime
    result = embed_flow(str(dataset), str(tmp_path / "data"), model=tiny_model, batch_size=2,
                        cluster=dask_cluster.scheduler_address, runtime="torch")
    assert (result["total"], result["encoded"], result["failed"]) == (24, 24, [])
    assert len(result["workers"]) == 2, "both workers took batches"
    assert set(result["model_loads"].values()) == {1}, "one model load per worker process, not per batch"
    # same vectors as this process computes, every entry intact although two workers wrote at once
    enc = load_model(tiny_model, runtime="torch")
    table = pd.read_csv(tmp_path / "data" / "tables" / "images" / "images.csv")
    cache = EmbeddingCache(tmp_path / "data" / "embeddings", enc.cache_key)
    np.testing.assert_allclose(cache.matrix(table.sha256.tolist()),
                               enc.encode_images([str(dataset / p) for p in table.path]), atol=1e-5)
    again = embed_flow(str(dataset), str(tmp_path / "data"), model=tiny_model, cluster=dask_cluster.scheduler_address,
                       runtime="torch")
    assert (again["encoded"], again["cached"], again["workers"]) == (0, 24, [])


def test_evaluate_on_local_dask_cluster_equals_single_process(tiny_model, prefect_harness, tmp_path):
    from typer.testing import CliRunner

    from shoefind.cli.main import app
    from flows.evaluate import evaluate_flow
    dataset = make_labeled_dataset(tmp_path / "images", n_per_shoe=4)
    single = evaluate_flow(str(dataset), str(tmp_path / "single"), model=tiny_model, batch_size=2)
    res = CliRunner().invoke(app, ["evaluate", str(dataset), "--model", tiny_model, "--data-dir", str(tmp_path / "dask"),
                                   "--batch-size", "2", "--cluster", "local:2", "--json"])
    assert res.exit_code == 0, res.output
    [on_dask] = (tmp_path / "dask" / "runs").glob("*-evaluate-images")
    metrics = [json.loads((tmp_path / d / "metrics.json").read_text())["metrics"] for d in (single, on_dask)]
    assert [m["task"] for m in metrics[0]] == [m["task"] for m in metrics[1]]
    for a, b in zip(*metrics):
        assert a == pytest.approx(b, abs=1e-6)
    preds = [pd.read_csv(tmp_path / d / "predictions.csv") for d in (single, on_dask)]
    text = [c for c in preds[0].columns if preds[0][c].dtype == object]
    pd.testing.assert_frame_equal(preds[0][text], preds[1][text])
    pd.testing.assert_frame_equal(preds[0].drop(columns=text), preds[1].drop(columns=text), atol=1e-5)


def test_split_and_cluster_names():
    from shoefind.cluster import local_workers, worker_threads
    from shoefind.stages.features import task_size
    assert split(list(range(5)), 2) == [[0, 1], [2, 3], [4]] and split([], 3) == []
    assert local_workers("local:3") == 3 and local_workers("tcp://scheduler:8786") is None
    with pytest.raises(ValueError):
        local_workers("local:0")
    assert worker_threads("tcp://s:8786", None) is None and worker_threads("local:2", 4) == 4
    assert task_size(24, 2) == 3 and task_size(100_000, 32) == 256 and task_size(5, 32) == 32


def test_cli_refuses_unknown_runtime_and_cluster(prefect_harness, tmp_path):
    from typer.testing import CliRunner

    from shoefind.cli.main import app
    dataset = make_labeled_dataset(tmp_path / "images", n_per_shoe=1)
    res = CliRunner().invoke(app, ["embed", str(dataset), "--runtime", "tensorrt"])
    assert res.exit_code == 2 and "onnx-int8" in res.output
    res = CliRunner().invoke(app, ["embed", str(dataset), "--data-dir", str(tmp_path / "d"), "--cluster", "local:0"])
    assert res.exit_code == 2 and "local:N" in res.output


def test_map_batches_runs_any_batch_task_in_order(prefect_harness):
    from prefect import flow, task

    from flows.cluster import on_cluster
    from tasks.common import map_batches

    @task
    def total(batch: list[int], offset: int) -> int:
        return sum(batch) + offset

    @flow
    def totals(items: list[int]) -> list:
        return map_batches(total, split(items, 3), offset=100)

    assert on_cluster(totals, None)(list(range(10))) == [103, 112, 121, 109]
    assert on_cluster(totals, None)([]) == []
