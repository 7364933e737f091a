"""A rich progress bar for long tasks (drawn on stderr, next to Prefect's logs)."""
from __future__ import annotations

import contextlib
import sys

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


@contextlib.contextmanager
def progress_bar(description: str, total: int):
    console = Console(file=sys.stderr)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=console, disable=total == 0) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)
