"""Reports of a method comparison: report.md + report.html, CSV, JSON, the split, accuracy-vs-k and confusion plots."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pandas as pd

from shoefind.evaluate.baselines import small_test_warning
from shoefind.evaluate.report import _slug, write_confusions
from shoefind.evaluate.report_html import (RANDOM_WARNING, ReportContent, big_task_confusions, chance_columns,
                                           per_class_accuracy, split_warnings, worst_confusions, write_reports)

TASK_ORDER = ["brand", "color", "hightop", "sole", "name"]
METHOD_ORDER = ["zeroshot", "prototype", "tip-adapter", "tip-adapter-f", "linear-probe", "coop", "cocoop"]


def _pct(v: float) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.1%}"


def _ordered(metrics: pd.DataFrame) -> pd.DataFrame:
    m = metrics.copy()
    m["_t"] = m["task"].map(lambda t: TASK_ORDER.index(t) if t in TASK_ORDER else len(TASK_ORDER))
    m["_m"] = m["method"].map(lambda t: METHOD_ORDER.index(t) if t in METHOD_ORDER else len(METHOD_ORDER))
    return m.sort_values(["_m", "shots", "_t"]).drop(columns=["_t", "_m"])


def comparison_markdown(metrics: pd.DataFrame, title: str, notes: list[str] = ()) -> str:
    """One row per (method, k), one top-1 / top-5 column pair per task."""
    m = _ordered(metrics)
    tasks = [t for t in TASK_ORDER if t in set(m["task"])] + sorted(set(m["task"]) - set(TASK_ORDER))
    lines = [f"# {title}", ""] + [f"> {n}" for n in notes] + ([""] if notes else [])
    lines.append("| method | k | " + " | ".join(f"{t} top-1 | {t} top-5" for t in tasks) + " |")
    lines.append("|---|---:|" + "---:|---:|" * len(tasks))
    for (method, k), group in m.groupby(["method", "shots"], sort=False):
        by_task = {r.task: r for r in group.itertuples()}
        cells = []
        for t in tasks:
            r = by_task.get(t)
            cells += [_pct(r.top1), _pct(r.top5)] if r is not None else ["-", "-"]
        lines.append(f"| {method} | {k if k else '-'} | " + " | ".join(cells) + " |")
    if len(m):
        test_images = {r.task: r.images for r in m.itertuples()}
        lines += ["", "Test photos per task (the same for every method and k): "
                  + ", ".join(f"{t} {test_images[t]}" for t in tasks)]
    return "\n".join(lines) + "\n"


def accuracy_plot(metrics: pd.DataFrame, title: str, path: Path) -> Path:
    """Top-1 accuracy against k, one line per method, one panel per task (zero-shot as a dashed line)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = _ordered(metrics)
    tasks = [t for t in TASK_ORDER if t in set(m["task"])]
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 3.6), squeeze=False)
    shots = sorted(k for k in set(m["shots"]) if k)
    for ax, task in zip(axes[0], tasks):
        sub = m[m["task"] == task]
        for method, g in sub.groupby("method", sort=False):
            if method == "zeroshot":
                ax.axhline(float(g["top1"].iloc[0]), linestyle="--", color="gray", label="zeroshot")
            else:
                ax.plot(g["shots"], g["top1"], marker="o", label=method)
        ax.set_xscale("log", base=2)
        if shots:
            ax.set_xticks(shots, [str(k) for k in shots])
        ax.set_ylim(0, 1)
        ax.set_xlabel("shots per shoe (k)")
        ax.set_ylabel("top-1 accuracy")
        ax.set_title(task)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def comparison_payload(comparison, dataset: str, methods: list[str], warnings: list[str] = ()) -> dict:
    metrics = json.loads(_ordered(comparison.metrics).to_json(orient="records"))
    return {"dataset": dataset, "model": comparison.model_id, "random_weights": comparison.random_weights,
            "methods": methods, "shots": comparison.split.shots, "seed": comparison.split.seed,
            "best_for_name": comparison.best("name"), "comparison": metrics,
            "details": comparison.details, "skipped": comparison.skipped,
            "warnings": comparison_warnings(comparison, warnings),
            "baselines": test_baselines(comparison)}


def test_baselines(comparison) -> dict[str, dict]:
    """Per task: chance and the majority class of the test photos (what every method's top-1 must beat)."""
    from shoefind.evaluate.baselines import majority_of
    confusion = getattr(comparison, "confusion", {}).get(_reported_method(comparison), {})
    out = {}
    for task, (classes, matrix) in confusion.items():
        if majority := majority_of(classes, matrix):
            out[task] = {"chance": 1 / len(classes), "majority": majority.rate, "majority_class": majority.label}
    return out


