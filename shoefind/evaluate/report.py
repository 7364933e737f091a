"""Writing an evaluation's reports: report.md + report.html, CSV, JSON and confusion matrices in a run folder.

A trained model's evaluation (shoefind.evaluate.trained_on) is titled and laid out as such: the
photos it never trained on first, its own training photos apart."""
from __future__ import annotations

import json
import os
import re
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from shoefind.settings import DataLayout
from shoefind.evaluate.report_html import (BIG_TASK, RANDOM_WARNING, ReportContent, big_task_confusions,
                                           chance_columns, matrix_csv, per_class_accuracy, worst_confusions,
                                           write_reports)
from shoefind.evaluate.trained_on import ALL, HELD_OUT, TRAINED_ON


def new_run_dir(data_dir: Path, kind: str, dataset: str) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-%f")
    d = DataLayout(Path(data_dir)).runs / f"{stamp}-{kind}-{_slug(dataset)}"
    d.mkdir(parents=True, exist_ok=False)
    return d


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:60] or "dataset"


def metrics_markdown(metrics: pd.DataFrame, title: str, notes: list[str] = ()) -> str:
    # one quoted line per note ("  " ends a markdown line, so the notes do not run together)
    lines = [f"# {title}", ""] + [f"> {n}  " for n in notes] + ([""] if notes else [])
    split = "split" in metrics and not set(metrics["split"]) <= {ALL}
    seed = "seed_top1" in metrics and metrics["seed_top1"].notna().any()   # the seed's figure, matching rows only
    lines += ["| task |" + (" photos of |" if split else "") + " classes | images | top-1 | top-5 |"
              + (" seed |" if seed else ""),
              "|---|" + ("---|" if split else "") + "---:|---:|---:|---:|" + ("---:|" if seed else "")]
    for r in metrics.itertuples():
        lines.append(f"| {r.task} |" + (f" {r.split} |" if split else "")
                     + f" {r.classes} | {r.images} | {_percent(r.top1)} | {_percent(r.top5)} |"
                     + (f" {_percent(r.seed_top1)} |" if seed else ""))
    return "\n".join(lines) + "\n"


def evaluation_title(dataset: str, evaluation=None, record=None) -> str:
    """What was scored, said in the title: zero-shot on photos the model never saw, or a trained
    model's held-out and trained-on photos apart."""
    name = Path(dataset).name
    if record is None:
        return f"Zero-shot evaluation: {name}"
    if not record.known:
        return f"Evaluation of a trained model: {name} (which photos trained it is unknown: scores may be flattered)"
    counts = {}
    if evaluation is not None and len(evaluation.predictions):
        counts = evaluation.predictions["split"].value_counts().to_dict()
    held, trained = int(counts.get(HELD_OUT, 0)), int(counts.get(TRAINED_ON, 0))
    if not held:
        return f"Evaluation of a trained model on its own training photos: {name} (not a test: no held-out photo)"
    if not trained:
        return f"Held-out evaluation of a trained model: {name} ({held} photos it never trained on)"
    return (f"Held-out evaluation of a trained model: {name} ({held} held-out photos; the {trained} it trained on "
            "scored apart)")


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


def write_confusions(run_dir: Path, confusion: dict, title: str, caption: str = "confusion matrix"
                     ) -> tuple[dict[str, Path], dict[str, str], dict[str, str]]:
    """Every task's full matrix as CSV; a plot for the tasks of BIG_TASK classes or fewer (a bigger one
    cannot be read: its report lists the confused pairs instead). Returns (files, plots, matrix files)."""
    files, plots, matrices = {}, {}, {}
    for task, (classes, matrix) in confusion.items():
        csv_name = f"confusion_{_slug(task)}.csv"
        files[csv_name] = matrix_csv(classes, matrix, run_dir / csv_name)
        matrices[task] = csv_name
        if len(classes) <= BIG_TASK:
            name = f"confusion_{_slug(task)}.png"
            files[name] = confusion_png(classes, matrix, f"{task} - {title}", run_dir / name)
            plots[f"{task}: {caption}"] = name
    return files, plots, matrices


