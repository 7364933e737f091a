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
from typing import Annotated, Callable, Literal

import pandas as pd

from pydantic import Field

from shoefind.errors import UserError
from shoefind.stages.request import (ImageLoading, BatchSize, Catalog, Cluster, DataDir, Dataset, Device, Fallback,
                                     FilterAttributes, Methods, Prompts, Request, Runtime, Shots, Tta, Views,
                                     Vocabulary, direct, model_field, seed_field)

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
    from shoefind.stages.features import model_options
    from shoefind.features.table import load_table
    encoder = load_encoder(model, **model_options(runtime, device))
    return encoder, load_table(table_dir), EmbeddingCache.for_encoder(data_dir, encoder)


def evaluate_table(table_dir: str | os.PathLike, data_dir: str | os.PathLike, model: str | None = None,
                   runtime: str | None = None, device: str | None = None, zeroshot: dict | None = None) -> RunReport:
    """Zero-shot top-1/top-5 per attribute and shoe name of every embedded image. A model shoefind
    trained (LiT, finetune) is scored on the photos it never trained on apart from its training photos
    (shoefind.evaluate.trained_on), and the title says so."""
    from shoefind.evaluate.attributes import evaluate_zero_shot
    from shoefind.evaluate.report import evaluation_title, metrics_markdown, new_run_dir, write_evaluation
    from shoefind.evaluate.trained_on import training_record
    encoder, table, cache = _loaded(table_dir, data_dir, model, runtime, device)
    from shoefind.scoring.zeroshot import ZeroShotOptions
    record = training_record(model, encoder, data_dir)
    evaluation = evaluate_zero_shot(encoder, table, cache, ZeroShotOptions.of(zeroshot),
                                    trained=record.trained if record is not None else None)
    run_dir = new_run_dir(Path(data_dir), "evaluate", table.root.name)
    write_evaluation(run_dir, evaluation, str(table.root), record=record)
    notes = [f"model: {evaluation.model_id}", f"reports: {run_dir}"] + list(evaluation.notes)
    if evaluation.random_weights:
        notes.insert(1, "RANDOM weights: the accuracy below means nothing")
    title = evaluation_title(str(table.root), evaluation, record)
    what = "Zero-shot top-1/top-5" if record is None else f"Top-1/top-5 by split ({evaluation.lead_split} first)"
    return RunReport(run_dir, evaluation.metrics, metrics_markdown(evaluation.metrics, title, notes),
                     f"{what} on {table.root.name} ({evaluation.model_id})", "zero-shot",
                     bool(evaluation.random_weights))


def compare_table(table_dir: str | os.PathLike, data_dir: str | os.PathLike, model: str | None = None,
                  method: str | None = None, shots: str | None = None, seed: int = 0,
                  coop_options: dict | None = None, save: bool = False, log: Log | None = None,
                  zeroshot: dict | None = None, views: int | None = None, runtime: str | None = None,
                  device: str | None = None) -> RunReport:
    """Fit and score the methods at each k on one split; write the run folder (and, with save, the
    learned classifiers that inference then uses). views: augmented views per training photo (None:
    each method's official setting, 0: none; shoefind.features.views)."""
    from shoefind.learn.methods import compare_methods, default_methods
    from shoefind.evaluate.methods_report import comparison_markdown, write_comparison
    from shoefind.evaluate.report import new_run_dir
    from shoefind.features.splits import parse_shots
    encoder, table, cache = _loaded(table_dir, data_dir, model, runtime, device)   # the cache embed filled
    methods = [m for m in (method or default_methods(encoder)).replace(" ", "").split(",") if m]
    from shoefind.scoring.zeroshot import ZeroShotOptions
    comparison = compare_methods(encoder, table, cache, methods, parse_shots(shots), seed=seed,
                                 coop_options=coop_options, log=log, options=ZeroShotOptions.of(zeroshot),
                                 views=views)
    run_dir = new_run_dir(Path(data_dir), "learn" if save else "compare", table.root.name)
    from shoefind.evaluate.trained_on import trained_test_warning, training_record
    trained = trained_test_warning(training_record(model, encoder, data_dir), comparison.split.test()["sha256"])
    write_comparison(run_dir, comparison, str(table.root), methods, warnings=[trained] if trained else [])
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
    from shoefind.scoring.zeroshot import ZeroShotOptions
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
    from shoefind.stages.features import model_options
    from shoefind.features.table import load_table
    table = load_table(table_dir)
    encoders = [load_encoder(m, **model_options(runtime, device)) for m in models]
    from shoefind.scoring.zeroshot import ZeroShotOptions
    comparison = compare_models(encoders, table, Path(data_dir), options=ZeroShotOptions.of(zeroshot), specs=models)
    run_dir = new_run_dir(Path(data_dir), "compare-models", table.root.name)
    write_comparison(run_dir, comparison, str(table.root), models)
    return RunReport(run_dir, comparison.long,
                     comparison_markdown(comparison, f"Model comparison: {table.root.name}", [f"reports: {run_dir}"]),
                     f"Models compared on {table.root.name}: {', '.join(comparison.models)}", "model-comparison",
                     any(getattr(e, "is_random", False) for e in encoders))


