"""Known answers: every text path checked against a model that knows the labels (issue 15).

The demo model (LiT over efficientnet-lite0 trained on the demo catalog of drawings, see
tests/helpers/trained_models.py: trained once per machine) is scored on held-out demo photos
through the library paths the commands use: zero-shot attributes, the 5-step method, change in
words, text search, few-shot and CoOp. The same measurements on a random-weights model must
fail, or these tests could not catch a swapped label or a prompt that never reaches the model.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.helpers import REPO
from tests.helpers.known_answers import ACCURACY_CHECKS, CHECKS, failures, measure


@pytest.fixture(scope="module")
def demo_scores(demo_lit):
    from shoefind.encoders.load import load_encoder
    return measure(load_encoder(str(demo_lit.model)), demo_lit)


@pytest.mark.parametrize("check", list(CHECKS))
def test_the_demo_model_knows_the_answer(demo_scores, check):
    missed = [f for f in failures(demo_scores) if f.startswith(check + ":")]
    assert not missed, f"{missed} (all scores: {demo_scores})"


def test_the_same_checks_fail_for_random_weights(demo_lit, tiny_model):
    from shoefind.encoders.load import load_encoder
    scores = measure(load_encoder(tiny_model, runtime="torch"), demo_lit, coop_epochs=3)
    missed = failures(scores)
    for check in ACCURACY_CHECKS:
        assert any(f.startswith(check + ":") for f in missed), f"{check} passed for random weights: {scores}"


def test_demo_reports_its_held_out_scores(demo_lit):
    """What `shoefind demo --json` says, and the manifest beside the model."""
    result = demo_lit.result
    assert set(result["zero_shot"]) >= {"brand", "color", "hightop", "name_5step"}
    assert all(result["zero_shot"][k]["top1"] >= 0.9 for k in ("brand", "color", "hightop"))
    manifest = json.loads(open(result["manifest"]).read())
    assert manifest["base"]["spec"] == "efficientnet-lite0" and manifest["base"]["sha256"]
    assert manifest["split"]["by"] == ["shoe", "photo"]
    assert manifest["heldout"]["color_top1"] == result["zero_shot"]["color"]["top1"]
    assert manifest["heldout_before"]["prototype_top1"] is not None       # the image-only reference
    assert manifest["training"]["seconds"] > 0 and manifest["table_hash"]


def test_demo_cli_json(demo_lit, tmp_path):
    """`shoefind demo DIR --json` end to end (3 photos per shoe, a few steps: the photos' embeddings come
    from a copy of the demo model's cache, so only training runs)."""
    data = tmp_path / "data"
    shutil.copytree(demo_lit.data_dir / "embeddings", data / "embeddings")
    r = subprocess.run([sys.executable, "-m", "shoefind.cli.main", "demo", str(tmp_path / "demo"), "--photos", "3",
                        "--steps", "5", "--json"], cwd=REPO, capture_output=True, text=True, timeout=600,
                       env={**os.environ, "SHOEFIND_DATA": str(data)})
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["model"].endswith("demo.lit.pt") and os.path.isfile(out["model"])
    assert set(out["zero_shot"]) >= {"brand", "color", "hightop", "name_5step"}
    assert all(0 <= v["top1"] <= 1 for v in out["zero_shot"].values())
