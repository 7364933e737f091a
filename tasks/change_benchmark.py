"""Task: the composed-retrieval benchmark of a table, with reports and a table artifact."""
from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from shoefind.features.cache import EmbeddingCache
from shoefind.features.catalog import catalog_from_table
from shoefind.evaluate.change import evaluate_change
from shoefind.evaluate.change_report import change_markdown, write_change_benchmark
from shoefind.encoders.load import load_model
from shoefind.evaluate.report import new_run_dir
from shoefind.features.table import load_table
from shoefind.retrieve.zeroshot import ZeroShotOptions
from .artifacts import publish_metrics


@task(name="evaluate-change", cache_policy=NO_CACHE)
def evaluate_change_task(table_dir: str, data_dir: str, model: str | None = None,
                         zeroshot: dict | None = None) -> str:
    """Recall@1/5/10 and MRR of every change method; writes the run folder and returns its path."""
    log = get_run_logger()
    encoder = load_model(model)
    table = load_table(table_dir)
    catalog = catalog_from_table(table, EmbeddingCache.for_encoder(data_dir, encoder),
                                 encoder.model_id)
    bench = evaluate_change(encoder, catalog, options=ZeroShotOptions.of(zeroshot))
    run_dir = new_run_dir(Path(data_dir), "evaluate-change", table.root.name)
    write_change_benchmark(run_dir, bench, str(table.root))
    publish_metrics(bench.metrics, "change-retrieval-metrics",
                    f"Composed retrieval Recall@k / MRR on {table.root.name} ({bench.model_id})",
                    change_markdown(bench.metrics, f"Composed retrieval: {table.root.name}",
                                    bench.notes + [f"reports: {run_dir}"], bench.per_template),
                    "change-retrieval-report")
    log.info("reports in %s", run_dir)
    return str(run_dir)
