"""Reports a reader can act on: per task the chance baseline and a trivial top-5 marked,
per-class accuracy, the worst confusions with thumbnails of the misses, row-normalised
confusion plots, and the warnings that change how to read a table (random weights, classes
without training photos).

The same content is written as report.md (plots linked) and a self-contained report.html
(plots and thumbnails embedded as data URIs); `artifact_markdown` gives a Prefect artifact
its markdown with the plots embedded.
"""
from __future__ import annotations

import base64
import html
import io
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

FIVE_STEP_EXPLAINED = ("'name (5-step)' identifies a shoe in five steps, as the seed project does: classify brand, "
                       "colour, top and sole; keep the catalog shoes whose brand, colour and top match; score those "
                       "with prompts naming their attributes; score every shoe with name prompts; answer the better "
                       "of the two (the best name match when no shoe matched).")
RANDOM_WARNING = "RANDOM weights (a tiny test model): every figure in this report means nothing."
TRIVIAL_TOP5 = 5          # with this many classes or fewer, top-5 holds the right answer by construction
WORST = 10
EXAMPLES_PER_CONFUSION = 3
THUMB_PX = 96


@dataclass
class Confusion:
    task: str
    true: str
    predicted: str
    count: int
    share: float                       # of the true class's photos
    examples: list[str] = field(default_factory=list)    # paths of photos missed this way


@dataclass
class ReportContent:
    """What both report.md and report.html show."""
    title: str
    notes: list[str]                    # model, dataset, options
    warnings: list[str]                 # things that change how to read the figures
    summary: pd.DataFrame               # task, classes, images, top1, top5, chance_top1, chance_top5, majority
    per_class: dict[str, pd.DataFrame]  # task -> class, photos, correct, accuracy (worst first)
    confusions: list[Confusion]
    plots: dict[str, str]               # caption -> file name in the run folder
    extra_markdown: str = ""            # e.g. the method-comparison table


def chance_columns(metrics: pd.DataFrame, confusion: dict) -> pd.DataFrame:
    """Adds the uniform-guess baselines and the most-frequent-class rate per task."""
    m = metrics.copy()
    m["chance_top1"] = [1 / c if c else float("nan") for c in m["classes"]]
    m["chance_top5"] = [min(5, c) / c if c else float("nan") for c in m["classes"]]
    majority = {}
    for task, (_classes, matrix) in confusion.items():
        rows = matrix.sum(axis=1)
        majority[task] = float(rows.max() / rows.sum()) if rows.sum() else float("nan")
    m["majority"] = [majority.get(t, float("nan")) for t in m["task"]]
    return m


def per_class_accuracy(classes: list[str], matrix: np.ndarray) -> pd.DataFrame:
    photos = matrix.sum(axis=1)
    keep = photos > 0
    frame = pd.DataFrame({"class": np.array(classes)[keep], "photos": photos[keep],
                          "correct": np.diag(matrix)[keep]})
    frame["accuracy"] = frame["correct"] / frame["photos"]
    return frame.sort_values(["accuracy", "photos"], ascending=[True, False]).reset_index(drop=True)


def worst_confusions(confusion: dict, predictions: pd.DataFrame | None, dataset: str | Path | None,
                     n: int = WORST) -> list[Confusion]:
    """The n most frequent (true -> predicted) mistakes over every task, with example photos."""
    found = []
    for task, (classes, matrix) in confusion.items():
        rows = matrix.sum(axis=1)
        for i, j in zip(*np.nonzero(matrix)):
            if i != j:
                found.append(Confusion(task, classes[i], classes[j], int(matrix[i, j]), float(matrix[i, j] / rows[i])))
    found.sort(key=lambda c: (-c.count, -c.share, c.task, c.true))
    found = found[:n]
    if predictions is not None and dataset is not None:
        for c in found:
            c.examples = _missed_photos(predictions, Path(dataset), c)
    return found


def _truth_column(predictions: pd.DataFrame, task: str) -> str | None:
    for column in (f"{task}_true", "shoe" if task.startswith("name") else None):
        if column and column in predictions:
            return column
    return None


