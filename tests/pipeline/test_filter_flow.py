"""The filter and expand-dataset flows under the session's Prefect test harness (conftest)."""
from __future__ import annotations

from pathlib import Path

from tests.helpers import filter_inputs as inputs

SHOE = "Converse_High_Yellow_Plain Sole_Chuck 70 Sunflower"


def _crawl_folder(root: Path) -> Path:
    shoe = root / SHOE
    for i, colour in enumerate([(200, 30, 30), (30, 160, 60), (40, 40, 200), (230, 190, 30)]):
        inputs.photo(shoe / f"p{i}.jpg", color=colour, seed=i)
    (shoe / "p0 copy.jpg").write_bytes((shoe / "p0.jpg").read_bytes())
    inputs.html_as_jpg(shoe / "error page.jpg")
    return root


def test_filter_flow_runs_batched_tasks(prefect_harness, tmp_path, data_dir, tiny_model):
    from prefect.client.orchestration import get_client

    from flows.curate import filter_flow
    crawl = _crawl_folder(tmp_path / "crawl")
    state = filter_flow(str(crawl), str(data_dir), model=tiny_model, batch_size=2, return_state=True)
    assert state.is_completed(), state.message
    s = state.result()
    assert s["files"] == 6 and s["exact_duplicates"] == 1 and s["new"] == 5
    assert s["rejected_by_rule"].get("unreadable") == 1
    assert "RANDOM" in s["semantic"]
    # the summary matches what was stored: queue rows and the copies on disk, status by status
    from shoefind.curate.queue import ReviewQueue
    queue = ReviewQueue(data_dir)
    counts = queue.counts()
    assert (counts["accepted"], counts["rejected"], counts["review"]) == (s["accepted"], s["rejected"], s["queued"])
    assert s["rejected"] >= 1 and counts["accepted"] + counts["rejected"] + counts["review"] == 5
    on_disk = {status: sum(1 for p in (queue.root / status).glob("*") if p.is_file())
               for status in ("rejected", "review")}
    assert on_disk == {"rejected": s["rejected"], "review": s["queued"]}
    assert sum(1 for p in queue.dataset_dir.rglob("*") if p.is_file()) == s["accepted"]

    import anyio

    async def task_names():
        async with get_client() as client:
            runs = await client.read_task_runs()
            return [r.name for r in runs if r.flow_run_id == state.state_details.flow_run_id]
    names = anyio.run(task_names)
    # 6 files in batches of 2: 3 hash tasks; 5 new images: 3 check tasks - never one task per image
    assert sum(n.startswith("hash-files") for n in names) == 3
    assert sum(n.startswith("check-images") for n in names) == 3
    again = filter_flow(str(crawl), str(data_dir), model=tiny_model, batch_size=2)
    assert again["new"] == 0 and again["queued"] == 0


def test_filter_flow_on_a_missing_folder_fails_with_the_reason(prefect_harness, tmp_path, data_dir):
    from flows.curate import filter_flow
    state = filter_flow(str(tmp_path / "nowhere"), str(data_dir), model="none", return_state=True)
    assert state.is_failed() and "does not exist" in state.message


def test_expand_flow_continues_when_the_crawl_fails(prefect_harness, tmp_path, data_dir, tiny_model):
    from flows.expand import expand_dataset_flow
    _crawl_folder(data_dir / "inbox")
    s = expand_dataset_flow(shoes=str(tmp_path / "shoes.yaml"), data_dir=str(data_dir), model=tiny_model)
    assert s["stages"]["crawl"].startswith("failed") and "shoes.yaml" in s["stages"]["crawl"]
    assert s["new"] == 5 and s["exact_duplicates"] == 1 and s["rejected_by_rule"]["unreadable"] == 1
    assert s["accepted"] + s["queued"] == 4
    # a person accepts what was queued; the next run builds the table and embeds the dataset
    from shoefind.curate.queue import ReviewQueue
    queue = ReviewQueue(data_dir)
    for item in queue.items("review"):
        queue.decide(item.id, "accept")
    s = expand_dataset_flow(data_dir=str(data_dir), model=tiny_model)
    assert s["new"] == 0 and s["stages"]["crawl"].startswith("skipped")
    assert s["stages"]["table"].startswith("done"), s["stages"]
    assert s["stages"]["embed"].startswith("done: 4 encoded"), s["stages"]
    assert len(list((data_dir / "images" / SHOE).iterdir())) == 4


def test_expand_flow_records_a_failed_crawl_and_filters_the_inbox(prefect_harness, tmp_path, data_dir):
    from flows.expand import expand_dataset_flow
    _crawl_folder(data_dir / "inbox")
    # a shoe list that does not exist: the crawl fails at once (as it would offline, only slower)
    s = expand_dataset_flow(shoes=str(tmp_path / "missing.yaml"), data_dir=str(data_dir), model="none")
    assert s["stages"]["crawl"].startswith("failed")
    assert s["stages"]["filter"].startswith("done") and s["new"] == 5
    assert s["queued"] == 4 and s["review_waiting"] == 4        # without a model: review (rules)
    assert "4 images wait" in s["stages"]["review"]
    assert "no images yet" in s["stages"]["table"]
