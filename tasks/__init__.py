"""Prefect tasks, one module per pipeline stage: each wraps a shoefind stage function (the same one the
CLI calls in-process) and adds what only Prefect has: retries, logs, progress and artifacts."""
