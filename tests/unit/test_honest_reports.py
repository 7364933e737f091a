"""Reports that do not flatter: a trained model's own training photos scored apart from the held-out
ones (and the title saying so), the majority-class baseline beside chance with a caveat where top-1
does not clearly beat it, the minimum number of held-out photos stated, and the top confused pairs
(with thumbnails of both shoes) instead of an unreadable matrix above 30 classes."""
from __future__ import annotations

import json
import math
import re
import shutil

import numpy as np
import pandas as pd
import pytest

from shoefind.evaluate.attributes import evaluate_zero_shot
from shoefind.evaluate.baselines import (MIN_TEST_PHOTOS, Majority, binomial_tail, small_test_warning,
                                         versus_majority)
from shoefind.evaluate.report import new_run_dir, write_evaluation
from shoefind.evaluate.trained_on import HELD_OUT, TRAINED_ON, TrainingRecord, training_record
from tests.helpers import make_photo
from tests.unit.test_reports import embedded


def catalog_folders(root, shoes: list[tuple[str, str, str, str, str]], photos: int = 2):
    """Brand_Top_Color_Sole_Name folders of generated photos, one colour per shoe."""
    for i, (brand, top, color, sole, name) in enumerate(shoes):
        for j in range(photos):
            make_photo(root / f"{brand}_{top}_{color}_{sole}_{name}" / f"photo {j}.jpg",
                       color=((i * 53) % 255, (i * 97) % 255, (i * 151) % 255), seed=i * 10 + j)
    return root


# --- the baselines -------------------------------------------------------------------------------

def test_binomial_tail_is_exact():
    for n, p in ((12, 0.83), (30, 0.5), (7, 0.1)):
        for k in range(n + 2):
            direct = sum(math.comb(n, i) * p ** i * (1 - p) ** (n - i) for i in range(k, n + 1))
            assert binomial_tail(k, n, p) == pytest.approx(direct, abs=1e-12)


def test_a_score_near_the_majority_class_is_called_what_it_is():
    nike = Majority("Nike", 0.94, 1440)
    # the case: 94% of the photos are Nike, brand top-1 95%
    assert versus_majority(0.95, 1440, nike) == "not clearly better than always answering 'Nike' (94.0%) on 1440 photos"
    assert versus_majority(0.90, 1440, nike) == "no better than always answering 'Nike' (94.0%)"
    assert versus_majority(0.94, 1440, nike) == "no better than always answering 'Nike' (94.0%)"
    assert versus_majority(0.99, 1440, nike) is None                     # clearly better
    assert versus_majority(0.9, 100, Majority("Nike", 0.5, 100)) is None
    assert "nothing to tell apart" in versus_majority(1.0, 10, Majority("Nike", 1.0, 10))


def test_too_few_held_out_photos_says_so_and_states_the_minimum():
    # the case: 30 photos, 1 held out, zero-shot top-1 100%
    text = small_test_warning(1, "held out", total=30, top1=1.0)
    assert text.startswith("only 1 of 30 photo held out")
    assert "anything from 21% to 100%" in text                            # the 95% Wilson interval of 1/1
    assert f"at least {MIN_TEST_PHOTOS} held out photos are needed" in text
    assert small_test_warning(MIN_TEST_PHOTOS, "held out") is None


# --- the majority class in a report ---------------------------------------------------------------

def test_a_one_brand_catalog_says_brand_top1_does_not_beat_always_answering_it(tiny_model, tmp_path):
    """10 of 12 photos are Nike: whatever the model answers, brand top-1 is no better, or not clearly
    better, than always answering Nike (83%), and the report says so beside chance."""
    root = catalog_folders(tmp_path / "ds", [("Nike", "High", "Red", "Plain Sole", f"Air {c}") for c in
                                             ("Red", "Blue", "Black", "White", "Green")]
                           + [("Vans", "Low", "Black", "Rubber Sole", "Old Black")])
    enc, table, cache = embedded(tiny_model, root, tmp_path)
    evaluation = evaluate_zero_shot(enc, table, cache)
    run = new_run_dir(tmp_path / "data", "evaluate", "ds")
    write_evaluation(run, evaluation, str(root))
    brand = evaluation.metrics.set_index("task").loc["brand"]
    expected = versus_majority(brand.top1, int(brand.images), Majority("Nike", 10 / 12, 12))
    assert expected and re.match(r"(no|not clearly) better than always answering 'Nike' \(83\.3%\)", expected)
    md = (run / "report.md").read_text()
    verdict = "not clearly" if expected.startswith("not clearly") else "no"
    assert re.search(rf"\| brand \| 2 \| 12 \| [\d.]+% \| .* \| 50\.0% \| 83\.3% \(Nike\) \| {verdict} \|", md), md
    assert f"brand: top-1 {brand.top1:.1%} is {expected}." in md
    assert "majority-class baseline" in md and "always answering the most frequent class" in md
    html = (run / "report.html").read_text()
    assert "83.3% (Nike)" in html and "class='caveat'" in html
    payload = json.loads((run / "metrics.json").read_text())
    row = next(r for r in payload["metrics"] if r["task"] == "brand")
    assert row["majority_class"] == "Nike" and row["majority"] == pytest.approx(10 / 12)
    assert row["versus"] == expected


