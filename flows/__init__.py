"""Prefect flows: each reads like a stage of the pipeline diagram."""
