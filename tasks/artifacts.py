"""Metrics tables as Prefect table-artifact rows (rounded; NaN shown as empty)."""
from __future__ import annotations

import math

import pandas as pd


def artifact_rows(metrics: pd.DataFrame) -> list[dict]:
    return [{k: (None if isinstance(v, float) and math.isnan(v) else round(v, 4) if isinstance(v, float) else v)
             for k, v in r.items()} for r in metrics.to_dict("records")]
