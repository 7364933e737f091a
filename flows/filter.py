"""filter: sort every new image of a crawl folder into accepted, rejected or the review queue."""
from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.task_runners import ThreadPoolTaskRunner

from shoefind.settings import data_dir as resolve_data_dir
from shoefind.curate.crawl_checks import load_crawl_rules
from shoefind.curate.filter import run_filter, summary_markdown
from shoefind.curate.semantic import load_checker
from shoefind.encoders.base import ModelUnavailable
from tasks.filter import PrefectBatchRunner

from .guard import stop


# Decoding is memory-hungry (a 64 MP photo is ~200 MB decoded): a few batches at a time.
@flow(name="filter", task_runner=ThreadPoolTaskRunner(max_workers=4))
def filter_flow(folder: str | None = None, data_dir: str | None = None, model: str | None = None,
                batch_size: int = 64, rules: str = "crawl_rules") -> dict:
    """folder: a crawl folder (one subfolder per shoe); default DATA_DIR/inbox."""
    log = get_run_logger()
    data_dir = str(resolve_data_dir(data_dir))
    folder = str(Path(folder).expanduser() if folder else Path(data_dir) / "inbox")
    if not Path(folder).is_dir():
        return stop(f"folder {folder} does not exist: nothing to filter")
    crawl_rules = load_crawl_rules(rules)
    try:
        checker, note, detail = load_checker(model, crawl_rules.prompts)
    except ModelUnavailable as exc:
        return stop(str(exc))
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
