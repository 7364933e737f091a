"""The learning loop end to end: the expand-dataset flow, through a real (temporary) Prefect server, crawls
the offline search source with the real crawler (Chromium), the current model triages what it brings, the
dataset's learner is retrained, scored on the fixed held-out split and promoted, and the promoted model
answers what still waits for a person; `infer` then answers with the new model. The run's summary artifact shows the scores before and after, what the model decided and
the plot of held-out top-1 across runs. A photo a person files between runs is learned at the start of the
next run, before its model judges anything."""
from __future__ import annotations

import asyncio
import json
import shutil

import pytest

from shoefind.curate.queue import ReviewQueue
from shoefind.features.table import build_table
from shoefind.registry.heldout import heldout_share
from shoefind.registry.store import ModelRegistry
from tests.helpers.cli import shoefind
from tests.helpers.loop_photos import shoe_dataset
from tests.helpers.search_source import SearchSource, load_truth, write_pool_catalog

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (shutil.which("chromium") and shutil.which("chromedriver")),
                                 reason="needs chromium and chromedriver (apt-get install chromium chromium-driver)")]
MODEL = "efficientnet-lite0"
SETTINGS = dict(allow_loopback=True, read_timeout=10, results_timeout=10, preview_timeout=5, scroll_timeout=2,
                per_host_interval=0, poll_interval=0.05, concurrency=2)


async def _summary_artifact() -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort
    async with get_client() as client:                 # the latest run's: one version per run under the key
        found = await client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=["expand-dataset-summary"])), sort=ArtifactSort.CREATED_DESC)
    return found[0].data


def _infer(photo, data_dir) -> dict:
    code, out, err = shoefind("infer", photo, "--dataset", data_dir / "images", "--data-dir", data_dir, "--json")
    assert code == 0, err
    return json.loads(out)["answers"][0]


def test_an_expansion_run_triages_retrains_promotes_and_infer_follows(prefect_harness, tmp_path):
    from flows.expand import expand_dataset_flow
    pool = shoe_dataset(tmp_path / "pool", per_shoe=14)
    table = build_table(pool)
    held_by = heldout_share(table.images)
    held = table.images[held_by != ""]
    data_dir, heldout = tmp_path / "data", tmp_path / "heldout"
    for rel in held["path"]:
        (heldout / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(pool / rel, heldout / rel)
    rest = table.images[held_by == ""]
    seeds = [rel for _, group in rest.groupby("shoe") for rel in sorted(group["path"])[:3]]
    for rel in seeds:
        (data_dir / "images" / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(pool / rel, data_dir / "images" / rel)
    catalog = tmp_path / "catalog.csv"
    write_pool_catalog(pool, catalog)

    # the first run: no crawl yet, the dataset is registered (held-out split fixed) and its first model promoted
    first = expand_dataset_flow(data_dir=str(data_dir), model="none", learner_model=MODEL, heldout=str(heldout))
    assert first["model"]["model"] == "m0001" and first["model"]["promoted"], first["stages"]
    registry = ModelRegistry(data_dir, data_dir / "images")
    assert registry.config()["heldout"]["photos"] == len(held)
    query = heldout / held["path"].iloc[0]
    before = _infer(query, data_dir)
    assert before["method"] == "current: linear-probe m0001"

    truth_file = tmp_path / "truth.jsonl"
    with SearchSource(pool, results_per_query=16, seed=0, exclude=[pool / p for p in list(held["path"]) + seeds],
                      truth_path=truth_file) as source:
        second = expand_dataset_flow(catalog=str(catalog), per_query=8, engine="localtest", base_url=source.base_url,
                                     settings=SETTINGS, data_dir=str(data_dir), model="none")
    stages = second["stages"]
    assert stages["crawl"].startswith("done"), stages
    assert "triage with model m0001" in stages["filter"], stages
    trained = second["model"]
    assert (trained["model"], trained["promoted"], trained["previous"]) == ("m0002", True, "m0001"), stages
    assert trained["before"]["top1"] == first["model"]["heldout"]["top1"]
    assert trained["train_photos"] > first["model"]["train_photos"]
    assert second["auto_accepted"] >= 1
    # what the model accepted is labeled right (the source's ground truth)
    truth = load_truth(truth_file)
    auto = [i for i in ReviewQueue(data_dir).items("accepted") if (i.decided_by or "").startswith("model:")]
    assert len(auto) == second["auto_accepted"]
    assert all(truth[i.sha256].truth is not None and truth[i.sha256].truth == i.folder for i in auto)
    # m0002, promoted, answered what still waited before the run ended: a person finds only what it left
    assert "triage after promotion" in stages and "triage with model m0002" in stages["triage after promotion"]
    settled = second["waiting_triaged_after_promotion"]
    assert settled["asked"] >= 1 and settled["still_waiting"] <= second["review_waiting"]
    queued = ReviewQueue(data_dir).items("review")
    assert all(i.guesses and i.triaged_by == "m0002" for i in queued if i.rule and i.rule.startswith("triage:"))

    after = _infer(query, data_dir)
    assert after["method"] == "current: linear-probe m0002"
    assert [s["probability"] for s in after["top_shoes"]] != [s["probability"] for s in before["top_shoes"]]

    markdown = asyncio.run(_summary_artifact())
    assert "## The model" in markdown and "m0002" in markdown and "standard error" in markdown
    assert "data:image/png;base64," in markdown and "| auto accepted |" in markdown
    assert list((data_dir / "runs").glob("*-expand/heldout_top1.png"))

    # a person files a waiting photo between runs: the next run learns it before its model judges anything
    queue = ReviewQueue(data_dir)
    waiting = [i for i in queue.items("review") if truth.get(i.sha256) and truth[i.sha256].truth]
    assert waiting, "the crawl left nothing for a person"
    queue.decide(waiting[0].id, "accept", reviewer="alice", label=truth[waiting[0].sha256].truth)
    third = expand_dataset_flow(data_dir=str(data_dir), model="none")
    caught_up = third["model_before_triage"]
    assert caught_up["trained"] and caught_up["model"] == "m0003", third["stages"]
    assert caught_up["train_photos"] == trained["train_photos"] + settled["auto_accepted"] + 1
    if "triage" in third["stages"]:     # photos still wait: the caught-up model judged them
        assert f"triage with model {caught_up['current']}" in third["stages"]["triage"], third["stages"]
    # nothing changed after it: the end of the run trains nothing new
    assert not third["model"]["trained"]
