"""Task: answer photos (identify, and optionally a change in words) against a catalog.

The model and the catalog stay loaded in the worker process, so repeated runs are warm.
"""
from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from shoefind.features.catalog import open_catalog
from shoefind.retrieve.answer import answer_photos, expand_photos
from shoefind.retrieve.zeroshot import ZeroShotOptions
from shoefind.encoders.load import load_model


@task(name="infer", cache_policy=NO_CACHE)
def infer_task(photos: list[str], dataset: str, data_dir: str, model: str | None = None,
               change: str | None = None, method: str = "auto", change_method: str = "constraints",
               k: int = 5, results: int = 10, text_weight: float | None = None, zeroshot: dict | None = None) -> dict:
    """Answers for every photo (a folder stands for its photos); unusable photos get an `error`."""
    log = get_run_logger()
    encoder = load_model(model)
    if encoder.is_random:
        log.warning("model %s has RANDOM weights: its answers mean nothing", encoder.model_id)
    catalog = open_catalog(encoder, dataset, data_dir)
    answer = answer_photos(encoder, catalog, expand_photos(photos), change=change, method=method,
                           change_method=change_method, k=k, results=results, text_weight=text_weight,
                           options=ZeroShotOptions.of(zeroshot))
    for a in answer["answers"]:
        if a["error"]:
            log.warning("%s", a["error"])
        else:
            log.info("%s: %s (%.0f%%)", a["photo"], a["shoe"]["shoe"], 100 * a["shoe"]["probability"])
    return answer
