"""Tasks of the learning loop: let the current model settle what waits for review, and retrain,
evaluate, promote (shoefind.registry)."""
from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE


@task(name="triage-waiting", cache_policy=NO_CACHE)
def triage_waiting_task(data_dir: str, dataset: str, inbox: str | None = None) -> dict:
    """The current model answers the photos still waiting for a person (those only a model's doubt kept
    there), each about every shoe the crawl of `inbox` listed it for; counts of what it accepted,
    rejected and left."""
    from pathlib import Path

    from shoefind.crawl.manifest import manifest_path
    from shoefind.curate.model_verdicts import intended_shoes
    from shoefind.curate.queue import ReviewQueue
    from shoefind.registry.triage import load_triage, retriage_waiting
    triage, note = load_triage(data_dir, dataset)
    get_run_logger().info(note)
    if triage is None:
        return {"asked": 0, "auto_accepted": 0, "auto_rejected": 0, "still_waiting": 0, "note": note}
    listed_for = intended_shoes(manifest_path(Path(data_dir), Path(inbox))) if inbox else {}
    return retriage_waiting(ReviewQueue(data_dir), triage, listed_for) | {"note": note, "model": triage.model}


@task(name="retrain-evaluate-promote", cache_policy=NO_CACHE)
def retrain_task(dataset: str, data_dir: str, learner: str | None = None, model: str | None = None,
                 heldout: str | None = None, settings: dict | None = None) -> dict:
    """Train the dataset's learner, score it on the fixed held-out split, promote it when not worse."""
    from shoefind.registry.retrain import retrain
    return retrain(dataset, data_dir, learner=learner, model=model, heldout=heldout, settings=settings,
                   log=get_run_logger().info)
