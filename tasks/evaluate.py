"""Task: zero-shot evaluation of a table from cached embeddings, with reports and artifacts."""
from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from shoefind.evaluate.attributes import evaluate_zero_shot
from shoefind.encoders.load import load_model
from shoefind.evaluate.report import new_run_dir, write_evaluation
from shoefind.evaluate.report_html import artifact_markdown
from shoefind.features.table import load_table
from shoefind.retrieve.zeroshot import ZeroShotOptions
from .artifacts import publish_metrics

from .embed import embedding_cache


@task(name="evaluate-zero-shot", cache_policy=NO_CACHE)
def evaluate_zero_shot_task(table_dir: str, data_dir: str, model: str | None = None,
                            runtime: str | None = None, zeroshot: dict | None = None) -> str:
    """Score every embedded image; write the run folder; returns its path."""
    log = get_run_logger()
    encoder = load_model(model, runtime=runtime)
    table = load_table(table_dir)
    evaluation = evaluate_zero_shot(encoder, table, embedding_cache(data_dir, encoder), ZeroShotOptions.of(zeroshot))
    run_dir = new_run_dir(Path(data_dir), "evaluate", table.root.name)
    write_evaluation(run_dir, evaluation, str(table.root))
    publish_metrics(evaluation.metrics, "zero-shot-metrics",
                    f"Zero-shot top-1/top-5 on {table.root.name} ({evaluation.model_id})",
                    artifact_markdown(run_dir), "zero-shot-report")
    log.info("reports in %s", run_dir)
    return str(run_dir)


@task(name="compare-models", cache_policy=NO_CACHE)
def compare_models_task(table_dir: str, data_dir: str, models: list[str], runtime: str | None = None,
                        zeroshot: dict | None = None) -> str:
    """Several models on the same table: report.md, metrics.csv/json, comparison.png, and artifacts."""
    from shoefind.evaluate.stage import compare_models_table
    report = compare_models_table(table_dir, data_dir, models, runtime, zeroshot=zeroshot)
    publish_metrics(report.metrics, "model-comparison", report.description, report.markdown,
                    "model-comparison-report")
    get_run_logger().info("model comparison in %s", report.run_dir)
    return str(report.run_dir)