def write_evaluation(run_dir: Path, evaluation, dataset: str, extra: dict | None = None,
                     record=None) -> dict[str, Path]:
    """Write report.md, report.html, metrics.csv, metrics.json, predictions.csv and the confusion
    matrices. record: the trained model's record (shoefind.evaluate.trained_on), when it is one."""
    notes = [f"model: {evaluation.model_id}", f"dataset: {dataset}"]
    if record is not None:
        notes.append(record.describe(evaluation.predictions.get("sha256", pd.Series([], dtype=str)).tolist()))
        notes += record.notes
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
    title = evaluation_title(dataset, evaluation, record)
    warnings = evaluation_warnings(evaluation, record)
    summary = chance_columns(evaluation.metrics, evaluation.confusion,
                             getattr(evaluation, "confusion_by_split", None) or None)
    files = {}
    files["metrics.csv"] = run_dir / "metrics.csv"
    evaluation.metrics.to_csv(files["metrics.csv"], index=False)
    files["predictions.csv"] = run_dir / "predictions.csv"
    evaluation.predictions.to_csv(files["predictions.csv"], index=False)
    payload = {"dataset": dataset, "model": evaluation.model_id, "random_weights": evaluation.random_weights,
               "title": title, "lead_split": evaluation.lead_split,
               # the metrics with their baselines: chance, the majority class, and a caveat where top-1 is
               # not clearly above always answering it
               "metrics": json.loads(summary.to_json(orient="records")),
               "options": getattr(evaluation, "options", None) or {}, "notes": list(getattr(evaluation, "notes", None) or []),
               "skipped": evaluation.skipped, "warnings": warnings, **(extra or {})}
    if record is not None:
        payload["trained_model"] = {"checkpoint": str(record.checkpoint), "method": record.method,
                                    "dataset": record.dataset, "split_known": record.known}
    files["metrics.json"] = run_dir / "metrics.json"
    tmp = run_dir / ".metrics.json.tmp"
    tmp.write_text(json.dumps(payload, indent=2, default=str))
    os.replace(tmp, files["metrics.json"])
    lead = evaluation.lead_split
    suffix = evaluation.model_id + (f", {lead} photos" if lead != ALL else "")
    more, plots, matrices = write_confusions(run_dir, evaluation.confusion, suffix)
    files |= more
    content = evaluation_content(evaluation, dataset, notes, plots, title=title, warnings=warnings,
                                 matrix_files=matrices, summary=summary)
    files |= write_reports(run_dir, content)
    return files


def evaluation_warnings(evaluation, record=None) -> list[str]:
    """What changes how to read the figures: random weights; a trained model scored on its own training photos."""
    from shoefind.evaluate.baselines import small_test_warning
    warnings = [RANDOM_WARNING] if evaluation.random_weights else []
    if record is not None and not record.known:
        warnings.append("this model was trained, but which photos trained it is unknown (see the notes): its "
                        "scores may include photos it learned, which flatters it")
    elif record is not None:
        counts = evaluation.predictions["split"].value_counts().to_dict() if len(evaluation.predictions) else {}
        held = int(counts.get(HELD_OUT, 0))
        if not held:
            warnings.append("every photo scored here trained this model: these scores say how well it learned "
                            "them, not how it does on photos it has not seen")
        elif warning := small_test_warning(held, "held-out", total=held + int(counts.get(TRAINED_ON, 0))):
            warnings.append(warning)
    return warnings


def evaluation_content(evaluation, dataset: str, notes: list[str], plots: dict[str, str], title: str | None = None,
                       warnings: list[str] | None = None, matrix_files: dict[str, str] | None = None,
                       summary: pd.DataFrame | None = None) -> ReportContent:
    """What the zero-shot evaluation's report.md / report.html show: every split's accuracy table; the
    confusions, per-class accuracy and plots of the lead split (held-out photos of a trained model)."""
    warnings = warnings if warnings is not None else ([RANDOM_WARNING] if evaluation.random_weights else [])
    notes = [n for n in notes if not n.startswith("RANDOM weights")]
    predictions = evaluation.predictions
    lead = predictions[predictions["split"] == evaluation.lead_split] if "split" in predictions else predictions
    by_split = getattr(evaluation, "confusion_by_split", None) or None
    return ReportContent(
        title=title or evaluation_title(dataset), notes=notes, warnings=warnings,
        summary=summary if summary is not None else chance_columns(evaluation.metrics, evaluation.confusion, by_split),
        per_class={t: per_class_accuracy(c, m) for t, (c, m) in evaluation.confusion.items()},
        confusions=worst_confusions(evaluation.confusion, lead, dataset),
        big_confusions=big_task_confusions(evaluation.confusion, lead, dataset, references=predictions),
        plots=plots, matrix_files=matrix_files or {})
