"""Tasks of the evaluate stage: zero-shot scores, a comparison of methods on one split, and the
composed-retrieval benchmark; each writes its run folder and publishes its report as artifacts."""
from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from shoefind.stages.evaluate import compare_models_table, compare_table, evaluate_change_table, evaluate_table

from .common import publish_report


def _finish(report) -> str:
    publish_report(report)
    log = get_run_logger()
    if report.random_weights:
        log.warning("RANDOM weights: the scores in %s mean nothing", report.run_dir)
    log.info("reports in %s", report.run_dir)
    return str(report.run_dir)


@task(name="evaluate-zero-shot", cache_policy=NO_CACHE)
def evaluate_zero_shot_task(table_dir: str, data_dir: str, model: str | None = None, runtime: str | None = None,
                            device: str | None = None, zeroshot: dict | None = None) -> str:
    """Score every embedded image; write the run folder; returns its path."""
    return _finish(evaluate_table(table_dir, data_dir, model, runtime, device, zeroshot))


@task(name="compare-methods", cache_policy=NO_CACHE)
def compare_methods_task(table_dir: str, data_dir: str, model: str | None = None, method: str | None = None,
                         shots: str | None = None, seed: int = 0, zeroshot: dict | None = None) -> str:
    """Fit and score the methods at each k on one split; returns the run folder."""
    return _finish(compare_table(table_dir, data_dir, model, method, shots, seed, log=get_run_logger().info,
                                 zeroshot=zeroshot))


@task(name="evaluate-change", cache_policy=NO_CACHE)
def evaluate_change_task(table_dir: str, data_dir: str, model: str | None = None, runtime: str | None = None,
                         device: str | None = None, zeroshot: dict | None = None) -> str:
    """Recall@1/5/10 and MRR of every change method; returns the run folder."""
    return _finish(evaluate_change_table(table_dir, data_dir, model, runtime, device, zeroshot))


@task(name="compare-models", cache_policy=NO_CACHE)
def compare_models_task(table_dir: str, data_dir: str, models: list[str], runtime: str | None = None,
                        device: str | None = None, zeroshot: dict | None = None) -> str:
    """Several models on the same table side by side; returns the run folder."""
    return _finish(compare_models_table(table_dir, data_dir, models, runtime, device, zeroshot=zeroshot))
