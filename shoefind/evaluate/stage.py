"""The evaluate stage as the CLI and the flows both run it: score a saved, embedded table and write a
run folder (report.md, metrics.csv/json, plots). Zero-shot, a comparison of learned methods on one
k-shot split, or the composed-retrieval benchmark.

Each `*_table` function is the step a flow task wraps; `evaluate_dataset` runs the whole stage
(table -> embeddings -> scores) in this process. Results carry what a surface shows: the run folder,
the metrics and the markdown report.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd

from shoefind.errors import UserError

Log = Callable[[str], None]


@dataclass
class RunReport:
    """A finished run: where its files are, its metrics and its markdown (for artifacts and terminals)."""
    run_dir: Path
    metrics: pd.DataFrame
    markdown: str
    description: str                       # one line: what was measured, on what, with which model
    artifact: str                          # artifact key stem: <artifact>-metrics, <artifact>-report
    random_weights: bool = False
    extra: dict = field(default_factory=dict)


def _loaded(table_dir, data_dir, model, runtime=None, device=None):
    from shoefind.encoders.load import load_encoder
    from shoefind.features.cache import EmbeddingCache
    from shoefind.features.stage import model_options
    from shoefind.features.table import load_table
    encoder = load_encoder(model, **model_options(runtime, device))
    return encoder, load_table(table_dir), EmbeddingCache.for_encoder(data_dir, encoder)


def evaluate_table(table_dir: str | os.PathLike, data_dir: str | os.PathLike, model: str | None = None,
                   runtime: str | None = None, device: str | None = None, zeroshot: dict | None = None) -> RunReport:
    """Zero-shot top-1/top-5 per attribute and shoe name of every embedded image."""
    from shoefind.evaluate.attributes import evaluate_zero_shot
    from shoefind.evaluate.report import metrics_markdown, new_run_dir, write_evaluation
    encoder, table, cache = _loaded(table_dir, data_dir, model, runtime, device)
    from shoefind.retrieve.zeroshot import ZeroShotOptions
    evaluation = evaluate_zero_shot(encoder, table, cache, ZeroShotOptions.of(zeroshot))
    run_dir = new_run_dir(Path(data_dir), "evaluate", table.root.name)
    write_evaluation(run_dir, evaluation, str(table.root))
    notes = [f"model: {evaluation.model_id}", f"reports: {run_dir}"] + list(evaluation.notes)
    if evaluation.random_weights:
        notes.insert(1, "RANDOM weights: the accuracy below means nothing")
    return RunReport(run_dir, evaluation.metrics,
                     metrics_markdown(evaluation.metrics, f"Zero-shot evaluation: {table.root.name}", notes),
                     f"Zero-shot top-1/top-5 on {table.root.name} ({evaluation.model_id})", "zero-shot",
                     bool(evaluation.random_weights))


def compare_table(table_dir: str | os.PathLike, data_dir: str | os.PathLike, model: str | None = None,
                  method: str | None = None, shots: str | None = None, seed: int = 0,
                  coop_options: dict | None = None, save: bool = False, log: Log | None = None,
                  zeroshot: dict | None = None, views: int | None = None) -> RunReport:
    """Fit and score the methods at each k on one split; write the run folder (and, with save, the
    learned classifiers that inference then uses). views: augmented views per training photo (None:
    each method's official setting, 0: none; shoefind.features.views)."""
    from shoefind.evaluate.methods import compare_methods, default_methods
    from shoefind.evaluate.methods_report import comparison_markdown, write_comparison
    from shoefind.evaluate.report import new_run_dir
    from shoefind.features.splits import parse_shots
    encoder, table, cache = _loaded(table_dir, data_dir, model)
    methods = [m for m in (method or default_methods(encoder)).replace(" ", "").split(",") if m]
    from shoefind.retrieve.zeroshot import ZeroShotOptions
    comparison = compare_methods(encoder, table, cache, methods, parse_shots(shots), seed=seed,
                                 coop_options=coop_options, log=log, options=ZeroShotOptions.of(zeroshot),
                                 views=views)
    run_dir = new_run_dir(Path(data_dir), "learn" if save else "compare", table.root.name)
    write_comparison(run_dir, comparison, str(table.root), methods)
    extra = {}
    if save:
        from shoefind.learn.saved import save_learned
        extra["learned"] = str(save_learned(data_dir, comparison, encoder, str(table.root)))
        extra["best"] = comparison.best("name")
        if log:
            log(f"learned classifiers in {extra['learned']} (best for name: {extra['best']})")
    notes = [f"model: {comparison.model_id}", f"reports: {run_dir}"]
    if comparison.random_weights:
        notes.insert(1, "RANDOM weights: the accuracy below means nothing")
    return RunReport(run_dir, comparison.metrics,
                     comparison_markdown(comparison.metrics, f"Method comparison: {table.root.name}", notes),
                     f"top-1/top-5 per method and k on {table.root.name} ({comparison.model_id})",
                     "method-comparison", bool(comparison.random_weights), extra)


def evaluate_change_table(table_dir: str | os.PathLike, data_dir: str | os.PathLike, model: str | None = None,
                          runtime: str | None = None, device: str | None = None,
                          zeroshot: dict | None = None) -> RunReport:
    """Recall@1/5/10 and MRR of every change-in-words method."""
    from shoefind.evaluate.change import evaluate_change
    from shoefind.evaluate.change_report import change_markdown, write_change_benchmark
    from shoefind.evaluate.report import new_run_dir
    from shoefind.features.catalog import catalog_from_table
    encoder, table, cache = _loaded(table_dir, data_dir, model, runtime, device)
    from shoefind.retrieve.zeroshot import ZeroShotOptions
    bench = evaluate_change(encoder, catalog_from_table(table, cache, encoder.model_id),
                            options=ZeroShotOptions.of(zeroshot))
    run_dir = new_run_dir(Path(data_dir), "evaluate-change", table.root.name)
    write_change_benchmark(run_dir, bench, str(table.root))
    return RunReport(run_dir, bench.metrics,
                     change_markdown(bench.metrics, f"Composed retrieval: {table.root.name}",
                                     bench.notes + [f"reports: {run_dir}"], bench.per_template),
                     f"Composed retrieval Recall@k / MRR on {table.root.name} ({bench.model_id})",
                     "change-retrieval", bool(bench.random_weights))


def compare_models_table(table_dir: str | os.PathLike, data_dir: str | os.PathLike, models: list[str],
                         runtime: str | None = None, device: str | None = None,
                         zeroshot: dict | None = None) -> RunReport:
    """Several models side by side on the same embedded table (see shoefind.evaluate.models)."""
    from shoefind.encoders.load import load_encoder
    from shoefind.evaluate.models import compare_models, comparison_markdown, write_comparison
    from shoefind.evaluate.report import new_run_dir
    from shoefind.features.stage import model_options
    from shoefind.features.table import load_table
    table = load_table(table_dir)
    encoders = [load_encoder(m, **model_options(runtime, device)) for m in models]
    from shoefind.retrieve.zeroshot import ZeroShotOptions
    comparison = compare_models(encoders, table, Path(data_dir), options=ZeroShotOptions.of(zeroshot))
    run_dir = new_run_dir(Path(data_dir), "compare-models", table.root.name)
    write_comparison(run_dir, comparison, str(table.root), models)
    return RunReport(run_dir, comparison.long,
                     comparison_markdown(comparison, f"Model comparison: {table.root.name}", [f"reports: {run_dir}"]),
                     f"Models compared on {table.root.name}: {', '.join(comparison.models)}", "model-comparison",
                     any(getattr(e, "is_random", False) for e in encoders))


def evaluate_models(dataset, data_dir, models: list[str], catalog=None, batch_size: int = 32,
                    task: str = "zeroshot", method: str = "zeroshot", shots: str | None = None,
                    cluster: str | None = None, runtime: str | None = None, device: str | None = None,
                    zeroshot: dict | None = None, progress=None, log: Log | None = None) -> RunReport:
    """`evaluate --model A,B,C`: embed the photos with each model, then one side-by-side comparison."""
    from shoefind.retrieve.zeroshot import ZeroShotOptions
    from shoefind.encoders.load import load_encoder
    from shoefind.features.stage import embed_dataset, model_options
    if task != "zeroshot" or comparing(method, shots):
        raise UserError("--model A,B compares models (zero-shot top-1/top-5, change R@k, speed, load time); "
                        "use --task change, --method or --shots with one model at a time")
    zeroshot = ZeroShotOptions.of(zeroshot).describe()      # a bad option fails before any work
    for spec in models:  # every model loads (or says what is missing) before any embedding starts
        load_encoder(spec, **model_options(runtime, device))
    for spec in models:
        embedded = embed_dataset(dataset, data_dir, spec, catalog, batch_size, cluster=cluster, runtime=runtime,
                                 device=device, progress=progress, log=log)
    return compare_models_table(embedded["table"], data_dir, models, runtime, device, zeroshot)


def methods_check(model: str | None, method: str | None) -> None:
    """UserError before any work when the model cannot run these methods."""
    if method:
        from shoefind.evaluate.methods import methods_problem
        if problem := methods_problem(model, method):
            raise UserError(problem)


def comparing(method: str | None, shots: str | None) -> bool:
    return bool(method and method != "zeroshot") or bool(shots)


def evaluate_dataset(dataset: str | os.PathLike, data_dir: str | os.PathLike, model: str | None = None,
                     catalog: str | os.PathLike | None = None, batch_size: int = 32, task: str = "zeroshot",
                     method: str = "zeroshot", shots: str | None = None, seed: int = 0,
                     cluster: str | None = None, runtime: str | None = None, device: str | None = None,
                     zeroshot: dict | None = None, progress=None, log: Log | None = None,
                     views: int | None = None) -> RunReport:
    """The whole evaluate stage in this process: table -> embeddings -> scores -> run folder.
    `zeroshot`: the zero-shot options (prompt set, vocabulary, filter, fallback) as a dict.

    An image-only model (no text side) is compared with the learned methods it can run.
    """
    from shoefind.encoders.backbones import is_image_backbone
    from shoefind.encoders.load import split_specs
    from shoefind.features.stage import embed_dataset
    from shoefind.settings import model_spec
    if task not in ("zeroshot", "change"):
        raise UserError(f"unknown task '{task}' (known: zeroshot, change)")
    if len(models := split_specs(model)) > 1:
        return evaluate_models(dataset, data_dir, models, catalog, batch_size, task, method, shots, cluster,
                               runtime, device, zeroshot, progress, log)
    compare = comparing(method, shots) or is_image_backbone(model_spec(model))
    if task == "change" and compare:
        raise UserError("--method and --shots apply to the zeroshot task (attribute and name classification)")
    if compare:
        methods_check(model, method)
    from shoefind.retrieve.zeroshot import ZeroShotOptions
    zeroshot = ZeroShotOptions.of(zeroshot).describe()      # a bad option fails before any work
    embedded = embed_dataset(dataset, data_dir, model, catalog, batch_size, cluster=cluster, runtime=runtime,
                             device=device, progress=progress, log=log)
    if task == "change":
        return evaluate_change_table(embedded["table"], data_dir, model, runtime, device, zeroshot)
    if compare:
        return compare_table(embedded["table"], data_dir, model, method, shots or "16", seed, log=log,
                             zeroshot=zeroshot, views=views)
    return evaluate_table(embedded["table"], data_dir, model, runtime, device, zeroshot)
