"""The dataset's feature table as the registry reads it: the saved one when nothing changed (as
`shoefind table` and the flows save it), else built and saved again."""
from __future__ import annotations

import os
from pathlib import Path

from shoefind.features.table import FeatureTable, build_table, saved_table_if_current, table_dir_for
from shoefind.features.table_fingerprint import table_fingerprint


def dataset_table(dataset: str | os.PathLike, data_dir: str | os.PathLike) -> FeatureTable:
    out = table_dir_for(Path(data_dir), dataset)
    fingerprint = table_fingerprint(dataset)      # before reading: a photo changed meanwhile is read next time
    table = saved_table_if_current(out, fingerprint)
    if table is None:
        table = build_table(dataset)
        table.save(out, fingerprint)
    return table


def images_of(table: FeatureTable) -> list[tuple[str, str]]:
    """(path, sha256) of every photo of the table."""
    return [(str(table.root / p), s) for p, s in zip(table.images["path"], table.images["sha256"])]
