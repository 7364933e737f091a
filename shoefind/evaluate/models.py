"""Several models on the same labeled photos: one side-by-side table, a plot, the files of a run.

For each model spec: zero-shot top-1/top-5 per task (the same split for all: every labeled
photo), change-in-words Recall@k, images/s on this machine (decode + preprocess + encode of
a fixed sample, after one warm-up batch) and load time. Embeddings come from the shared cache
(the evaluate flow embeds first). Image-only models get no zero-shot or change figures.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

SPEED_SAMPLE = 32
CHANGE_METHOD = "constraints"     # shoefind's default change method; its R@k goes in the table


@dataclass
class ModelComparison:
    table: pd.DataFrame                      # rows: metric; columns: "metric" + one per model
    models: list[str]                        # column names (model ids, in the order given)
    notes: list[str] = field(default_factory=list)
    long: pd.DataFrame | None = None         # model, metric, value (for CSV/artifacts)
    baselines: dict = field(default_factory=dict)    # task -> chance, majority, majority_class (every photo)


def measure_speed(encoder, paths: list[str], sample: int = SPEED_SAMPLE) -> float:
    """Images per second (decode + preprocess + encode) on this machine, over a fixed sample."""
    paths = paths[:sample]
    if not paths:
        return float("nan")
    encoder.encode_images(paths[:min(4, len(paths))])  # warm-up: first-call allocations and kernels
    start = time.perf_counter()
    encoder.encode_images(paths)
    return len(paths) / max(time.perf_counter() - start, 1e-9)


def evaluate_model(encoder, table, data_dir: Path, change: bool = True, options=None,
                   spec: str | None = None) -> tuple[dict, list[str]]:
    """One model's figures as {metric: value}, plus notes. A model shoefind trained on some of these
    photos is scored on the others only (shoefind.evaluate.trained_on)."""
    from shoefind.evaluate.attributes import evaluate_zero_shot
    from shoefind.evaluate.trained_on import HELD_OUT, training_record
    from shoefind.features.cache import EmbeddingCache
    notes = []
    row = {"family": getattr(encoder, "family", "clip"), "embed dim": encoder.embed_dim,
           "load s": round(float(getattr(encoder, "load_seconds", float("nan"))), 2)}
    paths = [str(table.root / p) for p in table.images["path"]]
    row["images/s"] = round(measure_speed(encoder, paths), 1)
    if not encoder.has_text:
        notes.append(f"{encoder.model_id} is image-only: no zero-shot or change figures")
        return row, notes
    record = training_record(spec, encoder, data_dir)
    evaluation = evaluate_zero_shot(encoder, table, EmbeddingCache.for_encoder(data_dir, encoder), options,
                                    trained=record.trained if record is not None else None)
    if record is not None:
        lead = evaluation.split_metrics(evaluation.lead_split)
        photos = int(lead["images"].max()) if len(lead) else 0
        notes.append(f"{encoder.model_id}: top-1/top-5 on the {photos} photos it never trained on"
                     if evaluation.lead_split == HELD_OUT else
                     f"{encoder.model_id}: trained on every photo here, or on unknown ones: its top-1/top-5 are "
                     "not a test")
    for r in evaluation.split_metrics(evaluation.lead_split).itertuples():
        row[f"{r.task} top-1"] = r.top1
        row[f"{r.task} top-5"] = r.top5
    if change:
        from shoefind.evaluate.change import KS, evaluate_change
        from shoefind.features.catalog import EmptyCatalog, open_catalog
        try:
            bench = evaluate_change(encoder, open_catalog(encoder, table.root, data_dir), options=options)
        except EmptyCatalog as exc:
            notes.append(f"change: {exc}")
        else:
            m = bench.metrics.set_index("method") if len(bench.metrics) else None
            if m is not None and CHANGE_METHOD in m.index:
                for k in KS:
                    row[f"change R@{k}"] = float(m.loc[CHANGE_METHOD, f"recall@{k}"])
            else:
                notes.append(f"change: {encoder.model_id}: no change query had a relevant shoe in this catalog")
    if getattr(encoder, "is_random", False):
        notes.append(f"{encoder.model_id} has RANDOM weights (tiny test model): its accuracy means nothing")
    return row, notes


def compare_models(encoders: list, table, data_dir: Path, change: bool = True, options=None,
                   specs: list[str] | None = None) -> ModelComparison:
    """options: the zero-shot options (ZeroShotOptions) every model is scored with; specs: the specs
    the encoders were loaded from (to find a trained model's manifest)."""
    rows, notes, names = {}, [], []
    for i, enc in enumerate(encoders):
        name = enc.model_id if enc.model_id not in rows else f"{enc.model_id} ({len(rows) + 1})"
        rows[name], more = evaluate_model(enc, table, Path(data_dir), change=change, options=options,
                                          spec=specs[i] if specs else None)
        names.append(name)
        notes += more
    metrics = list(dict.fromkeys(k for r in rows.values() for k in r))
    wide = pd.DataFrame({"metric": metrics} | {n: [rows[n].get(m) for m in metrics] for n in names})
    long = pd.DataFrame([{"model": n, "metric": m, "value": rows[n].get(m)} for n in names for m in metrics])
    from shoefind.evaluate.baselines import photo_baselines
    return ModelComparison(wide, names, notes, long, photo_baselines(table))


def _cell(metric: str, value) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "-"
    if isinstance(value, float) and ("top-" in metric or metric.startswith("change R@")):
        return f"{value:.1%}"
    return str(value)


def comparison_markdown(cmp: ModelComparison, title: str, notes: list[str] = ()) -> str:
    lines = [f"# {title}", ""] + [f"> {n}" for n in list(notes) + cmp.notes] + [""]
    lines += ["| metric | " + " | ".join(cmp.models) + " |", "|---|" + "---:|" * len(cmp.models)]
    for r in cmp.table.to_dict("records"):
        lines.append(f"| {r['metric']} | " + " | ".join(_cell(r['metric'], r[m]) for m in cmp.models) + " |")
    lines += ["", "images/s: decode + preprocess + encode of up to "
              f"{SPEED_SAMPLE} photos on this machine (noisy on a shared machine); load s: first load in this process."]
    if cmp.baselines:   # below the table, which stays narrow enough for a terminal
        lines += ["", "What each top-1 must beat (chance: a uniform guess; majority class: always answering the most "
                  "frequent class of the labeled photos):", ""]
        lines += [f"- {task}: chance {b['chance']:.1%}, majority class {b['majority']:.1%} ({b['majority_class']})"
                  for task, b in cmp.baselines.items()]
    return "\n".join(lines) + "\n"


def comparison_png(cmp: ModelComparison, path: Path) -> Path:
    """Grouped bars: top-1 per task (and change R@5) for each model."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    metrics = [m for m in cmp.table["metric"] if m.endswith("top-1") or m == "change R@5"]
    fig, ax = plt.subplots(figsize=(min(14, max(6, 0.5 * len(metrics) * max(1, len(cmp.models)))), 5))
    width = 0.8 / max(1, len(cmp.models))
    values = cmp.table.set_index("metric")
    for i, model in enumerate(cmp.models):
        ys = [float(values.loc[m, model]) if values.loc[m, model] is not None else 0.0 for m in metrics]
        ax.bar(np.arange(len(metrics)) + i * width, ys, width, label=model)
    ax.set_xticks(np.arange(len(metrics)) + width * (len(cmp.models) - 1) / 2, metrics, rotation=30, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy / recall")
    ax.set_title("Models compared on the same photos")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_comparison(run_dir: Path, cmp: ModelComparison, dataset: str, specs: list[str]) -> dict[str, Path]:
    """report.md (the side-by-side table), metrics.csv, metrics.json and comparison.png."""
    files = {"report.md": run_dir / "report.md", "metrics.csv": run_dir / "metrics.csv",
             "metrics.json": run_dir / "metrics.json", "comparison.png": run_dir / "comparison.png"}
    files["report.md"].write_text(comparison_markdown(cmp, "Model comparison", [f"dataset: {dataset}"]))
    cmp.table.to_csv(files["metrics.csv"], index=False)
    files["metrics.json"].write_text(json.dumps(
        {"dataset": dataset, "specs": specs, "models": cmp.models, "notes": cmp.notes,
         "metrics": json.loads(cmp.table.to_json(orient="records")), "baselines": cmp.baselines}, indent=2))
    comparison_png(cmp, files["comparison.png"])
    return files
