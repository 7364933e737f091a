"""Tasks of the crawl: a batch of queries per task (one browser each), and the report artifact."""
from __future__ import annotations

from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from shoefind.crawl.collect import crawl, crawl_settings
from shoefind.crawl.targets import Query, Shoe
from shoefind.crawl.search_page import SearchEngine


def query_to_dict(query: Query) -> dict:
    s = query.shoe
    return {"text": query.text, "shoe": {"name": s.name, "brand": s.brand, "color": s.color,
                                         "hightop": s.hightop, "sole": s.sole, "queries": list(s.queries)}}


def query_from_dict(d: dict) -> Query:
    shoe = dict(d["shoe"])
    shoe["queries"] = tuple(shoe.get("queries") or ())
    return Query(d["text"], Shoe(**shoe))


@task(name="check-search-engine", retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE)
def check_search_engine(engine: str, base_url: str | None = None) -> None:
    """Fails (after retries) with one clear message when the search page is unreachable."""
    SearchEngine.from_rules(engine, base_url).check_reachable()


@task(name="crawl-batch", retries=2, retry_delay_seconds=10, cache_policy=NO_CACHE)
def crawl_batch(queries: list[dict], engine: str, dataset: str, data_dir: str,
                base_url: str | None = None, settings: dict | None = None) -> list[dict]:
    """Crawl a batch of queries in one browser; a retry resumes from the manifest."""
    log = get_run_logger()
    search_engine = SearchEngine.from_rules(engine, base_url)

    def on_query(report):
        log.info("%s -> %s: %d downloaded (%d before), %d skipped, %d failed %s", report.query, report.shoe,
                 report.downloaded, report.already, report.skipped, report.failed, dict(report.reasons))

    reports = crawl([query_from_dict(q) for q in queries], search_engine, dataset, data_dir,
                    crawl_settings(**(settings or {})), on_query=on_query)
    return [r.as_row() for r in reports]


@task(name="crawl-report", cache_policy=NO_CACHE)
def publish_crawl_report(rows: list[dict], dataset: str) -> str:
    """The per-query table (found, downloaded, skipped, failed, reasons) as a Prefect artifact."""
    totals = {k: sum(r[k] for r in rows) for k in ("found", "downloaded", "skipped", "failed")}
    return str(create_table_artifact(
        table=rows, key="crawl-report",
        description=(f"Crawl into {dataset}: {len(rows)} queries, {totals['downloaded']} downloaded, "
                     f"{totals['skipped']} skipped, {totals['failed']} failed")))
