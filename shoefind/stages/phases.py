"""Steps of a long stage that have no count to show (loading a model, scoring, writing), said as they
start and finish, so that no part of a run is silent.

A stage runner gets `progress(description, total)` from the CLI (a rich bar per step; total None is
a step of unknown length) or nothing (a flow, which logs instead).
"""
from __future__ import annotations

import contextlib
from typing import Callable, Iterator


@contextlib.contextmanager
def phase(description: str, progress=None, log: Callable[[str], None] | None = None) -> Iterator[None]:
    """A step shown as a status bar while it runs (with progress), else one log line as it starts."""
    if progress is not None:
        done = progress(description, None)
        yield
        done(1)
        return
    if log is not None:
        log(f"{description} ...")
    yield
