"""Reports a reader can act on: per task the chance and majority-class baselines (and whether
top-1 clearly beats the majority class), a trivial top-5 marked, per-class accuracy, the worst
confusions with thumbnails of the misses, row-normalised confusion plots (above
BIG_TASK classes, a list of the top confused pairs with thumbnails of both shoes instead; the full
matrix stays in a CSV file), and the warnings that change how to read a table (random weights,
classes without training photos, too few test photos). A trained model's own training photos are
scored in a section of their own, apart from the held-out ones.

The same content is written as report.md (plots linked) and a self-contained report.html
(plots and thumbnails embedded as data URIs); `artifact_markdown` gives a Prefect artifact
its markdown with the plots embedded.
"""
from __future__ import annotations

import base64
import html
import io
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from shoefind.evaluate.baselines import majority_of, versus_majority
from shoefind.evaluate.trained_on import ALL, HELD_OUT, SPLIT_ORDER, TRAINED_ON

SPLIT_HEADINGS = {
    HELD_OUT: "Held-out photos ({n}): the model never trained on these, so these are its scores",
    TRAINED_ON: "Trained-on photos ({n}): the model learned these, so their scores are not a test (shown apart)",
}
MAJORITY_EXPLAINED = ("Chance top-1 is a uniform guess (1 / classes); the majority-class baseline is the top-1 of "
                      "always answering the most frequent class of these photos. 'beats majority' says whether top-1 "
                      "is clearly above it (one-sided binomial test, 5%).")

FIVE_STEP_EXPLAINED = ("'name (5-step)' identifies a shoe in five steps, as the seed project does: classify brand, "
                       "colour, top and sole; keep the catalog shoes whose brand, colour and top match; score those "
                       "with prompts naming their attributes; score every shoe with name prompts; answer the better "
                       "of the two (the best name match when no shoe matched).")
RANDOM_WARNING = "RANDOM weights (a tiny test model): every figure in this report means nothing."
TRIVIAL_TOP5 = 5          # with this many classes or fewer, top-5 holds the right answer by construction
WORST = 10
BIG_TASK = 30             # above this many classes a confusion matrix cannot be read: list the pairs instead
TOP_PAIRS = 15            # confused pairs listed per big task
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
    reference: str | None = None                         # a photo of the predicted class (big tasks)
    classes: int = 0                                     # how many classes the task has


@dataclass
class ReportContent:
    """What both report.md and report.html show."""
    title: str
    notes: list[str]                    # model, dataset, options
    warnings: list[str]                 # things that change how to read the figures
    # task, [split,] classes, images, top1, top5, chance_top1, chance_top5, majority, majority_class, versus
    summary: pd.DataFrame
    per_class: dict[str, pd.DataFrame]  # task -> class, photos, correct, accuracy (worst first)
    confusions: list[Confusion]         # the most frequent mistakes of the tasks with BIG_TASK classes or fewer
    plots: dict[str, str]               # caption -> file name in the run folder
    extra_markdown: str = ""            # e.g. the method-comparison table
    big_confusions: dict[str, list[Confusion]] = field(default_factory=dict)   # task -> its top confused pairs
    matrix_files: dict[str, str] = field(default_factory=dict)                 # task -> its full matrix (CSV)


def chance_columns(metrics: pd.DataFrame, confusion: dict, by_split: dict | None = None) -> pd.DataFrame:
    """Adds the uniform-guess baselines, the majority class and its rate, and a caveat where top-1 is
    not clearly above always answering the majority class. confusion: task -> (classes, matrix);
    by_split: split -> that, for metrics with a split column (a trained model's held-out and trained-on rows)."""
    m = metrics.copy()
    m["chance_top1"] = [1 / c if c else float("nan") for c in m["classes"]]
    m["chance_top5"] = [min(5, c) / c if c else float("nan") for c in m["classes"]]
    rates, labels, versus = [], [], []
    for r in m.itertuples():
        source = by_split.get(getattr(r, "split", ALL), {}) if by_split is not None else confusion
        found = source.get(r.task)
        majority = majority_of(*found) if found else None
        rates.append(majority.rate if majority else float("nan"))
        labels.append(majority.label if majority else "")
        caveat = versus_majority(r.top1, int(r.images), majority) if majority else None
        versus.append(caveat or "")
    m["majority"], m["majority_class"], m["versus"] = rates, labels, versus
    return m


