"""build-table: labeled photo folder -> feature table (shoes.csv, images.csv, issues.csv)."""
from __future__ import annotations

from prefect import flow

from shoefind.checks import dataset_problem
from shoefind.settings import data_dir as resolve_data_dir
from tasks.table import build_feature_table

from .guard import stop


def dataset_path(dataset: str | None, data_dir: str) -> str:
    from pathlib import Path
    return str(Path(dataset).expanduser().resolve() if dataset else Path(data_dir) / "images")


@flow(name="build-table")
def build_table_flow(dataset: str | None = None, data_dir: str | None = None, catalog: str | None = None,
                     strict: bool = False) -> str:
    data_dir = str(resolve_data_dir(data_dir))
    dataset = dataset_path(dataset, data_dir)
    if problem := dataset_problem(dataset):
        return stop(problem)
    return build_feature_table(dataset, data_dir, catalog=catalog, strict=strict)


if __name__ == "__main__":
    build_table_flow()
