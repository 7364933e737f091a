"""One error family: what the user must fix (exit code 2, one line) and what is shoefind's fault.

Surfaces (CLI, flows, web page) catch `UserError` and print its message; anything else is a
bug and keeps its traceback, with a pointer to report it.
"""
from __future__ import annotations


class ShoefindError(Exception):
    """Base of every error shoefind raises on purpose."""


class UserError(ShoefindError, ValueError):
    """Bad input or a missing prerequisite: str() is one sentence saying what to do."""


class InternalError(ShoefindError, RuntimeError):
    """Something shoefind itself got wrong: surfaces show the traceback and ask for a report."""


REPORT_HINT = "This is a bug in shoefind: please report it with the traceback above."


class PathNotFound(UserError, FileNotFoundError):
    """A file or folder the user named (or the default one) does not exist."""