def _beats_cell(row) -> str:
    """yes / no / not clearly: top-1 against the majority-class baseline."""
    if not getattr(row, "majority_class", "") or pd.isna(row.top1):
        return "-"
    verdict = getattr(row, "versus", "") or ""
    if verdict.startswith("not clearly"):
        return "not clearly"
    if verdict.startswith("meaningless"):
        return "one class"
    return "no" if verdict else "yes"


def _majority_cell(row) -> str:
    label = getattr(row, "majority_class", "") or ""
    return f"{_pct(row.majority)} ({label})" if label else _pct(row.majority)


def summary_groups(summary: pd.DataFrame) -> list[tuple[str | None, pd.DataFrame]]:
    """The summary as (heading, rows) per split: one group without a heading for an untrained model."""
    if "split" not in summary or set(summary["split"]) <= {ALL}:
        return [(None, summary)]
    out = []
    for split in SPLIT_ORDER:
        rows = summary[summary["split"] == split]
        if len(rows):
            heading = SPLIT_HEADINGS.get(split, split).format(n=int(rows["images"].max()))
            out.append((heading, rows.reset_index(drop=True)))
    return out


def caveats(summary: pd.DataFrame) -> list[str]:
    """One line per row whose top-1 is not clearly above the majority class."""
    out = []
    for r in summary.itertuples():
        if getattr(r, "versus", ""):
            where = f" ({r.split})" if getattr(r, "split", ALL) != ALL else ""
            out.append(f"{r.task}{where}: top-1 {_pct(r.top1)} is {r.versus}.")
    return out


def per_class_accuracy(classes: list[str], matrix: np.ndarray) -> pd.DataFrame:
    photos = matrix.sum(axis=1)
    keep = photos > 0
    frame = pd.DataFrame({"class": np.array(classes)[keep], "photos": photos[keep],
                          "correct": np.diag(matrix)[keep]})
    frame["accuracy"] = frame["correct"] / frame["photos"]
    return frame.sort_values(["accuracy", "photos"], ascending=[True, False]).reset_index(drop=True)


def worst_confusions(confusion: dict, predictions: pd.DataFrame | None, dataset: str | Path | None,
                     n: int = WORST) -> list[Confusion]:
    """The n most frequent (true -> predicted) mistakes over every task of BIG_TASK classes or fewer,
    with example photos (a bigger task gets its own list: big_task_confusions)."""
    small = {t: cm for t, cm in confusion.items() if len(cm[0]) <= BIG_TASK}
    found = _pairs(small)[:n]
    if predictions is not None and dataset is not None:
        for c in found:
            c.examples = _missed_photos(predictions, Path(dataset), c)
    return found


def big_task_confusions(confusion: dict, predictions: pd.DataFrame | None, dataset: str | Path | None,
                        references: pd.DataFrame | None = None, n: int = TOP_PAIRS) -> dict[str, list[Confusion]]:
    """Per task of more than BIG_TASK classes: its n most frequent confused pairs, each with a missed
    photo and a photo of the shoe it was taken for (from `references`, default the predictions)."""
    out = {}
    for task, (classes, matrix) in confusion.items():
        if len(classes) <= BIG_TASK:
            continue
        pairs = _pairs({task: (classes, matrix)})[:n]
        if predictions is not None and dataset is not None:
            pool = references if references is not None else predictions
            for c in pairs:
                c.examples = _missed_photos(predictions, Path(dataset), c)[:1]
                c.reference = _photo_of(pool, Path(dataset), task, c.predicted)
        out[task] = pairs
    return out


def _pairs(confusion: dict) -> list[Confusion]:
    found = []
    for task, (classes, matrix) in confusion.items():
        rows = matrix.sum(axis=1)
        for i, j in zip(*np.nonzero(matrix)):
            if i != j:
                found.append(Confusion(task, classes[i], classes[j], int(matrix[i, j]), float(matrix[i, j] / rows[i]),
                                       classes=len(classes)))
    found.sort(key=lambda c: (-c.count, -c.share, c.task, c.true))
    return found


def _photo_of(predictions: pd.DataFrame, root: Path, task: str, label: str) -> str | None:
    """A photo whose true class is `label` (one the model got right, when there is one)."""
    truth = _truth_column(predictions, task)
    if truth is None or "path" not in predictions:
        return None
    rows = predictions[predictions[truth].astype(str) == label]
    pred = f"{task}_pred"
    if pred in rows:
        rows = pd.concat([rows[rows[pred].astype(str) == label], rows[rows[pred].astype(str) != label]])
    return str(root / rows["path"].iloc[0]) if len(rows) else None


