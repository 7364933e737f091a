"""Publishing a run's metrics as Prefect artifacts: a table and a markdown report."""
from __future__ import annotations

import math

import pandas as pd
from prefect.artifacts import create_markdown_artifact, create_table_artifact


def artifact_rows(metrics: pd.DataFrame) -> list[dict]:
    return [{k: (None if isinstance(v, float) and math.isnan(v) else round(v, 4) if isinstance(v, float) else v)
             for k, v in r.items()} for r in metrics.to_dict("records")]


def publish_metrics(metrics: pd.DataFrame, table_key: str, description: str, markdown: str, markdown_key: str) -> None:
    create_table_artifact(artifact_rows(metrics), key=table_key, description=description)
    create_markdown_artifact(markdown, key=markdown_key)
