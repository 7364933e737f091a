"""Curate stage (filter): sort every new image of a crawl folder into accepted, rejected or the review queue."""
from __future__ import annotations

from pathlib import Path

from typing import Annotated

from prefect import flow, get_run_logger
from pydantic import Field
from prefect.artifacts import create_markdown_artifact
from prefect.task_runners import ThreadPoolTaskRunner

from shoefind.curate.crawl_checks import load_crawl_rules
from shoefind.curate.filter import run_filter, summary_markdown
from shoefind.curate.semantic import load_checker
from shoefind.settings import layout
from tasks.curate import PrefectBatchRunner

from .common import BatchSize, DataDir, FilterModel, Inbox, fails_clearly, given, stop


# Decoding is memory-hungry (a 64 MP photo is ~200 MB decoded): a few batches at a time.
@flow(name="filter", task_runner=ThreadPoolTaskRunner(max_workers=4))
@fails_clearly
def filter_flow(folder: Inbox = "", data_dir: DataDir = "", model: FilterModel = "", batch_size: BatchSize = 64,
                rules: Annotated[str, Field(title="rules", description="Rules file of rules/ (without .yaml).")]
                = "crawl_rules") -> dict:
    """Sort every new image of the inbox into accepted, rejected (with the rule) or the review queue."""
    log = get_run_logger()
    lay = layout(given(data_dir))
    data_dir = str(lay.root)
    folder = str(Path(folder).expanduser() if folder else lay.inbox)
    if not Path(folder).is_dir():
        return stop(f"folder {folder} does not exist: nothing to filter")
    crawl_rules = load_crawl_rules(rules)
    model = given(model)
    checker, note, detail = load_checker(model, crawl_rules.prompts)
    (log.warning if checker is None else log.info)(note + (f": {detail}" if detail else ""))
    result = run_filter(folder, data_dir, checker, note, crawl_rules, batch_size,
                        runner=PrefectBatchRunner(model, rules, crawl_rules.prompts))
    s = result.summary
    log.info("%d files: %d new, %d exact duplicates, %d accepted, %d rejected, %d queued for review",
             s["files"], s["new"], s["exact_duplicates"], s["accepted"], s["rejected"], s["queued"])
    create_markdown_artifact(summary_markdown(s), key="crawl-filter-summary", description="crawl filter run")
    return s


if __name__ == "__main__":
    filter_flow()
