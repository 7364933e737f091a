"""crawl: shoes (catalog CSV or YAML list) -> image search -> dataset folders + manifest + report."""
from __future__ import annotations

from pathlib import Path

from prefect import flow, unmapped
from prefect.task_runners import ThreadPoolTaskRunner

from shoefind.settings import data_dir as resolve_data_dir
from shoefind.crawl.targets import TargetError, queries_for, read_catalog, read_shoe_list
from tasks.crawl import (check_search_engine, crawl_batch, publish_crawl_report, query_from_dict,
                         query_to_dict)

from .guard import stop


# Each batch runs its own Chromium: two at a time is what a small machine takes.
@flow(name="crawl", task_runner=ThreadPoolTaskRunner(max_workers=2))
def crawl_flow(catalog: str | None = None, shoes: str | None = None, per_query: int = 20,
               engine: str = "google", data_dir: str | None = None, dataset: str | None = None,
               batch_size: int = 5, base_url: str | None = None, settings: dict | None = None,
               retries: int = 2) -> list[dict]:
    """Map batches of queries over crawl tasks; returns one report row per query.

    settings: crawl_settings() keys (read_timeout, preview_timeout, concurrency, ...).
    retries: of the network tasks (reachability check, each batch); a retried batch resumes.
    """
    data_dir = str(resolve_data_dir(data_dir))
    # crawled images are unfiltered: they wait in the inbox until `filter` accepts them
    dataset = str(Path(dataset).resolve() if dataset else Path(data_dir) / "inbox")
    if bool(catalog) == bool(shoes):
        return stop("give either catalog (CSV) or shoes (YAML list), not both or neither")
    try:
        targets = read_catalog(catalog) if catalog else read_shoe_list(shoes)
    except TargetError as exc:
        return stop(str(exc))
    queries = [query_to_dict(q) for q in queries_for(targets)]
    if not queries:
        return stop("no shoes to crawl")
    reachable = check_search_engine.with_options(retries=retries)(engine, base_url, return_state=True)
    if not reachable.is_completed():
        return stop(str(reachable.result(raise_on_failure=False)))
    settings = {**(settings or {}), "per_query": per_query}
    batches = [queries[i:i + batch_size] for i in range(0, len(queries), max(1, batch_size))]
    futures = crawl_batch.with_options(retries=retries).map(batches, unmapped(engine), unmapped(dataset), unmapped(data_dir),
                              base_url=unmapped(base_url), settings=unmapped(settings))
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
