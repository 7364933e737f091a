"""Tasks: compare zero-shot / few-shot / CoOp on a held-out split, and save the learned classifiers."""
from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from shoefind.evaluate.methods import compare_methods, default_methods
from shoefind.evaluate.methods_report import write_comparison
from shoefind.evaluate.report_html import artifact_markdown
from shoefind.learn.saved import save_learned
from shoefind.encoders.load import load_model
from shoefind.evaluate.report import new_run_dir
from shoefind.features.splits import parse_shots
from shoefind.features.table import load_table
from shoefind.retrieve.zeroshot import ZeroShotOptions
from .artifacts import publish_metrics

from .embed import embedding_cache


@task(name="compare-methods", cache_policy=NO_CACHE)
def compare_methods_task(table_dir: str, data_dir: str, model: str | None = None, method: str | None = None,
                         shots: str | None = None, seed: int = 0, coop_options: dict | None = None,
                         save: bool = False, zeroshot: dict | None = None, views: int = 0) -> str:
    """Fit and score the methods at each k on one split; write the run folder (and, if save, the
    learned classifiers for inference); returns the run folder."""
    log = get_run_logger()
    encoder = load_model(model)
    table = load_table(table_dir)
    methods = [m for m in (method or default_methods(encoder)).replace(" ", "").split(",") if m]
    comparison = compare_methods(encoder, table, embedding_cache(data_dir, encoder), methods, parse_shots(shots),
                                 seed=seed, coop_options=coop_options, log=log.info,
                                 options=ZeroShotOptions.of(zeroshot), views=views)
    run_dir = new_run_dir(Path(data_dir), "learn" if save else "compare", table.root.name)
    write_comparison(run_dir, comparison, str(table.root), methods)
    if save:
        learned = save_learned(data_dir, comparison, encoder, str(table.root))
        log.info("learned classifiers in %s (best for name: %s)", learned, comparison.best("name"))
    publish_metrics(comparison.metrics, "method-comparison",
                    f"top-1/top-5 per method and k on {table.root.name} ({comparison.model_id})",
                    artifact_markdown(run_dir), "method-comparison-report")
    log.info("reports in %s", run_dir)
    return str(run_dir)
