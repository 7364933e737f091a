"""What every command shares: clear errors (exit code 2), progress bars, JSON output."""
from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Iterator

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

# Messages go to stderr so stdout stays clean for pipes (--json).
err = Console(stderr=True)


def fail(message: str, code: int = 2) -> "typer.Exit":
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


@contextlib.contextmanager
def progress_bar(description: str, total: int) -> Iterator:
    """Yields an `advance(n)` callable; draws a rich bar on stderr."""
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=err, transient=False) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)


def dataset_and_data_dir(dataset: Path | None, data_dir: Path | None) -> tuple[Path, Path]:
    """The dataset a command works on (given, else the accepted images) and the data folder."""
    from shoefind.settings import layout
    lay = layout(data_dir)
    return lay.dataset(dataset), lay.root


def print_json(obj) -> None:
    json.dump(obj, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


@contextlib.contextmanager
def clear_errors() -> Iterator[None]:
    """Turn the library's expected failures into one red line and exit code 2."""
    from prefect.exceptions import FailedRun

    from shoefind.images import ImageError
    from shoefind.encoders.base import ModelUnavailable
    try:
        yield
    except (ModelUnavailable, ImageError, FileNotFoundError, ValueError, FailedRun) as exc:
        fail(str(exc))
