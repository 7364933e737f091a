"""Writing the composed-retrieval benchmark: report.md, metrics.csv, metrics.json, per_template.csv, queries.csv."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

METHOD_NOTES = {
    "constraints": "(c) parsed attribute constraints as catalog filters, ranked by photo + text",
    "fusion": "(b) weighted photo + change-text embedding",
    "baseline": "(a) identify, then match 'Similar to {name}, I want {change}'",
    "photo-only": "the photo alone",
    "text-only": "the change text alone",
}


def change_markdown(metrics: pd.DataFrame, title: str, notes: list[str] = (),
                    per_template: pd.DataFrame | None = None) -> str:
    lines = [f"# {title}", ""] + [f"> {n}" for n in notes] + ([""] if notes else [])
    lines += ["| method | queries | R@1 | R@5 | R@10 | MRR | what it is |", "|---|---:|---:|---:|---:|---:|---|"]
    for r in metrics.to_dict("records"):
        lines.append(f"| {r['method']} | {r['queries']} | {r['recall@1']:.1%} | {r['recall@5']:.1%} | "
                     f"{r['recall@10']:.1%} | {r['mrr']:.3f} | {METHOD_NOTES.get(r['method'], '')} |")
    if per_template is not None and len(per_template):
        lines += ["", "## Per change template (R@5 / MRR)", ""]
        methods = list(dict.fromkeys(per_template["method"]))
        lines += ["| template | queries | " + " | ".join(methods) + " |",
                  "|---|---:|" + "---:|" * len(methods)]
        for template, group in per_template.groupby("template", sort=False):
            cells = {r["method"]: f"{r['recall@5']:.0%} / {r['mrr']:.2f}" for r in group.to_dict("records")}
            lines.append(f"| {template} | {int(group['queries'].iloc[0])} | "
                         + " | ".join(cells.get(m, "") for m in methods) + " |")
    return "\n".join(lines) + "\n"


def write_change_benchmark(run_dir: Path, bench, dataset: str) -> dict[str, Path]:
    notes = [f"model: {bench.model_id}", f"dataset: {dataset}"] + bench.notes
    if bench.random_weights:
        notes.append("RANDOM weights (tiny test model): the figures below mean nothing")
    files = {"report.md": run_dir / "report.md", "metrics.csv": run_dir / "metrics.csv",
             "per_template.csv": run_dir / "per_template.csv", "queries.csv": run_dir / "queries.csv",
             "metrics.json": run_dir / "metrics.json"}
    files["report.md"].write_text(change_markdown(bench.metrics, "Composed retrieval (change in words)", notes,
                                                  bench.per_template))
    bench.metrics.to_csv(files["metrics.csv"], index=False)
    bench.per_template.to_csv(files["per_template.csv"], index=False)
    bench.queries.to_csv(files["queries.csv"], index=False)
    payload = {"task": "change", "dataset": dataset, "model": bench.model_id, "random_weights": bench.random_weights,
               "notes": bench.notes, "metrics": json.loads(bench.metrics.to_json(orient="records")),
               "per_template": json.loads(bench.per_template.to_json(orient="records"))}
    tmp = run_dir / ".metrics.json.tmp"
    tmp.write_text(json.dumps(payload, indent=2))
    os.replace(tmp, files["metrics.json"])
    return files
