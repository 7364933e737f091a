"""expand-dataset: crawl -> filter -> (review queue) -> feature table -> embedding cache.

Each stage that cannot run (crawler not installed, offline, no model, nothing accepted yet)
is recorded in the summary and the next stage still runs on what there is: the filter works
on whatever the inbox holds. A person's review is not waited for; queued images join the
dataset on a later run, once accepted.
"""
from __future__ import annotations

from pathlib import Path

from typing import Annotated

from prefect import flow, get_run_logger
from pydantic import Field
from prefect.artifacts import create_markdown_artifact

from shoefind.curate.queue import ReviewQueue
from shoefind.settings import layout

from .common import BatchSize, CrawlCatalog, DataDir, Engine, FilterModel, Inbox, PerQuery, ShoeList, given
from .crawl import crawl_flow
from .curate import filter_flow
from .features import build_table_flow, embed_flow


def _failed_message(state) -> str:
    return state.message or type(state).__name__


def _run_crawl(stages: dict, catalog, shoes, inbox, data_dir, per_query, engine, base_url, settings) -> None:
    if not (catalog or shoes):
        stages["crawl"] = "skipped: no catalog or shoe list given; filtering what the inbox holds"
        return
    try:
        state = crawl_flow(catalog=catalog, shoes=shoes, per_query=per_query, engine=engine, data_dir=data_dir,
                           dataset=inbox, base_url=base_url, settings=settings, return_state=True)
    except Exception as exc:  # a crawler bug must not cost the images already in the inbox
        stages["crawl"] = f"failed ({type(exc).__name__}: {exc}); filtering what the inbox holds"
        return
    if state.is_completed():
        rows = state.result()
        stages["crawl"] = f"done: {sum(r.get('downloaded', 0) for r in rows)} images downloaded for {len(rows)} queries"
    else:
        stages["crawl"] = f"failed ({_failed_message(state)}); filtering what the inbox holds"


def _subflow(stages: dict, stage: str, fn, **kwargs):
    """Run a sibling flow; record how it went."""
    state = fn(**kwargs, return_state=True)
    if not state.is_completed():
        stages[stage] = f"failed: {_failed_message(state)}"
        return None
    result = state.result()
    stages[stage] = "done"
    return result


@flow(name="expand-dataset")
def expand_dataset_flow(catalog: CrawlCatalog = "", shoes: ShoeList = "", data_dir: DataDir = "", inbox: Inbox = "",
                        model: FilterModel = "", per_query: PerQuery = 20, engine: Engine = "google",
                        base_url: Annotated[str, Field(title="base URL", description="Override the engine's "
                                                       "base URL (a local test site). Empty: the engine's own.")] = "",
                        settings: Annotated[dict, Field(title="crawl settings", description="crawl_settings() "
                                                        "keys: read_timeout, concurrency, ...")] = {},
                        batch_size: BatchSize = 64) -> dict:
    """crawl -> filter -> review queue -> feature table -> embeddings; a summary artifact per run.
    The inbox is where the crawl puts new images and the filter reads them."""
    log = get_run_logger()
    lay = layout(given(data_dir))
    data_dir = str(lay.root)
    inbox = str(Path(inbox).expanduser().resolve() if inbox else lay.inbox)
    dataset = str(lay.images)
    stages: dict[str, str] = {}

    _run_crawl(stages, catalog, shoes, inbox, data_dir, per_query, engine, base_url, settings)

    filtered = None
    if Path(inbox).is_dir():
        state = filter_flow(folder=inbox, data_dir=data_dir, model=model, batch_size=batch_size, return_state=True)
        if state.is_completed():
            filtered = state.result()
            stages["filter"] = (f"done: {filtered['new']} new, {filtered['accepted']} accepted, "
                                f"{filtered['rejected']} rejected, {filtered['queued']} queued")
        else:
            stages["filter"] = f"failed: {_failed_message(state)}"
    else:
        stages["filter"] = f"skipped: inbox {inbox} does not exist"

    waiting = ReviewQueue(data_dir).counts()["review"]
    stages["review"] = (f"{waiting} image{'s wait' if waiting > 1 else ' waits'} for a person: run `shoefind review`"
                        if waiting else "nothing waits for review")

    if Path(dataset).is_dir() and any(Path(dataset).iterdir()):
        table_dir = _subflow(stages, "table", build_table_flow, dataset=dataset, data_dir=data_dir)
        if table_dir:
            stages["table"] = f"done: {table_dir}"
        embedded = _subflow(stages, "embed", embed_flow, dataset=dataset, data_dir=data_dir, model=model or "")
        if embedded:
            stages["embed"] = (f"done: {embedded.get('encoded', 0)} encoded, {embedded.get('cached', 0)} already cached "
                               f"({embedded.get('model', '?')})")
    else:
        stages["table"] = stages["embed"] = f"skipped: the dataset {dataset} has no images yet"

    summary = {
        "new": filtered["new"] if filtered else 0,
        "accepted": filtered["accepted"] if filtered else 0,
        "rejected": filtered["rejected"] if filtered else 0,
        "rejected_by_rule": filtered["rejected_by_rule"] if filtered else {},
        "queued": filtered["queued"] if filtered else 0,
        "exact_duplicates": filtered["exact_duplicates"] if filtered else 0,
        "near_duplicate_groups": len(filtered["near_duplicate_groups"]) if filtered else 0,
        "review_waiting": waiting, "stages": stages, "inbox": inbox, "dataset": dataset,
    }
    for stage, note in stages.items():
        log.info("%s: %s", stage, note)
    create_markdown_artifact(expand_markdown(summary), key="expand-dataset-summary",
                             description="dataset expansion run")
    return summary


def expand_markdown(s: dict) -> str:
    lines = ["# Dataset expansion", "", "| | count |", "|---|---|"]
    for key in ("new", "accepted", "rejected", "queued", "exact_duplicates", "near_duplicate_groups",
                "review_waiting"):
        lines.append(f"| {key.replace('_', ' ')} | {s[key]} |")
    if s["rejected_by_rule"]:
        lines += ["", "Rejected by rule:", ""] + [f"- {r}: {n}" for r, n in s["rejected_by_rule"].items()]
    lines += ["", "Stages:", ""] + [f"- **{k}**: {v}" for k, v in s["stages"].items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    expand_dataset_flow()