def matrix_csv(classes: list[str], matrix: np.ndarray, path: Path) -> Path:
    """The full confusion matrix as CSV: one row per true class, one column per predicted class (photos)."""
    frame = pd.DataFrame(matrix, index=pd.Index(classes, name="true \\ predicted"), columns=classes)
    tmp = path.with_name(f".{path.name}.tmp")
    frame.to_csv(tmp)
    os.replace(tmp, path)
    return path


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
    seed = _has_seed_figures(summary)      # the seed's published figure, beside its matching rows only
    lines = ["| task | classes | photos | top-1 | top-5 | chance top-1 | majority-class baseline | beats majority |"
             + (" seed |" if seed else ""),
             "|---|---:|---:|---:|---:|---:|---:|---|" + ("---:|" if seed else "")]
    for r in summary.itertuples():
        lines.append(f"| {_md_escape(r.task)} | {r.classes} | {r.images} | {_pct(r.top1)} | {_top5_cell(r)} | "
                     f"{_pct(r.chance_top1)} | {_md_escape(_majority_cell(r))} | {_beats_cell(r)} |"
                     + (f" {_pct(r.seed_top1)} |" if seed else ""))
    return lines


def _summary_section_markdown(content: ReportContent) -> list[str]:
    lines = []
    groups = summary_groups(content.summary)
    for heading, rows in groups:
        lines += ["## Accuracy per task" + (f": {heading[0].lower()}{heading[1:]}" if heading else ""), ""]
        lines += summary_markdown(rows) + [""]
        if notes := caveats(rows):
            lines += [f"- **{_md_escape(n)}**" for n in notes] + [""]
    lines += [f"{MAJORITY_EXPLAINED} Top-5 is marked trivial with {TRIVIAL_TOP5} classes or fewer.", ""]
    return lines


def _pair_markdown(content: ReportContent) -> list[str]:
    lines = []
    for task, pairs in content.big_confusions.items():
        matrix = content.matrix_files.get(task)
        if not pairs:
            lines += [f"## Top confused pairs: {task}", "", "None: every photo was given its own class.", ""]
            continue
        classes = pairs[0].classes
        lines += [f"## Top confused pairs: {task} ({classes} classes)", "",
                  f"A {classes}-class confusion matrix cannot be read; these are its {len(pairs)} most frequent "
                  "mistakes" + (f". The full matrix: [{matrix}]({matrix})." if matrix else "."), "",
                  "| true | predicted as | photos | share of the true class | a missed photo "
                  "| a photo of the predicted |",
                  "|---|---|---:|---:|---|---|"]
        for c in pairs:
            missed = "/".join(Path(c.examples[0]).parts[-2:]) if c.examples else "-"
            ref = "/".join(Path(c.reference).parts[-2:]) if c.reference else "-"
            lines.append(f"| {_md_escape(c.true)} | {_md_escape(c.predicted)} | {c.count} | {_pct(c.share)} | "
                         f"{_md_escape(missed)} | {_md_escape(ref)} |")
        lines.append("")
    return lines


