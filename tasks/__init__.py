"""Thin Prefect tasks over the shoefind library: retries, batching, artifacts."""
