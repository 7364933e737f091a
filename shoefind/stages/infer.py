"""The retrieve stage as the CLI, the flows and the web page run it: the model and the catalog
(kept loaded per process), then answers for photos."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence


def open_model_and_catalog(model: str | None, dataset: str | os.PathLike, data_dir: str | os.PathLike,
                           runtime: str | None = None, device: str | None = None,
                           progress: Callable[[int], None] | None = None):
    """(encoder, catalog): photos of the catalog not seen before are embedded first. Without a model
    given, the dataset's current model (model registry) when it has one, else the default model."""
    from shoefind.encoders.load import load_encoder
    from shoefind.features.catalog import open_catalog
    from shoefind.stages.features import model_options
    if model is None:
        from shoefind.registry.current import current_spec
        model = current_spec(data_dir, Path(dataset).expanduser())
    encoder = load_encoder(model, **model_options(runtime, device))
    return encoder, open_catalog(encoder, Path(dataset), data_dir, progress=progress)


def infer_photos(photos: Sequence[str | os.PathLike], dataset: str | os.PathLike, data_dir: str | os.PathLike,
                 model: str | None = None, change: str | None = None, method: str = "auto",
                 change_method: str = "constraints", k: int = 5, results: int = 10,
                 text_weight: float | None = None, runtime: str | None = None, device: str | None = None,
                 zeroshot: dict | None = None) -> dict:
    """Answers for every photo (a folder stands for its photos); an unusable photo gets an `error`.
    `zeroshot`: the zero-shot options (prompt set, vocabulary, filter, fallback) as a dict."""
    from shoefind.retrieve.answer import answer_photos, expand_photos
    from shoefind.scoring.zeroshot import ZeroShotOptions
    options = ZeroShotOptions.of(zeroshot)
    paths = expand_photos(photos)
    encoder, catalog = open_model_and_catalog(model, dataset, data_dir, runtime, device)
    return answer_photos(encoder, catalog, paths, change=change, method=method, change_method=change_method,
                         k=k, results=results, text_weight=text_weight, options=options)
