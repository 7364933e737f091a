"""Up-front checks that turn a doomed run into one clear sentence (before any work starts)."""
from __future__ import annotations

from pathlib import Path

from shoefind.features.table import dataset_folder_problem
from shoefind.encoders.base import ModelUnavailable
from shoefind.encoders.load import load_model


def dataset_problem(dataset: str | Path) -> str | None:
    root = Path(dataset)
    if not root.exists():
        return (f"dataset folder {root} does not exist: put labeled photo folders there "
                "(Brand_Top_Color_Sole_Name/photo.jpg, see data/README.md) or pass another dataset")
    return dataset_folder_problem(root)


def model_problem(spec: str | None) -> str | None:
    """None when the model loads (it stays loaded for the run), else what to do about it."""
    try:
        load_model(spec)
    except ModelUnavailable as exc:
        return str(exc)
    return None