def write_comparison(run_dir: Path, comparison, dataset: str, methods: list[str],
                     warnings: list[str] = ()) -> dict[str, Path]:
    """report.md, comparison.csv, metrics.json, accuracy_vs_k.png and the split (split.csv, split.json).
    warnings: more of what changes how to read it (e.g. a model that trained on the test photos)."""
    notes = [f"model: {comparison.model_id}", f"dataset: {dataset}",
             f"split: seed {comparison.split.seed}, k in {comparison.split.shots}, saved in split.csv"]
    if comparison.skipped:
        notes.append(f"{len(comparison.skipped)} images had no embedding (unreadable) and were not used")
    files = {"report.md": run_dir / "report.md", "comparison.csv": run_dir / "comparison.csv",
             "metrics.json": run_dir / "metrics.json"}
    _ordered(comparison.metrics).to_csv(files["comparison.csv"], index=False)
    tmp = run_dir / ".metrics.json.tmp"
    tmp.write_text(json.dumps(comparison_payload(comparison, dataset, methods, warnings), indent=2, default=str))
    os.replace(tmp, files["metrics.json"])
    files["split.csv"] = comparison.split.save(run_dir)
    plots = {}
    if (comparison.metrics["shots"] > 0).any():
        files["accuracy_vs_k.png"] = accuracy_plot(comparison.metrics,
                                                   f"{_slug(Path(dataset).name)} - {comparison.model_id}",
                                                   run_dir / "accuracy_vs_k.png")
        plots["top-1 accuracy against shots per shoe"] = "accuracy_vs_k.png"
    best = _reported_method(comparison)
    confusion = getattr(comparison, "confusion", {}).get(best, {})
    more, confusion_plots, matrices = write_confusions(run_dir, confusion, f"{best} - {comparison.model_id}",
                                                       f"confusion matrix of {best}")
    files |= more
    plots |= confusion_plots
    files |= write_reports(run_dir, comparison_content(comparison, dataset, notes, plots, best, matrices,
                                                                warnings))
    return files


def _reported_method(comparison) -> str | None:
    """The method whose confusions the report shows: the best learned one, else zero-shot."""
    confusion = getattr(comparison, "confusion", {})
    best = comparison.best("name")
    return best if best in confusion else next(iter(confusion), None)


def comparison_warnings(comparison, more: list[str] = ()) -> list[str]:
    """Random weights; shoes with no training photo (a one-photo-per-shoe catalog: the comparison means
    nothing); too few test photos to tell the methods apart; a model that trained on the test photos."""
    out = [RANDOM_WARNING] if comparison.random_weights else []
    if (comparison.metrics["shots"] > 0).any():
        out += split_warnings(comparison.split)
        test = len(comparison.split.test())
        if warning := small_test_warning(test, "held out for testing", total=len(comparison.split.images)):
            out.append(warning)
    return out + list(more)


def comparison_content(comparison, dataset: str, notes: list[str], plots: dict[str, str],
                       best: str | None, matrix_files: dict[str, str] | None = None,
                       warnings: list[str] = ()) -> ReportContent:
    m = _ordered(comparison.metrics)
    confusion = getattr(comparison, "confusion", {}).get(best, {})
    if best is not None:       # per task: the reported method at its largest k
        m = m[m["method"] == best]
        m = m[m["shots"] == m["shots"].max()]
    summary = chance_columns(m.reset_index(drop=True), confusion)
    summary["task"] = [f"{t} ({best}{f', k={k}' if k else ''})" for t, k in zip(summary["task"], summary["shots"])]
    table = comparison_markdown(comparison.metrics, "", []).split("\n", 2)[2]
    predictions = getattr(comparison, "predictions", {}).get(best)
    return ReportContent(
        title=f"Method comparison: {Path(dataset).name}", notes=notes,
        warnings=comparison_warnings(comparison, warnings),
        summary=summary, per_class={f"{t} ({best})": per_class_accuracy(c, mat) for t, (c, mat) in confusion.items()},
        confusions=worst_confusions(confusion, predictions, dataset),
        big_confusions=big_task_confusions(confusion, predictions, dataset), matrix_files=matrix_files or {},
        plots=plots, extra_markdown="## All methods\n\n" + table)
