import json

import numpy as np
import pandas as pd
from PIL import Image

from shoefind.features.cache import EmbeddingCache
from shoefind.features.embed import embed_images
from shoefind.evaluate.attributes import evaluate_zero_shot
from shoefind.scoring.metrics import accuracy_at
from shoefind.encoders.load import load_model
from shoefind.evaluate.report import new_run_dir, write_evaluation
from shoefind.features.table import build_table
from shoefind.scoring.zeroshot import ZeroShotModel, top_k

from tests.helpers import make_labeled_dataset

TASKS = ["brand", "color", "hightop", "sole", "name", "name (5-step)", "name (5-step, seed's oracle rule)"]


def embedded(tiny_model, root, tmp_path):
    enc = load_model(tiny_model)
    ft = build_table(root)
    cache = EmbeddingCache(tmp_path / "emb", enc.cache_key)
    embed_images(enc, cache, [(str(ft.root / p), s) for p, s in zip(ft.images.path, ft.images.sha256)])
    return enc, ft, cache


def test_top_k_and_accuracy():
    scores = np.array([[0.1, 0.9, 0.5], [0.8, 0.1, 0.3]])
    assert top_k(scores, 2).tolist() == [[1, 2], [0, 2]]
    assert accuracy_at(np.array([2, 0]), top_k(scores, 3), 1) == 0.5
    assert accuracy_at(np.array([2, 0]), top_k(scores, 3), 2) == 1.0


def test_five_step_scores_only_raise_matching_shoes(tiny_model, tmp_path):
    enc, ft, cache = embedded(tiny_model, make_labeled_dataset(tmp_path / "ds"), tmp_path)
    zs = ZeroShotModel.build(enc, ft.shoes)
    result = zs.identify(cache.matrix(ft.images.sha256.tolist()))
    assert set(result.attribute_probs) == {"brand", "color", "hightop", "sole"}
    for probs in result.attribute_probs.values():
        np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert (result.combined_scores >= result.name_scores - 1e-6).all()


def test_report_files_and_every_image_scored(tiny_model, tmp_path):
    root = make_labeled_dataset(tmp_path / "ds")
    Image.new("RGB", (10, 10)).save(root / "Nike_High_Red_Plain Sole_Air Test Red" / "tiny.png")
    (root / "Nike_High_Red_Plain Sole_Air Test Red" / "bad.jpg").write_bytes(b"\xff\xd8\xff" + b"0" * 100)
    enc, ft, cache = embedded(tiny_model, root, tmp_path)
    ev = evaluate_zero_shot(enc, ft, cache)
    assert ev.metrics.task.tolist() == TASKS
    assert (ev.metrics.images == 9).all() and len(ev.predictions) == 9
    scored = ev.metrics.set_index("task")
    assert scored["top1"].between(0, 1).all()
    # the oracle picks between two top-1 answers: it has no top-5, and it is never below the rule
    assert scored["top5"].drop("name (5-step, seed's oracle rule)").between(0, 1).all()
    assert scored.loc["name (5-step, seed's oracle rule)", "top1"] >= scored.loc["name (5-step)", "top1"]
    run = new_run_dir(tmp_path / "data", "evaluate", "ds")
    write_evaluation(run, ev, "ds")
    for name in ["report.md", "metrics.csv", "metrics.json", "predictions.csv"] + \
            [f"confusion_{t}.png" for t in ("brand", "color", "hightop", "sole", "name", "name-5-step")]:
        assert (run / name).is_file(), name
    payload = json.loads((run / "metrics.json").read_text())
    assert payload["random_weights"] is True and {m["task"] for m in payload["metrics"]} == set(TASKS)
    report = (run / "report.md").read_text()
    assert "RANDOM weights" in report and "| name (5-step) |" in report
    assert "| name (5-step, seed's oracle rule) | 4 | 9 |" in report and "upper bound" in report
    assert Image.open(run / "confusion_brand.png").size[0] > 200
    assert pd.read_csv(run / "metrics.csv").shape[0] == len(TASKS)


def test_shared_labeled_photos_are_all_scored(tiny_model, shared_data, tmp_path):
    enc, ft, cache = embedded(tiny_model, shared_data / "findyourshoes-labeled", tmp_path)
    ev = evaluate_zero_shot(enc, ft, cache)
    assert not ev.skipped and (ev.metrics.images == 30).all()
    assert ev.metrics.set_index("task").loc["name", "classes"] == 28