# --- a trained model's photos ---------------------------------------------------------------------

def test_a_trained_models_training_photos_are_scored_apart_and_the_title_says_so(tiny_model, tmp_path):
    root = catalog_folders(tmp_path / "ds", [("Nike", "High", "Red", "Plain Sole", "Air Red"),
                                             ("Nike", "Low", "Blue", "Plain Sole", "Dunk Blue"),
                                             ("Vans", "Low", "Black", "Rubber Sole", "Old Black")], photos=4)
    enc, table, cache = embedded(tiny_model, root, tmp_path)
    shas = table.images.sort_values("path")["sha256"].tolist()
    trained = frozenset(shas[::2])                      # every other photo trained the model
    record = TrainingRecord(tmp_path / "m.lit.pt", "lit", str(root), trained, frozenset(shas[1::2]))
    evaluation = evaluate_zero_shot(enc, table, cache, trained=trained)
    run = new_run_dir(tmp_path / "data", "evaluate", "ds")
    write_evaluation(run, evaluation, str(root), record=record)

    m = evaluation.metrics
    assert set(m["split"]) == {HELD_OUT, TRAINED_ON}
    assert (m.loc[m["split"] == HELD_OUT, "images"] == 6).all()
    assert (m.loc[m["split"] == TRAINED_ON, "images"] == 6).all()
    # each split's top-1 is what its own photos' predictions say
    preds = evaluation.predictions
    for split in (HELD_OUT, TRAINED_ON):
        rows = preds[preds["split"] == split]
        assert set(rows["sha256"]) == (set(shas) - trained if split == HELD_OUT else trained)
        top1 = m[(m["split"] == split) & (m["task"] == "brand")]["top1"].item()
        assert top1 == pytest.approx((rows["brand_true"] == rows["brand_pred"]).mean())
    # the confusions, per-class accuracy and matrices are the held-out photos'
    assert pd.read_csv(run / "confusion_brand.csv", index_col=0).to_numpy().sum() == 6

    md = (run / "report.md").read_text()
    title = md.splitlines()[0]
    assert title == "# Held-out evaluation of a trained model: ds (6 held-out photos; the 6 it trained on scored apart)"
    held = md.index("## Accuracy per task: held-out photos (6)")
    assert held < md.index("## Accuracy per task: trained-on photos (6): the model learned these, so their scores "
                           "are not a test")
    assert "m.lit.pt was trained (lit) on 6 of these 12 photos; the other 6 it never trained on" in md
    assert "only 6 of 12 photos held-out" in md and f"at least {MIN_TEST_PHOTOS}" in md
    payload = json.loads((run / "metrics.json").read_text())
    assert payload["lead_split"] == HELD_OUT and payload["title"] == title[2:]
    assert payload["trained_model"]["method"] == "lit"

    # a model that trained on every photo here: not a test, and the report says so
    everything = evaluate_zero_shot(enc, table, cache, trained=frozenset(shas))
    run2 = new_run_dir(tmp_path / "data", "evaluate", "ds")
    write_evaluation(run2, everything, str(root), record=TrainingRecord(record.checkpoint, "lit", str(root),
                                                                        frozenset(shas)))
    md2 = (run2 / "report.md").read_text()
    assert md2.startswith("# Evaluation of a trained model on its own training photos: ds (not a test")
    assert "every photo scored here trained this model" in md2


