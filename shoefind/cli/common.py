"""What every command shares: one-line errors (exit code 2), progress bars, JSON output, paths checked
before any heavy import."""
from __future__ import annotations

import contextlib
import functools
import json
import re
import sys
from pathlib import Path
from typing import Iterator

import typer
from rich.console import Console

from shoefind.errors import PathNotFound, UserError

# Messages go to stderr so stdout stays clean for pipes (--json).
err = Console(stderr=True)


def say_error(message: str) -> None:
    """One red `error:` line on stderr; the message is printed as is (no rich markup, no wrapping)."""
    err.print("[bold red]error:[/] ", end="", highlight=False)
    err.print(message, highlight=False, markup=False, soft_wrap=True)


# Control characters (ESC starts terminal escape sequences) and bidirectional overrides: a folder or file
# name may carry them, and printed raw they would drive the terminal or reorder what it shows.
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text) -> str:
    """text with control characters shown as escapes (\\x1b), never sent to the terminal."""
    return _UNPRINTABLE.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                            else f"\\u{ord(m.group()):04x}", str(text))


def fail(message: str, code: int = 2) -> "typer.Exit":
    """Print one red line and end the command with `code`."""
    say_error(message)
    raise typer.Exit(code)


def user_errors(command):
    """A command whose UserErrors become one red line and exit code 2 (any other error is a bug); its
    --data-dir is the settings' data folder while it runs."""
    from shoefind.settings import using_data_dir

    @functools.wraps(command)
    def run(*args, **kwargs):
        try:
            with using_data_dir(kwargs.get("data_dir")):
                return command(*args, **kwargs)
        except UserError as exc:
            fail(str(exc))
    return run


def description_column():
    """The step's name, folded onto a second line on a narrow terminal (or a log, 80 columns), so the
    count and times beside it always show: left to itself, rich shrinks every column and the counts
    become '…'."""
    from rich.progress import TextColumn
    from rich.table import Column
    return TextColumn("{task.description}", table_column=Column(
        no_wrap=False, overflow="fold", max_width=max(16, err.width - 36)))


def bar_column():
    from rich.progress import BarColumn
    return BarColumn(bar_width=10 if err.width < 100 else 20)


@contextlib.contextmanager
def progress_bar(description: str, total: int) -> Iterator:
    """Yields an `advance(n)` callable; draws a rich bar on stderr."""
    from rich.progress import MofNCompleteColumn, Progress, TimeRemainingColumn
    with Progress(description_column(), bar_column(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=err, transient=False, disable=total == 0) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)


def data_layout(data_dir: Path | None):
    from shoefind.settings import layout
    return layout(data_dir)


def dataset_folder(argument: Path | None, option: Path | None, data_dir: Path | None) -> tuple[Path, Path]:
    """The dataset a command works on (argument or --dataset, else DATA_DIR/images) and the data folder;
    a missing folder is refused here, before anything heavy is imported."""
    if argument and option and Path(argument).resolve() != Path(option).resolve():
        raise UserError(f"two datasets given ({argument} and --dataset {option}): give one")
    lay = data_layout(data_dir)
    root = lay.dataset(argument or option)
    if not root.exists():
        raise PathNotFound(f"dataset folder {root} does not exist: give a labeled photo folder "
                           "(Brand_Top_Color_Sole_Name/photo.jpg, see data/README.md)")
    if not root.is_dir():
        raise UserError(f"dataset {root} is a file: give a labeled photo folder (one subfolder per shoe)")
    return root, lay.root


def labeled_dataset(argument: Path | None, option: Path | None, data_dir: Path | None) -> tuple[Path, Path]:
    """dataset_folder, and a folder with no image files refused too (empty, or unreadable: said which)."""
    root, d = dataset_folder(argument, option, data_dir)
    from shoefind.features.table import dataset_folder_problem
    if problem := dataset_folder_problem(root):
        raise UserError(problem)
    return root, d


def existing_paths(paths: list[Path], what: str = "photo") -> list[Path]:
    """The paths, or a UserError naming the first that does not exist or is a special file (a FIFO or a
    device, which would block or never end: refused before it is opened), checked before a model loads."""
    from shoefind.images import special_file_reason
    for p in paths:
        if not Path(p).expanduser().exists():
            raise PathNotFound(f"{p}: no such file or folder (the {what} to use)")
        if reason := special_file_reason(Path(p).expanduser()):
            raise UserError(f"{p}: {reason} (the {what} to use)")
    return paths


def print_json(obj) -> None:
    json.dump(obj, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def warn_random(model_id: str) -> None:
    err.print(f"[yellow]model {model_id} has RANDOM weights: its answers mean nothing[/]", highlight=False)


def show_run(run_dir: Path, json_out: bool, json_name: str = "metrics.json") -> None:
    """A finished evaluation or learning run: its JSON on stdout, or its report and where it lives."""
    run_dir = Path(run_dir)
    if json_out:
        print((run_dir / json_name).read_text())
        return
    from shoefind.cli.report_view import show_run as show_tables
    show_tables(run_dir)
