"""Reports a reader can act on: chance baselines, trivial top-5, per-class accuracy, the worst
confusions with thumbnails, row-normalised plots, warnings; report.html is self-contained."""
from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from shoefind.cli.report_view import show_run
from shoefind.evaluate.attributes import evaluate_zero_shot
from shoefind.learn.methods import compare_methods
from shoefind.evaluate.methods_report import write_comparison
from shoefind.evaluate.report import new_run_dir, write_evaluation
from shoefind.evaluate.report_html import (artifact_markdown, chance_columns, per_class_accuracy,
                                           worst_confusions)
from shoefind.features.cache import EmbeddingCache
from shoefind.features.embed import embed_images
from shoefind.encoders.load import load_model
from shoefind.features.table import build_table

from tests.helpers import make_labeled_dataset, make_photo


def embedded(model, root, folder):
    enc = load_model(model)
    table = build_table(root)
    cache = EmbeddingCache(folder / "emb", enc.cache_key)
    embed_images(enc, cache, [(str(table.root / p), s) for p, s in zip(table.images.path, table.images.sha256)])
    return enc, table, cache


def test_chance_per_class_and_worst_confusions_on_a_known_matrix():
    classes = ["a", "b", "c"]
    matrix = np.array([[8, 2, 0],      # a: 80% right, 2 taken for b
                       [5, 5, 0],      # b: 50% right, 5 taken for a
                       [0, 1, 1]])     # c: 50% right
    metrics = pd.DataFrame([{"task": "t", "classes": 3, "images": 22, "top1": 14 / 22, "top5": 1.0}])
    summary = chance_columns(metrics, {"t": (classes, matrix)})
    assert summary.loc[0, "chance_top1"] == pytest.approx(1 / 3) and summary.loc[0, "chance_top5"] == 1.0
    assert summary.loc[0, "majority"] == pytest.approx(10 / 22)
    per_class = per_class_accuracy(classes, matrix)
    assert per_class["class"].tolist() == ["b", "c", "a"]                   # worst first, ties by photos
    assert per_class["accuracy"].tolist() == pytest.approx([0.5, 0.5, 0.8])
    worst = worst_confusions({"t": (classes, matrix)}, None, None)
    assert [(c.true, c.predicted, c.count) for c in worst] == [("b", "a", 5), ("a", "b", 2), ("c", "b", 1)]
    assert worst[0].share == pytest.approx(0.5)


def test_evaluation_report_html_is_self_contained_and_complete(tiny_model, tmp_path):
    root = make_labeled_dataset(tmp_path / "ds")
    enc, table, cache = embedded(tiny_model, root, tmp_path)
    evaluation = evaluate_zero_shot(enc, table, cache)
    run = new_run_dir(tmp_path / "data", "evaluate", "ds")
    files = write_evaluation(run, evaluation, str(root))
    assert {"report.md", "report.html"} <= set(files)
    page = (run / "report.html").read_text()
    md = (run / "report.md").read_text()
    # self-contained: every image is a data URI; the plot files are linked as well
    assert re.findall(r"<img[^>]+src='([^']+)'", page) and all(
        src.startswith("data:image/") for src in re.findall(r"<img[^>]+src='([^']+)'", page))
    assert "href='confusion_brand.png'" in page and "(confusion_brand.png)" in md
    # the misses are shown as small JPEG thumbnails
    thumbs = re.findall(r"src='data:image/jpeg;base64,([^']+)'", page)
    assert thumbs and all(len(t) < 20_000 for t in thumbs)
    for text in (page, md):
        assert "RANDOM weights" in text                                   # a warning at the top
        assert "trivial" in text and "chance top-1" in text               # 4 brands: top-5 is trivial
        assert "identifies a shoe in five steps" in text                  # the 5-step method, in one line
        assert "most frequent confusions" in text and "Per-class accuracy" in text
    assert md.index("RANDOM weights") < md.index("## Accuracy per task")
    assert "| brand | 3 | 8 |" in md and "(trivial: 3 classes)" in md
    payload = json.loads((run / "metrics.json").read_text())
    assert payload["warnings"] and "RANDOM" in payload["warnings"][0]
    # the Prefect artifact: the same report with the plots embedded, warning included
    artifact = artifact_markdown(run)
    assert "RANDOM weights" in artifact and "](data:image/png;base64," in artifact
    assert "(confusion_brand.png)" not in artifact


def test_one_photo_per_shoe_comparison_warns_that_it_means_nothing(tiny_model, tmp_path, capsys):
    root = make_labeled_dataset(tmp_path / "ds", n_per_shoe=1)
    make_photo(root / "Nike_High_Red_Plain Sole_Air Test Red" / "second.jpg", seed=77)
    enc, table, cache = embedded(tiny_model, root, tmp_path)
    comparison = compare_methods(enc, table, cache, ["fewshot"], [1])
    run = new_run_dir(tmp_path / "data", "learn", "ds")
    write_comparison(run, comparison, str(root), ["fewshot"])
    md = (run / "report.md").read_text()
    assert "3 of 4 shoes have no training photo" in md and "this comparison means nothing" in md
    assert "this comparison means nothing" in (run / "report.html").read_text()
    assert (run / "confusion_name.png").is_file() and "| tip-adapter | 1 |" in md
    show_run(run)
    shown = " ".join(capsys.readouterr().out.split())
    assert "warning: 3 of 4 shoes have no training photo" in shown and "this comparison means nothing" in shown
    assert "|---" not in shown and "report.html" in shown       # a table, not raw markdown