def test_the_training_record_is_read_from_the_manifest_and_split_beside_the_checkpoint(tmp_path):
    """As `learn --method lit` writes them (write_model, HeldOutSplit.save); found again after the model
    folder moved, and followed back through a checkpoint it continued."""
    from shoefind.features.heldout import heldout_split
    from shoefind.features.table import build_table
    from shoefind.learn.captions import shoe_labels
    from shoefind.learn.checkpoint import write_model
    root = catalog_folders(tmp_path / "ds", [("Nike", "High", c, "Plain Sole", f"Air {c}") for c in
                                             ("Red", "Blue", "Black")], photos=5)
    table = build_table(root)
    split = heldout_split(table.images, shoe_labels(table.shoes), table.layout, seed=0)

    def save(checkpoint, base):
        checkpoint.parent.mkdir(parents=True, exist_ok=True)       # as learn_lit_dataset does
        split_file = split.save(checkpoint.with_name(checkpoint.name + ".split.csv"))
        write_model(checkpoint, lambda tmp: tmp.write_bytes(b"weights"),
                    {"method": "lit", "dataset": str(root), "base": base,
                     "split": split.describe() | {"file": str(split_file)}})
    first = tmp_path / "models" / "first.lit.pt"
    save(first, {"spec": "efficientnet-lite0"})
    record = training_record(str(first))
    assert record.trained == frozenset(split.train()["sha256"])
    assert record.heldout == frozenset(split.heldout()["sha256"])
    assert record.trained and record.heldout and record.method == "lit"

    moved = tmp_path / "elsewhere"
    shutil.copytree(first.parent, moved)
    shutil.rmtree(first.parent)
    assert training_record(str(moved / "first.lit.pt")).trained == record.trained   # split file beside it

    # a second model that continued the first one learned the first one's training photos as well
    other = tmp_path / "models2" / "second.lit.pt"
    split.images["role"] = np.where(split.images["role"] == "train", "heldout", "train")    # the other way round
    save(other, {"spec": "efficientnet-lite0", "continued_from": str(moved / "first.lit.pt")})
    chained = training_record(str(other))
    assert chained.trained == frozenset(table.images["sha256"]) and not chained.heldout
    assert training_record(str(tmp_path / "nope.pt")) is None and training_record("clip:ViT-B/32") is None
    (moved / "first.lit.pt.split.csv").unlink()
    unknown = training_record(str(moved / "first.lit.pt"))
    assert unknown.trained is None and "split file" in unknown.notes[0]


# --- many classes ---------------------------------------------------------------------------------

def test_above_30_classes_the_report_lists_confused_pairs_and_keeps_the_matrix_as_csv(tiny_model, tmp_path):
    colours = ["Red", "Blue", "Black", "White", "Green", "Pink", "Grey", "Orange"]
    shoes = [(brand, "High", c, "Plain Sole", f"{brand} Model {c}") for brand in ("Nike", "Vans", "Puma", "Asics")
             for c in colours]                                  # 32 shoes, 4 brands
    root = catalog_folders(tmp_path / "ds", shoes)
    enc, table, cache = embedded(tiny_model, root, tmp_path)
    evaluation = evaluate_zero_shot(enc, table, cache)
    run = new_run_dir(tmp_path / "data", "evaluate", "ds")
    write_evaluation(run, evaluation, str(root))

    matrix = pd.read_csv(run / "confusion_name.csv", index_col=0)
    assert matrix.shape == (32, 32) and matrix.to_numpy().sum() == 64
    assert not (run / "confusion_name.png").exists() and (run / "confusion_brand.png").is_file()
    md = (run / "report.md").read_text()
    assert "## Top confused pairs: name (32 classes)" in md and "[confusion_name.csv](confusion_name.csv)" in md
    assert "name: confusion matrix" not in md and "brand: confusion matrix" in md
    section = md.split("## Top confused pairs: name (32 classes)")[1].split("\n## ")[0]
    rows = [r for r in section.splitlines() if r.startswith("| ") and not r.startswith("| true")]
    wrong = int(matrix.to_numpy().sum() - np.trace(matrix.to_numpy()))
    assert 0 < len(rows) <= 15 and wrong > 0
    for row in rows:    # the reference photo is a photo of the shoe it was taken for
        true, predicted, count, _share, missed, reference = [c.strip() for c in row.strip("|").split("|")]
        assert int(count) == matrix.loc[true, predicted] and true != predicted
        assert reference.split("/")[0].endswith("_" + predicted) and missed.split("/")[0].endswith("_" + true)
    html = (run / "report.html").read_text()
    pairs = html.split("<h2>Top confused pairs: name</h2>")[1].split("</table>")[0]
    assert pairs.count("<tr>") == len(rows) + 1 and pairs.count("<img src='data:image/jpeg") == 2 * len(rows)
    # the small-task confusion list leaves the 32-class task to its own section
    small = md.split("most frequent confusions")[1].split("\n## ")[0] if "most frequent confusions" in md else ""
    assert "| name |" not in small
