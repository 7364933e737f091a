"""Ending a flow run with a clear reason instead of a traceback."""
from __future__ import annotations

from prefect import get_run_logger
from prefect.states import Failed


def stop(reason: str):
    """Log the reason and return a Failed state carrying it (callers `return stop(...)`)."""
    get_run_logger().error(reason)
    return Failed(message=reason)
