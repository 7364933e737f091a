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
                = "crawl_rules",
                triage: Annotated[bool, Field(title="triage", description="Let the working dataset's current "
                                              "model accept, reject or queue each new photo (when it has one).")]
                = True) -> dict:
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
    model_triage, triage_note = load_model_triage(data_dir, str(lay.images)) if triage else (None, "triage off")
    (log.info if model_triage is not None else log.warning)(triage_note)
    result = run_filter(folder, data_dir, checker, note, crawl_rules, batch_size,
                        runner=PrefectBatchRunner(model, rules, crawl_rules.prompts), triage=model_triage,
                        triage_note=triage_note)
    s = result.summary
    log.info("%d files: %d new, %d exact duplicates, %d accepted (%d by the model), %d rejected (%d by the model), "
             "%d queued for review", s["files"], s["new"], s["exact_duplicates"], s["accepted"], s["auto_accepted"],
             s["rejected"], s["auto_rejected"], s["queued"])
    create_markdown_artifact(summary_markdown(s), key="crawl-filter-summary", description="crawl filter run")
    return s


def load_model_triage(data_dir: str, dataset: str):
    """(the dataset's current model as a triage, a note); a registry that cannot be read leaves the
    photos to a person, with its one-line reason as the note (nothing is lost: they wait in review)."""
    from shoefind.errors import UserError
    from shoefind.registry.triage import load_triage
    try:
        return load_triage(data_dir, dataset)
    except UserError as exc:
        return None, f"no triage, every photo waits for a person: {exc}"


if __name__ == "__main__":
    filter_flow()
