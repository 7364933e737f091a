"""What every stage's tasks share: a progress bar, publishing a run's report as artifacts, and mapping
one batch task over many batches on the flow's task runner (threads, or Dask)."""
from __future__ import annotations

import contextlib
import math
import sys
from typing import Sequence

from prefect import Task, unmapped
from prefect.artifacts import create_markdown_artifact, create_table_artifact


@contextlib.contextmanager
def progress_bar(description: str, total: int):
    """A rich bar on stderr next to Prefect's logs; yields advance(n)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=Console(file=sys.stderr), disable=total == 0) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)


def artifact_rows(metrics) -> list[dict]:
    return [{k: (None if isinstance(v, float) and math.isnan(v) else round(v, 4) if isinstance(v, float) else v)
             for k, v in r.items()} for r in metrics.to_dict("records")]


def publish_report(report) -> None:
    """A run's metrics as a table artifact and its report as a markdown artifact (shoefind RunReport):
    the run folder's report.md with its plots embedded, so the artifact shows them (and its warnings)."""
    from shoefind.evaluate.report_html import artifact_markdown
    create_table_artifact(artifact_rows(report.metrics), key=f"{report.artifact}-metrics",
                          description=report.description)
    markdown = artifact_markdown(report.run_dir) if (report.run_dir / "report.md").is_file() else report.markdown
    create_markdown_artifact(markdown, key=f"{report.artifact}-report", description=report.description)


REFUSED = "Refused"      # a task's state when the library refused its input (a UserError): no traceback


def as_task(name: str, fn, *args, **kwargs):
    """One step of a stage (shoefind.stages.request.direct's contract) run as the Prefect task `name`:
    its log lines go to the run's logger, its progress to a bar on stderr, and a RunReport result is
    published as artifacts (the task returns its run folder)."""
    from prefect import get_run_logger, task
    from prefect.cache_policies import NO_CACHE
    from prefect.states import Failed

    from shoefind.errors import UserError

    def step(*a, **kw):
        if "log" in kw:
            kw["log"] = get_run_logger().info
        if "progress" in kw:
            kw["progress"] = stderr_progress
        try:
            result = fn(*a, **kw)
        except UserError as exc:      # an expected refusal: one line in the log, no engine traceback
            get_run_logger().error(str(exc))
            return Failed(message=str(exc), name=REFUSED)
        if hasattr(result, "run_dir") and hasattr(result, "metrics"):
            publish_report(result)
            log = get_run_logger()
            if result.random_weights:
                log.warning("RANDOM weights: the scores in %s mean nothing", result.run_dir)
            log.info("reports in %s", result.run_dir)
            return str(result.run_dir)
        if isinstance(result, dict) and result.get("checkpoint") and result.get("manifest"):
            publish_checkpoint(result, f"{name}-manifest")
        return result
    step.__name__ = step.__qualname__ = name.replace("-", "_")
    step.__doc__ = fn.__doc__
    state = task(step, name=name, cache_policy=NO_CACHE)(*args, return_state=True, **kwargs)
    if state.is_failed() and state.name == REFUSED:
        raise UserError(state.message)
    return state.result()


def publish_checkpoint(result: dict, key: str) -> None:
    """A trained model's manifest (its held-out figures) as a markdown artifact."""
    from pathlib import Path
    report = Path(result["manifest"]).with_suffix(".md")
    if report.is_file():
        create_markdown_artifact(report.read_text(), key=key, description=f"checkpoint {result['checkpoint']}")


def stderr_progress(description: str, total: int):
    """A progress(description, total) -> advance(n) factory for steps run as tasks: a rich bar per call."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   console=Console(file=sys.stderr), disable=total == 0)
    bar.start()
    task_id = bar.add_task(description, total=total)

    def advance(n=1):
        bar.advance(task_id, n)
        if bar.tasks[0].finished:
            bar.stop()
    return advance


def map_batches(batch_task: Task, batches: Sequence[Sequence], **shared) -> list:
    """Run batch_task(batch, **shared) for every batch on the current task runner; results in order.

    Waits for all batches before raising the first failure, so finished batches are not abandoned mid-write.
    """
    if not batches:
        return []
    futures = batch_task.map(list(batches), **{k: unmapped(v) for k, v in shared.items()})
    futures.wait()
    return futures.result()
