"""Crash points, so tests can kill a real process exactly where a power cut or a kill -9 could.

SHOEFIND_CRASH_AT=STEP[@N] makes the process SIGKILL itself the N-th time (default the first) it
reaches `crash_point(STEP)`. Unset (always, outside tests) a crash point costs one dict lookup.
The variable is read when the point is reached, not through Settings: a test sets it for the one
subprocess it kills, and nothing else may ever depend on it.
"""
from __future__ import annotations

import os
import signal

ENV = "SHOEFIND_CRASH_AT"
_reached: dict[str, int] = {}


def crash_point(step: str) -> None:
    wanted = os.environ.get(ENV)
    if not wanted:
        return
    name, _, nth = wanted.partition("@")
    if name != step:
        return
    _reached[step] = _reached.get(step, 0) + 1
    if _reached[step] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
