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


def require_model(spec: str | None) -> None:
    """ModelUnavailable (one paragraph: which file to put where) unless the model's files are here;
    reads the spec and the caches only, so a run checks this before any work without loading twice."""
    from shoefind.encoders.registry import family_of
    from shoefind.encoders.spec import ModelSpec
    parsed = ModelSpec.of(spec)
    available, _ = family_of(parsed).locate(parsed)
    if not available:
        load_model(parsed)      # its error says what is missing and where it goes
