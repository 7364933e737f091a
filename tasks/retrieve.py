"""Task of the retrieve stage: answer photos against a catalog. The model and the catalog stay loaded
in the worker process, so repeated runs there are warm."""
from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from shoefind.stages.infer import infer_photos


@task(name="infer", cache_policy=NO_CACHE)
def infer_task(photos: list[str], dataset: str, data_dir: str, model: str | None = None,
               change: str | None = None, method: str = "auto", change_method: str = "constraints",
               k: int = 5, results: int = 10, text_weight: float | None = None, runtime: str | None = None,
               device: str | None = None, zeroshot: dict | None = None) -> dict:
    """Answers for every photo (a folder stands for its photos); unusable photos get an `error`."""
    answer = infer_photos(photos, dataset, data_dir, model, change, method, change_method, k, results, text_weight,
                          runtime, device, zeroshot)
    log_answers(answer, get_run_logger())
    return answer


def log_answers(answer: dict, log) -> None:
    """One log line per photo: its shoe, not-in-catalog, or why it could not be read."""
    if answer.get("random_weights"):
        log.warning("model %s has RANDOM weights: its answers mean nothing", answer.get("model"))
    for a in answer["answers"]:
        if a["error"]:
            log.warning("%s", a["error"])
        elif a.get("not_in_catalog"):
            log.info("%s: %s (nearest shoes: %s)", a["photo"], a["message"], ", ".join(a["suggestions"]))
        else:
            log.info("%s: %s (%.0f%%)", a["photo"], a["shoe"]["shoe"], 100 * a["shoe"]["probability"])
