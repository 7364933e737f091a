"""Showing a finished run in the terminal: warnings first, a rich table, then where the reports are."""
from __future__ import annotations

import json
import math
from pathlib import Path

from rich.console import Console
from rich.markdown import Markdown
from rich.table import Table

TRIVIAL_TOP5 = 5


def _pct(v) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.1%}"


def show_run(run_dir: Path, console: Console | None = None) -> None:
    """metrics.json of an evaluation or a method comparison as a table (other runs: their report.md)."""
    out = console or Console(highlight=False)
    metrics = run_dir / "metrics.json"
    payload = json.loads(metrics.read_text()) if metrics.is_file() else {}
    for warning in payload.get("warnings") or []:
        out.print(f"[bold yellow]warning:[/] {warning}", highlight=False)
    if "comparison" in payload:
        out.print(_comparison_table(payload))
    elif isinstance(payload.get("metrics"), list) and payload["metrics"] and "top1" in payload["metrics"][0]:
        for shown in _evaluation_tables(payload):
            out.print(shown, highlight=False)
    else:
        out.print(Markdown((run_dir / "report.md").read_text()))
    report = run_dir / "report.html"
    out.print(f"reports: {report if report.is_file() else run_dir}", highlight=False)


SPLIT_TITLES = {"held-out": "held-out photos: never trained on, so these are its scores",
                "trained-on": "trained-on photos: learned, so not a test"}


def _evaluation_tables(payload: dict) -> list:
    """The title, one table per split (a trained model's held-out and trained-on photos apart), then the
    caveats: the rows whose top-1 is not clearly above always answering the majority class."""
    splits = list(dict.fromkeys(r.get("split", "all") for r in payload["metrics"]))
    title = payload.get("title") or f"Zero-shot evaluation ({payload.get('model', '')})"
    shown, caveats = [f"[bold]{title}[/]"], []
    # the seed's published figure, beside the rows scored by its rule with its templates only
    seed = any(r.get("seed_top1") is not None for r in payload["metrics"])
    for split in splits:
        table = Table(title=SPLIT_TITLES.get(split), title_justify="left")
        for column in ("task", "classes", "photos", "top-1", "top-5", "chance top-1", "majority class") + \
                (("seed",) if seed else ()):
            table.add_column(column, justify="left" if column == "task" else "right")
        for r in (r for r in payload["metrics"] if r.get("split", "all") == split):
            top5 = _pct(r["top5"])
            if r["classes"] <= TRIVIAL_TOP5 and top5 != "-":
                top5 = f"[dim]{top5} (trivial)[/]"
            caveat = r.get("versus") or ""
            where = f" ({split} photos)" if split != "all" else ""
            if caveat:
                caveats.append(f"[yellow]! {r['task']}{where}: top-1 {_pct(r['top1'])} is {caveat}[/]")
            table.add_row(r["task"], str(r["classes"]), str(r["images"]),
                          f"[bold]{_pct(r['top1'])}[/]" + (" [yellow]![/]" if caveat else ""), top5,
                          _pct(1 / r["classes"]) if r["classes"] else "-", _pct(r.get("majority")),
                          *([_pct(r.get("seed_top1"))] if seed else []))
        shown.append(table)
    return shown + caveats


def _comparison_table(payload: dict) -> Table:
    rows = payload["comparison"]
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    table = Table(title=f"Method comparison ({payload.get('model', '')}); best for name: "
                        f"{payload.get('best_for_name') or '-'}", title_justify="left")
    table.add_column("method")
    table.add_column("k", justify="right")
    for t in tasks:
        table.add_column(f"{t}\ntop-1 / top-5", justify="right")
    by_key: dict[tuple, dict] = {}
    for r in rows:
        by_key.setdefault((r["method"], r["shots"]), {})[r["task"]] = r
    for (method, k), cells in by_key.items():
        table.add_row(method, str(k) if k else "-",
                      *[f"{_pct(cells[t]['top1'])} / {_pct(cells[t]['top5'])}" if t in cells else "-" for t in tasks])
    baselines = payload.get("baselines") or {}
    if baselines:       # what every top-1 must beat, on the same test photos
        from rich.markup import escape
        table.add_section()
        table.add_row("[dim]chance[/]", "", *[f"[dim]{_pct(baselines[t]['chance'])}[/]" if t in baselines else "-"
                                             for t in tasks])
        table.add_row("[dim]majority class[/]", "",
                      *[f"[dim]{_pct(baselines[t]['majority'])} {escape(baselines[t]['majority_class'])}[/]"
                        if t in baselines else "-" for t in tasks])
    return table
