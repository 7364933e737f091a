"""crawl: shoes (catalog CSV or YAML list) -> image search -> dataset folders + manifest + report."""
from __future__ import annotations

from pathlib import Path

from typing import Annotated

from prefect import flow, unmapped
from pydantic import Field
from prefect.task_runners import ThreadPoolTaskRunner

from shoefind.crawl.targets import crawl_queries
from shoefind.settings import layout
from tasks.crawl import (check_search_engine, crawl_batch, publish_crawl_report, query_from_dict,
                         query_to_dict)

from .common import CrawlCatalog, DataDir, Engine, Inbox, PerQuery, ShoeList, fails_clearly, given, stop


# Each batch runs its own Chromium: two at a time is what a small machine takes.
@flow(name="crawl", task_runner=ThreadPoolTaskRunner(max_workers=2))
@fails_clearly
def crawl_flow(catalog: CrawlCatalog = "", shoes: ShoeList = "", per_query: PerQuery = 20,
               engine: Engine = "google", data_dir: DataDir = "", dataset: Inbox = "",
               batch_size: Annotated[int, Field(ge=1, title="queries per task",
                                                description="Queries crawled by one task (one browser).")] = 5,
               base_url: Annotated[str, Field(title="base URL", description="Override the engine's base URL "
                                              "(a local test site). Empty: the engine's own.")] = "",
               settings: Annotated[dict, Field(title="crawl settings", description="crawl_settings() keys: "
                                               "read_timeout, preview_timeout, concurrency, ...")] = {},
               retries: Annotated[int, Field(ge=0, title="retries", description="Of the network tasks (the "
                                             "reachability check, each batch); a retried batch resumes.")] = 2,
               ) -> list[dict]:
    """Crawl image search for the shoes into the inbox, one batch of queries per task; returns one report
    row per query."""
    lay = layout(given(data_dir))
    data_dir = str(lay.root)
    # crawled images are unfiltered: they wait in the inbox until `filter` accepts them
    dataset = str(Path(dataset).expanduser().resolve() if dataset else lay.inbox)
    queries = [query_to_dict(q) for q in crawl_queries(given(catalog), given(shoes))]
    reachable = check_search_engine.with_options(retries=retries)(engine, given(base_url), return_state=True)
    if not reachable.is_completed():
        return stop(str(reachable.result(raise_on_failure=False)))
    settings = {**(settings or {}), "per_query": per_query}
    batches = [queries[i:i + batch_size] for i in range(0, len(queries), max(1, batch_size))]
    futures = crawl_batch.with_options(retries=retries).map(batches, unmapped(engine), unmapped(dataset), unmapped(data_dir),
                              base_url=unmapped(given(base_url)), settings=unmapped(settings))
    rows, errors = [], []
    for batch, future in zip(batches, futures):
        future.wait()
        if future.state.is_completed():
            rows.extend(future.result())
        else:
            reason = future.state.message or "batch failed"
            errors.append(reason)
            rows.extend({"query": q["text"], "shoe": query_from_dict(q).shoe.folder, "target": per_query, "already": 0, "found": 0,
                         "downloaded": 0, "skipped": 0, "failed": 0, "complete": False,
                         "reasons": f"batch failed: {reason}"} for q in batch)
    publish_crawl_report(rows, dataset)
    if errors:
        return stop(f"{len(errors)} of {len(batches)} crawl batches failed: {errors[0]}")
    return rows


if __name__ == "__main__":
    crawl_flow()