def _missed_photos(predictions: pd.DataFrame, root: Path, c: Confusion) -> list[str]:
    truth = _truth_column(predictions, c.task)
    pred = f"{c.task}_pred"
    if truth is None or pred not in predictions or "path" not in predictions:
        return []
    hit = predictions[(predictions[truth].astype(str) == c.true) & (predictions[pred].astype(str) == c.predicted)]
    return [str(root / p) for p in hit["path"].head(EXAMPLES_PER_CONFUSION)]


def thumbnail_data_uri(path: str | Path, size: int = THUMB_PX) -> str | None:
    """A small JPEG of the photo as a data: URI (None when it cannot be read)."""
    from PIL import Image
    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            img.thumbnail((size, size))
            buf = io.BytesIO()
            img.save(buf, "JPEG", quality=70)
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def png_data_uri(path: Path, max_px: int | None = None) -> str:
    """A PNG file as a data: URI, scaled down to max_px on its long side when given."""
    data = path.read_bytes()
    if max_px:
        from PIL import Image
        with Image.open(path) as img:
            if max(img.size) > max_px:
                img.thumbnail((max_px, max_px))
                buf = io.BytesIO()
                img.save(buf, "PNG", optimize=True)
                data = buf.getvalue()
    return "data:image/png;base64," + base64.b64encode(data).decode()


def split_warnings(split) -> list[str]:
    """Shoes the learned methods never saw, because all their photos are test photos."""
    images = split.images
    shoes = set(images["shoe"])
    trained = set(images.loc[images["role"] == "pool", "shoe"])
    missing = sorted(shoes - trained)
    if not missing:
        return []
    text = (f"{len(missing)} of {len(shoes)} shoes have no training photo (one photo each, used for testing): "
            f"the learned methods never saw them")
    if len(trained) <= len(shoes) / 2:
        text += (f", so they learned from only {len(trained)} shoe{'s' if len(trained) != 1 else ''} and this "
                 "comparison means nothing. Add photos (at least 2 per shoe) before comparing methods")
    return [text + "."]


# --- markdown -------------------------------------------------------------------------

def _pct(v) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.1%}"


