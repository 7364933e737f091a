"""Writing an evaluation's reports: report.md + report.html, CSV, JSON and confusion-matrix PNGs in a run folder."""
from __future__ import annotations

import json
import os
import re
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from shoefind.evaluate.report_html import (RANDOM_WARNING, ReportContent, chance_columns, per_class_accuracy,
                                           worst_confusions, write_reports)


def new_run_dir(data_dir: Path, kind: str, dataset: str) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-%f")
    d = Path(data_dir) / "runs" / f"{stamp}-{kind}-{_slug(dataset)}"
    d.mkdir(parents=True, exist_ok=False)
    return d


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:60] or "dataset"


def metrics_markdown(metrics: pd.DataFrame, title: str, notes: list[str] = ()) -> str:
    # one quoted line per note ("  " ends a markdown line, so the notes do not run together)
    lines = [f"# {title}", ""] + [f"> {n}  " for n in notes] + ([""] if notes else [])
    seed = "seed_top1" in metrics and metrics["seed_top1"].notna().any()   # the seed's figure, matching rows only
    lines += ["| task | classes | images | top-1 | top-5 |" + (" seed |" if seed else ""),
              "|---|---:|---:|---:|---:|" + ("---:|" if seed else "")]
    for r in metrics.itertuples():
        lines.append(f"| {r.task} | {r.classes} | {r.images} | {_percent(r.top1)} | {_percent(r.top5)} |"
                     + (f" {_percent(r.seed_top1)} |" if seed else ""))
    return "\n".join(lines) + "\n"


def _percent(value: float) -> str:
    return "-" if pd.isna(value) else f"{value:.1%}"


def confusion_png(classes: list[str], matrix: np.ndarray, title: str, path: Path) -> Path:
    """The confusion matrix with each true class's row normalised to 100% (so rare and common
    classes read alike); cells are annotated in percent when the matrix is small enough."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # keep the picture readable: only classes that occur as truth or prediction
    used = np.flatnonzero(matrix.sum(axis=0) + matrix.sum(axis=1))
    m = matrix[np.ix_(used, used)]
    rows = m.sum(axis=1, keepdims=True)
    share = np.divide(m, rows, out=np.zeros(m.shape, float), where=rows > 0)
    labels = [classes[i] for i in used]
    n = len(labels)
    size = min(4 + 0.35 * n, 24)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.04, label="share of the true class")
    ax.set_xticks(range(n), labels, rotation=90, fontsize=7 if n > 20 else 9)
    ax.set_yticks(range(n), labels, fontsize=7 if n > 20 else 9)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{title}\n(rows sum to 100%)")
    if n <= 30:
        for i in range(n):
            for j in range(n):
                if m[i, j]:
                    ax.text(j, i, f"{share[i, j]:.0%}", ha="center", va="center", fontsize=7,
                            color="white" if share[i, j] > 0.5 else "black")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_evaluation(run_dir: Path, evaluation, dataset: str, extra: dict | None = None) -> dict[str, Path]:
    """Write report.md, metrics.csv, metrics.json, predictions.csv and confusion_<task>.png."""
    notes = [f"model: {evaluation.model_id}", f"dataset: {dataset}"]
    if evaluation.random_weights:
        notes.append("RANDOM weights (tiny test model): the accuracy below means nothing")
    options = getattr(evaluation, "options", None)
    if options:
        fallback = {"name": "best name match", "relax": "relax attributes"}.get(options["fallback"], options["fallback"])
        notes.append(f"prompts: {options['prompts']}; step-1 classes: {options['vocabulary']} values; "
                     f"step-2 filter: {', '.join(options['filter_attributes']) or 'none'}; empty filter: {fallback}")
    notes += list(getattr(evaluation, "notes", None) or [])
    if evaluation.skipped:
        notes.append(f"{len(evaluation.skipped)} images had no embedding (unreadable) and were not scored")
    files = {}
    files["metrics.csv"] = run_dir / "metrics.csv"
    evaluation.metrics.to_csv(files["metrics.csv"], index=False)
    files["predictions.csv"] = run_dir / "predictions.csv"
    evaluation.predictions.to_csv(files["predictions.csv"], index=False)
    payload = {"dataset": dataset, "model": evaluation.model_id, "random_weights": evaluation.random_weights,
               "metrics": json.loads(evaluation.metrics.to_json(orient="records")),
               "options": getattr(evaluation, "options", None) or {}, "notes": list(getattr(evaluation, "notes", None) or []),
               "skipped": evaluation.skipped, "warnings": [RANDOM_WARNING] if evaluation.random_weights else [],
               **(extra or {})}
    files["metrics.json"] = run_dir / "metrics.json"
    tmp = run_dir / ".metrics.json.tmp"
    tmp.write_text(json.dumps(payload, indent=2))
    os.replace(tmp, files["metrics.json"])
    plots = {}
    for task, (classes, matrix) in evaluation.confusion.items():
        name = f"confusion_{_slug(task)}.png"
        files[name] = confusion_png(classes, matrix, f"{task} - {evaluation.model_id}", run_dir / name)
        plots[f"{task}: confusion matrix"] = name
    files |= write_reports(run_dir, evaluation_content(evaluation, dataset, notes, plots))
    return files


def evaluation_content(evaluation, dataset: str, notes: list[str], plots: dict[str, str]) -> ReportContent:
    """What the zero-shot evaluation's report.md / report.html show."""
    warnings = [RANDOM_WARNING] if evaluation.random_weights else []
    notes = [n for n in notes if not n.startswith("RANDOM weights")]
    return ReportContent(
        title=f"Zero-shot evaluation: {Path(dataset).name}", notes=notes, warnings=warnings,
        summary=chance_columns(evaluation.metrics, evaluation.confusion),
        per_class={t: per_class_accuracy(c, m) for t, (c, m) in evaluation.confusion.items()},
        confusions=worst_confusions(evaluation.confusion, evaluation.predictions, dataset), plots=plots)