def report_markdown(content: ReportContent, embed_plots_from: Path | None = None, plot_px: int = 900) -> str:
    """report.md: plots linked by file name, or embedded (data URIs) when embed_plots_from is the run folder."""
    lines = [f"# {content.title}", ""]
    lines += [f"> **Warning:** {w}  " for w in content.warnings] + ([""] if content.warnings else [])
    lines += [f"> {n}  " for n in content.notes] + [""]     # "  ": one line per note
    if content.extra_markdown:
        lines += [content.extra_markdown.strip(), ""]
    if len(content.summary):
        lines += _summary_section_markdown(content)
    if any(str(t).startswith("name (5-step") for t in content.summary.get("task", [])):
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
    lines += _pair_markdown(content)
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
    small_matrices = {t: f for t, f in content.matrix_files.items() if t not in content.big_confusions}
    if small_matrices:
        lines += ["Confusion matrices as CSV (photos; rows: true class, columns: predicted): "
                  + ", ".join(f"[{f}]({f})" for f in small_matrices.values()), ""]
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
td.caveat{background:#fff3cd} ul.caveats{color:#5a4300}
figure.pair{display:inline-block;margin:2px 4px;text-align:center} figure.pair figcaption{font-size:.8em}
.arrow{font-size:1.4em;vertical-align:middle;color:#888}
"""


def _h(text) -> str:
    return html.escape(str(text))


def _summary_html(rows: pd.DataFrame) -> str:
    seed = _has_seed_figures(rows)
    parts = ["<table><tr><th>task</th><th>classes</th><th>photos</th><th>top-1</th><th>top-5</th>"
             "<th>chance top-1</th><th>majority-class baseline</th><th>beats majority</th>"
             + ("<th>seed</th>" if seed else "") + "</tr>"]
    for r in rows.itertuples():
        trivial = r.classes <= TRIVIAL_TOP5 and not pd.isna(r.top5)
        top5 = (f"<span class='trivial' title='{r.classes} classes: top-5 always holds the answer'>"
                f"{_pct(r.top5)} (trivial)</span>") if trivial else _pct(r.top5)
        beats = _beats_cell(r)
        css = " class='caveat'" if beats in ("no", "not clearly") else ""
        parts.append(f"<tr><td>{_h(r.task)}</td><td class='num'>{r.classes}</td><td class='num'>{r.images}</td>"
                     f"<td class='num'><b>{_pct(r.top1)}</b></td><td class='num'>{top5}</td>"
                     f"<td class='num'>{_pct(r.chance_top1)}</td><td class='num'>{_h(_majority_cell(r))}</td>"
                     f"<td{css} title='{_h(getattr(r, 'versus', '') or '')}'>{_h(beats)}</td>"
                     + (f"<td class='num'>{_pct(r.seed_top1)}</td>" if seed else "") + "</tr>")
    parts.append("</table>")
    if notes := caveats(rows):
        parts.append("<ul class='caveats'>" + "".join(f"<li>{_h(n)}</li>" for n in notes) + "</ul>")
    return "".join(parts)


def _thumb(path: str | None, caption: str) -> str:
    uri = thumbnail_data_uri(path) if path else None
    img = f"<img src='{uri}' alt='{_h(Path(path).name)}' title='{_h(path)}'>" if uri else "<span>-</span>"
    return f"<figure class='pair'>{img}<figcaption>{_h(caption)}</figcaption></figure>"


def _pairs_html(content: ReportContent) -> str:
    parts = []
    for task, pairs in content.big_confusions.items():
        matrix = content.matrix_files.get(task)
        if not pairs:
            parts.append(f"<h2>Top confused pairs: {_h(task)}</h2><p>None: every photo was given its own class.</p>")
            continue
        link = f" The full matrix: <a href='{_h(matrix)}'>{_h(matrix)}</a>." if matrix else ""
        parts.append(f"<h2>Top confused pairs: {_h(task)}</h2><p class='notes'>Too many classes for a readable "
                     f"confusion matrix: its {len(pairs)} most frequent mistakes, a missed photo beside a photo of "
                     f"the shoe it was taken for.{link}</p><table><tr><th>true</th><th>predicted as</th>"
                     "<th>photos</th><th>share</th><th>missed photo &rarr; predicted shoe</th></tr>")
        for c in pairs:
            pictures = (_thumb(c.examples[0] if c.examples else None, c.true) + "<span class='arrow'>&rarr;</span>"
                        + _thumb(c.reference, c.predicted))
            parts.append(f"<tr><td>{_h(c.true)}</td><td>{_h(c.predicted)}</td><td class='num'>{c.count}</td>"
                         f"<td class='num'>{_pct(c.share)}</td><td class='thumbs'>{pictures}</td></tr>")
        parts.append("</table>")
    return "\n".join(parts)


def report_html(content: ReportContent, run_dir: Path, plot_px: int = 1100) -> str:
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{_h(content.title)}</title>"
             f"<style>{CSS}</style></head><body><h1>{_h(content.title)}</h1>"]
    parts += [f"<div class='warning'><b>Warning:</b> {_h(w)}</div>" for w in content.warnings]
    parts.append("<div class='notes'>" + "<br>".join(_h(n) for n in content.notes) + "</div>")
    if content.extra_markdown:
        parts.append(_markdown_table_html(content.extra_markdown))
    if len(content.summary):
        for heading, rows in summary_groups(content.summary):
            parts.append(f"<h2>Accuracy per task{': ' + _h(heading) if heading else ''}</h2>")
            parts.append(_summary_html(rows))
        parts.append(f"<p class='notes'>{_h(MAJORITY_EXPLAINED)} Top-5 is marked trivial with {TRIVIAL_TOP5} "
                     "classes or fewer.</p>")
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
    parts.append(_pairs_html(content))
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
    small_matrices = [f for t, f in content.matrix_files.items() if t not in content.big_confusions]
    if small_matrices:
        parts.append("<p class='notes'>Confusion matrices as CSV (photos; rows: true class, columns: predicted): "
                     + ", ".join(f"<a href='{_h(f)}'>{_h(f)}</a>" for f in small_matrices) + "</p>")
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