def methods_check(model: str | None, method: str | None) -> None:
    """UserError before any work when the model cannot run these methods."""
    if method:
        from shoefind.learn.methods import methods_problem
        if problem := methods_problem(model, method):
            raise UserError(problem)


def comparing(method: str | None, shots: str | None) -> bool:
    return bool(method and method != "zeroshot") or bool(shots)


class EvaluateRequest(Request):
    dataset: Dataset = None
    data_dir: DataDir = None
    model: model_field("the model to score, or A,B,C to score several side by side on the same photos") = None
    catalog: Catalog = None
    batch_size: BatchSize = 32
    task: Annotated[Literal["zeroshot", "change"], Field(
        description="zeroshot (top-1/top-5 per attribute and name) or change (composed retrieval: Recall@k, MRR)")
                    ] = "zeroshot"
    method: Methods = None
    shots: Annotated[Shots, Field(description="with methods: training photos per shoe (16 = k 1,2,4,8,16; or a list "
                                              "1,4,16); default 16")] = None
    seed: seed_field("seed of the k-shot split of --method/--shots (saved in the run folder)") = 0
    cluster: Cluster = None
    runtime: Runtime = None
    device: Device = None
    prompts: Prompts = None
    vocabulary: Vocabulary = None
    filter_attributes: FilterAttributes = None
    fallback: Fallback = None
    views: Views = None
    tta: Tta = None
    image_loading: ImageLoading = None

    def comparing(self) -> bool:
        """Learned methods compared on a k-shot split (an image-only model always is)."""
        from shoefind.encoders.spec import is_image_backbone, spec_text
        return comparing(self.method, self.shots) or is_image_backbone(spec_text(self.model_text()))


def evaluate(request: EvaluateRequest, step=direct, progress=None, log: Log | None = None) -> RunReport:
    """The evaluate stage: table -> embeddings -> scores -> a run folder. Zero-shot top-1/top-5, learned
    methods compared on one split (an image-only model is always compared), several models side by
    side (model A,B,C), or the composed-retrieval benchmark (task change)."""
    from shoefind.checks import require_model
    from shoefind.encoders.load import split_specs
    from shoefind.scoring.zeroshot import ZeroShotOptions
    from shoefind.stages.features import embed_dataset
    dataset, data_dir = request.dataset_paths()
    models = split_specs(request.model_text()) or [None]
    several, compare = len(models) > 1, request.comparing()
    if several and (request.task != "zeroshot" or comparing(request.method, request.shots)):
        raise UserError("--model A,B compares models (zero-shot top-1/top-5, change R@k, speed, load time); "
                        "use --task change, --method or --shots with one model at a time")
    if request.task == "change" and compare:
        raise UserError("--method and --shots apply to the zeroshot task (attribute and name classification)")
    if compare and not several:
        methods_check(models[0], request.method)
    zeroshot = ZeroShotOptions.of(request.zeroshot()).describe()      # a bad option fails before any work
    for spec in models:      # every model is here (or says what is missing) before any embedding starts
        require_model(spec)
    for spec in models:
        embedded = step("embed", embed_dataset, dataset, data_dir, spec, request.catalog, request.batch_size,
                        cluster=request.cluster, runtime=request.runtime, device=request.device, progress=progress,
                        log=log)
    table, model, runtime, device = embedded["table"], models[0], request.runtime, request.device
    if several:
        return step("compare-models", compare_models_table, table, data_dir, models, runtime, device, zeroshot)
    if request.task == "change":
        return step("evaluate-change", evaluate_change_table, table, data_dir, model, runtime, device, zeroshot)
    if compare:
        return step("compare-methods", compare_table, table, data_dir, model, request.method or "zeroshot",
                    str(request.shots or "16"), request.seed, log=log, zeroshot=zeroshot, views=request.views,
                    runtime=runtime, device=device)
    return step("evaluate-zero-shot", evaluate_table, table, data_dir, model, runtime, device, zeroshot)