def _md_escape(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _top5_cell(row) -> str:
    cell = _pct(row.top5)
    if row.classes <= TRIVIAL_TOP5 and cell != "-":
        cell += f" (trivial: {row.classes} class{'es' if row.classes != 1 else ''})"
    return cell


def _has_seed_figures(summary: pd.DataFrame) -> bool:
    """Whether the rows carry the seed's published figures (a seed prompt set; see evaluate.attributes)."""
    return "seed_top1" in summary and summary["seed_top1"].notna().any()


def summary_markdown(summary: pd.DataFrame) -> list[str]:
    seed = _has_seed_figures(summary)
    lines = ["| task | classes | photos | top-1 | top-5 | chance top-1 | most frequent class |" + (" seed |" if seed else ""),
             "|---|---:|---:|---:|---:|---:|---:|" + ("---:|" if seed else "")]
    for r in summary.itertuples():
        lines.append(f"| {_md_escape(r.task)} | {r.classes} | {r.images} | {_pct(r.top1)} | {_top5_cell(r)} | "
                     f"{_pct(r.chance_top1)} | {_pct(r.majority)} |" + (f" {_pct(r.seed_top1)} |" if seed else ""))
    return lines


def report_markdown(content: ReportContent, embed_plots_from: Path | None = None, plot_px: int = 900) -> str:
    """report.md: plots linked by file name, or embedded (data URIs) when embed_plots_from is the run folder."""
    lines = [f"# {content.title}", ""]
    lines += [f"> **Warning:** {w}" for w in content.warnings] + ([""] if content.warnings else [])
    lines += [f"> {n}  " for n in content.notes] + [""]     # "  ": one line per note
    if content.extra_markdown:
        lines += [content.extra_markdown.strip(), ""]
    if len(content.summary):
        lines += ["## Accuracy per task", ""] + summary_markdown(content.summary) + [""]
        lines += [f"Chance top-1 is a uniform guess (1 / classes); top-5 is marked trivial with "
                  f"{TRIVIAL_TOP5} classes or fewer.", ""]
    if any(t.startswith("name (5-step") for t in content.summary.get("task", [])):
        lines += [FIVE_STEP_EXPLAINED, ""]
    if content.confusions:
        lines += [f"## The {len(content.confusions)} most frequent confusions", "",
                  "| task | true | predicted as | photos | share of the true class | example misses |",
                  "|---|---|---|---:|---:|---|"]
        for c in content.confusions:
            examples = ", ".join(Path(p).name for p in c.examples)
            lines.append(f"| {_md_escape(c.task)} | {_md_escape(c.true)} | {_md_escape(c.predicted)} | {c.count} | "
                         f"{_pct(c.share)} | {_md_escape(examples)} |")
        lines.append("")
    for task, frame in content.per_class.items():
        lines += [f"## Per-class accuracy: {task} (worst first)", "", "| class | photos | correct | accuracy |",
                  "|---|---:|---:|---:|"]
        lines += [f"| {_md_escape(r['class'])} | {r.photos} | {r.correct} | {_pct(r.accuracy)} |"
                  for _, r in frame.iterrows()]
        lines.append("")
    if content.plots:
        lines += ["## Plots", ""]
        for caption, name in content.plots.items():
            target = png_data_uri(embed_plots_from / name, plot_px) if embed_plots_from else name
            lines += [f"![{caption}]({target})", ""] if embed_plots_from else [f"- [{caption}]({name})"]
        lines.append("")
    lines.append("The same report with thumbnails of the misses: report.html (one self-contained file).")
    return "\n".join(lines) + "\n"


def artifact_markdown(run_dir: str | Path, plot_px: int = 700) -> str:
    """A run's report.md for a Prefect markdown artifact: plots embedded (scaled down), so the
    artifact shows them without access to the run folder; the warnings stay at the top."""
    run_dir = Path(run_dir)
    text = (run_dir / "report.md").read_text()

    def embed(match: re.Match) -> str:
        caption, name = match.group(1), match.group(2)
        path = run_dir / name
        return f"![{caption}]({png_data_uri(path, plot_px)})" if path.is_file() else match.group(0)
    text = re.sub(r"- \[([^\]]+)\]\(([^)\s]+\.png)\)", embed, text)
    return text.replace("report.html (one self-contained file)", f"{run_dir / 'report.html'}")


# --- HTML -----------------------------------------------------------------------------

CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:1.5em auto;padding:0 1em;color:#222}
h1{margin-bottom:.2em} h2{margin-top:1.6em;border-bottom:1px solid #ddd;padding-bottom:.2em}
.warning{background:#fff3cd;border:1px solid #e0c060;color:#5a4300;padding:.6em .9em;border-radius:6px;margin:.5em 0}
.notes{color:#555;font-size:.92em} .explain{background:#eef5ff;padding:.5em .9em;border-radius:6px}
table{border-collapse:collapse;margin:.6em 0;font-size:.93em} th,td{border:1px solid #ddd;padding:4px 8px}
th{background:#f4f4f4} td.num{text-align:right;font-variant-numeric:tabular-nums}
.trivial{color:#999} .bar{display:inline-block;height:.7em;background:#4a90d9;vertical-align:middle}
.thumbs img{height:72px;margin:2px;border:1px solid #ccc;background:#eee}
figure{margin:1em 0} figure img{max-width:100%;border:1px solid #eee} figcaption{color:#555;font-size:.9em}
details{margin:.4em 0} summary{cursor:pointer}
"""


def _h(text) -> str:
    return html.escape(str(text))


def report_html(content: ReportContent, run_dir: Path, plot_px: int = 1100) -> str:
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{_h(content.title)}</title>"
             f"<style>{CSS}</style></head><body><h1>{_h(content.title)}</h1>"]
    parts += [f"<div class='warning'><b>Warning:</b> {_h(w)}</div>" for w in content.warnings]
    parts.append("<div class='notes'>" + "<br>".join(_h(n) for n in content.notes) + "</div>")
    if content.extra_markdown:
        parts.append(_markdown_table_html(content.extra_markdown))
    if len(content.summary):
        seed = _has_seed_figures(content.summary)
        parts.append("<h2>Accuracy per task</h2><table><tr><th>task</th><th>classes</th><th>photos</th><th>top-1</th>"
                     "<th>top-5</th><th>chance top-1</th><th>most frequent class</th>"
                     + ("<th>seed</th>" if seed else "") + "</tr>")
        for r in content.summary.itertuples():
            trivial = r.classes <= TRIVIAL_TOP5 and not pd.isna(r.top5)
            top5 = (f"<span class='trivial' title='{r.classes} classes: top-5 always holds the answer'>"
                    f"{_pct(r.top5)} (trivial)</span>") if trivial else _pct(r.top5)
            parts.append(f"<tr><td>{_h(r.task)}</td><td class='num'>{r.classes}</td><td class='num'>{r.images}</td>"
                         f"<td class='num'><b>{_pct(r.top1)}</b></td><td class='num'>{top5}</td>"
                         f"<td class='num'>{_pct(r.chance_top1)}</td><td class='num'>{_pct(r.majority)}</td>"
                         + (f"<td class='num'>{_pct(r.seed_top1)}</td>" if seed else "") + "</tr>")
        parts.append("</table><p class='notes'>Chance top-1 is a uniform guess (1 / classes); "
                     f"top-5 is marked trivial with {TRIVIAL_TOP5} classes or fewer.</p>")
    if any(str(t).startswith("name (5-step") for t in content.summary.get("task", [])):
        parts.append(f"<p class='explain'>{_h(FIVE_STEP_EXPLAINED)}</p>")
    if content.confusions:
        parts.append(f"<h2>The {len(content.confusions)} most frequent confusions</h2><table><tr><th>task</th>"
                     "<th>true</th><th>predicted as</th><th>photos</th><th>share</th><th>example misses</th></tr>")
        for c in content.confusions:
            thumbs = "".join(f"<img src='{uri}' alt='{_h(Path(p).name)}' title='{_h(p)}'>"
                             for p in c.examples if (uri := thumbnail_data_uri(p)))
            parts.append(f"<tr><td>{_h(c.task)}</td><td>{_h(c.true)}</td><td>{_h(c.predicted)}</td>"
                         f"<td class='num'>{c.count}</td><td class='num'>{_pct(c.share)}</td>"
                         f"<td class='thumbs'>{thumbs}</td></tr>")
        parts.append("</table>")
    if content.per_class:
        parts.append("<h2>Per-class accuracy (worst first)</h2>")
        for task, frame in content.per_class.items():
            rows = "".join(f"<tr><td>{_h(r['class'])}</td><td class='num'>{r.photos}</td>"
                           f"<td class='num'>{r.correct}</td><td class='num'>{_pct(r.accuracy)}</td>"
                           f"<td><span class='bar' style='width:{int(100 * r.accuracy)}px'></span></td></tr>"
                           for _, r in frame.iterrows())
            parts.append(f"<details {'open' if len(frame) <= 12 else ''}><summary>{_h(task)}: {len(frame)} classes"
                         f"</summary><table><tr><th>class</th><th>photos</th><th>correct</th><th>accuracy</th>"
                         f"<th></th></tr>{rows}</table></details>")
    if content.plots:
        parts.append("<h2>Plots</h2>")
        for caption, name in content.plots.items():
            parts.append(f"<figure><img src='{png_data_uri(run_dir / name, plot_px)}' alt='{_h(caption)}'>"
                         f"<figcaption>{_h(caption)} (<a href='{_h(name)}'>{_h(name)}</a>)</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _markdown_table_html(markdown: str) -> str:
    """A markdown pipe table (and the lines around it) as HTML."""
    out, rows = [], []
    for line in markdown.strip().splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if set("".join(cells)) <= set("-:"):
                continue
            rows.append(cells)
        else:
            if rows:
                out.append(_rows_html(rows))
                rows = []
            if line.strip():
                out.append(f"<p>{_h(line.lstrip('#> ').strip())}</p>")
    if rows:
        out.append(_rows_html(rows))
    return "\n".join(out)


def _rows_html(rows: list[list[str]]) -> str:
    head = "".join(f"<th>{_h(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{_h(c)}</td>" for c in r) + "</tr>" for r in rows[1:])
    return f"<table><tr>{head}</tr>{body}</table>"


def write_reports(run_dir: Path, content: ReportContent) -> dict[str, Path]:
    """report.md (plots linked) and report.html (everything embedded) in the run folder."""
    md, page = run_dir / "report.md", run_dir / "report.html"
    md.write_text(report_markdown(content))
    page.write_text(report_html(content, run_dir))
    return {"report.md": md, "report.html": page}
