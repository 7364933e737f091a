"""Honest reports with trained models: the demo model evaluated on its own catalog scores its 464
held-out photos apart from the 976 it trained on (and agrees with the demo's own held-out figure);
`learn --method lit` on a 32-photo catalog warns that its held-out split is too small, states the
minimum, shows every phase, and its checkpoint's evaluation is split the same way."""
from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from shoefind.evaluate.baselines import MIN_TEST_PHOTOS
from tests.helpers import make_photo
from tests.helpers.cli import shoefind


def data_with_embeddings(source, tmp_path):
    """A data folder holding a copy of a trained model's embedding cache (runs are written there)."""
    data = tmp_path / "data"
    shutil.copytree(source / "embeddings", data / "embeddings")
    return data


def test_the_demo_evaluation_scores_held_out_and_trained_on_photos_apart(demo_lit, tmp_path):
    data = data_with_embeddings(demo_lit.data_dir, tmp_path)
    code, out, err = shoefind("evaluate", demo_lit.catalog, "--model", demo_lit.model, "--data-dir", data, "--json")
    assert code == 0, err
    payload = json.loads(out)
    split = demo_lit.split
    held, trained = int((split["role"] == "heldout").sum()), int((split["role"] == "train").sum())
    assert (held, trained) == (demo_lit.result["split"]["heldout_photos"], demo_lit.result["split"]["train_photos"])
    assert payload["title"] == (f"Held-out evaluation of a trained model: catalog ({held} held-out photos; the "
                                f"{trained} it trained on scored apart)")
    rows = pd.DataFrame(payload["metrics"])
    assert rows["split"].tolist()[:len(rows) // 2] == ["held-out"] * (len(rows) // 2)     # held-out rows first
    assert set(rows.loc[rows["split"] == "held-out", "images"]) == {held}
    assert set(rows.loc[rows["split"] == "trained-on", "images"]) == {trained}
    # the held-out name top-1 is the one the demo reported when it trained the model
    name = rows[(rows["split"] == "held-out") & (rows["task"] == "name")]["top1"].item()
    assert name == pytest.approx(demo_lit.result["zero_shot"]["name"]["top1"], abs=1e-3)

    run = next((data / "runs").glob("*-evaluate-catalog"))
    predictions = pd.read_csv(run / "predictions.csv", dtype={"sha256": str})
    roles = dict(zip(split["sha256"], split["role"].map({"heldout": "held-out", "train": "trained-on"})))
    assert (predictions["sha256"].map(roles) == predictions["split"]).all()
    md = (run / "report.md").read_text()
    assert md.index(f"held-out photos ({held})") < md.index(f"trained-on photos ({trained})")
    assert "demo.lit.pt was trained (lit) on 976 of these 1440 photos" in md
    # 144 shoes: the confused pairs with thumbnails, the matrix as a file, no unreadable picture
    assert "## Top confused pairs: name (144 classes)" in md
    assert (run / "confusion_name.csv").is_file() and not (run / "confusion_name.png").exists()
    assert "majority-class baseline" in md


@pytest.fixture(scope="module")
def small_lit(tiny_model, tmp_path_factory):
    """`learn --method lit` over the tiny CLIP on a 32-photo catalog (4 shoes, 8 photos each), as a user runs it."""
    root = tmp_path_factory.mktemp("small") / "ds"
    shoes = [("Nike", "High", "Red", "Air Red"), ("Nike", "Low", "Blue", "Dunk Blue"),
             ("Vans", "Low", "Black", "Old Black"), ("Converse", "High", "White", "Chuck White")]
    for i, (brand, top, color, name) in enumerate(shoes):
        for j in range(8):
            make_photo(root / f"{brand}_{top}_{color}_Plain Sole_{name}" / f"photo {j}.jpg",
                       color=((i * 70) % 255, (i * 30) % 255, 200 - i * 40), seed=i * 10 + j)
    data = root.parent / "data"
    out = root.parent / "models" / "small.pt"
    code, stdout, stderr = shoefind("learn", root, "--method", "lit", "--model", tiny_model, "--steps", "2",
                                    "--out", out, "--data-dir", data, "--json")
    assert code == 0, stderr
    return root, data, out, json.loads(stdout), stderr


def test_learn_lit_on_a_small_catalog_warns_and_states_the_minimum(small_lit):
    _root, _data, out, result, _stderr = small_lit
    held = result["heldout"]["photos"]
    assert 0 < held < MIN_TEST_PHOTOS
    warning = result["warnings"][0]
    assert warning.startswith(f"only {held} of 32 photos held out")
    assert f"at least {MIN_TEST_PHOTOS} held out photos are needed" in warning
    manifest = out.with_name(out.name + ".md").read_text()
    assert manifest.splitlines()[2] == f"> **Warning:** {warning}  "          # first thing under the title
    assert "| chance | majority class |" in manifest
    saved = json.loads(out.with_name(out.name + ".json").read_text())
    assert saved["warnings"] == result["warnings"] and saved["heldout_baselines"] == result["baselines"]
    assert result["baselines"]["brand_top1"]["majority_class"] == "Nike"


def test_learn_lit_shows_every_phase(small_lit):
    stderr = small_lit[4]
    phases = ["reading images", "loading ", "embedding photos", "writing captions",
              "scoring held-out photos before training", "training the text tower", "scoring held-out photos",
              "writing the checkpoint"]
    where = [stderr.find(p) for p in phases]
    assert all(i >= 0 for i in where), stderr


def test_a_lit_checkpoints_evaluation_is_split_by_its_own_held_out_photos(small_lit):
    root, data, out, result, _stderr = small_lit
    code, stdout, stderr = shoefind("evaluate", root, "--model", out, "--data-dir", data, "--json")
    assert code == 0, stderr
    payload = json.loads(stdout)
    rows = pd.DataFrame(payload["metrics"])
    held = result["heldout"]["photos"]
    assert set(rows.loc[rows["split"] == "held-out", "images"]) == {held}
    assert set(rows.loc[rows["split"] == "trained-on", "images"]) == {32 - held}
    assert payload["title"].startswith("Held-out evaluation of a trained model: ds")
    assert any(w.startswith(f"only {held} of 32 photos held-out") for w in payload["warnings"])
    # the terminal shows the two splits apart
    code, shown, stderr = shoefind("evaluate", root, "--model", out, "--data-dir", data)
    assert code == 0, stderr
    flat = " ".join(shown.split())
    assert "held-out photos: never trained on, so these are its scores" in flat
    assert "trained-on photos: learned, so not a test" in flat


def test_a_method_comparison_on_the_models_own_training_photos_says_so(small_lit):
    root, data, out, result, _stderr = small_lit
    code, stdout, stderr = shoefind("evaluate", root, "--model", out, "--method", "zeroshot,fewshot", "--shots", "2",
                                    "--data-dir", data, "--json")
    assert code == 0, stderr
    payload = json.loads(stdout)
    test_photos = 32 - 4 * 2                                     # 2 training photos per shoe, the rest test
    learned = [w for w in payload["warnings"] if w.startswith("small.pt trained on ")]
    assert learned and f"of these {test_photos} test photos" in learned[0]
    assert any(w.startswith(f"only {test_photos} of 32 photos held out for testing") for w in payload["warnings"])
    assert payload["baselines"]["brand"]["majority_class"] == "Nike"       # 2 of the 4 shoes are Nike
