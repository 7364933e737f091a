"""LiT: captions from labels, the held-out split, the contrastive trainer, checkpoints and their errors.

Small and fast: real modules (TextTower, a tiny CLIP, efficientnet-lite0 where a backbone is
needed), tiny generated datasets. The known-answer suite (test_known_answers.py) is where a
trained model is shown to be right.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from tests.helpers import REPO, make_labeled_dataset, make_photo


def _labels(rows):
    return pd.DataFrame(rows, columns=["shoe", "name", "brand", "color", "hightop", "sole"])


SHOES = _labels([("A", "Air Red", "Nike", "Red", "High", "Plain Sole"),
                 ("B", "Air Blue", "Nike", "Blue", "Low", "Plain Sole"),
                 ("C", "Old Black", "Vans", "Black", "Low", "Gum Sole"),
                 ("D", "Mystery", "Vans", "", "High", "Gum Sole")])


def test_captions_fit_the_photos_whose_labels_they_name():
    from shoefind.learn.captions import build_captions
    photo_shoe = np.array([0, 0, 1, 2, 3])
    caps = build_captions(SHOES, photo_shoe)
    text = {t: i for i, t in enumerate(caps.texts)}
    red = text["a photo of a red shoe."]                # the prompt set's colour prompt
    assert caps.match[red].tolist() == [1, 1, 0, 0, -1]  # shoe D's colour is unknown: left out
    high = text["a photo of a high-top shoe."]
    assert caps.match[high].tolist() == [1, 1, 0, 0, 1]
    assert caps.match[text["a photo of the Air Blue."]].tolist() == [0, 0, 1, 0, 0]   # a name prompt
    assert "a photo of red high top." in text or "a photo of red high-top." in text   # a search phrase
    assert caps.kinds[red] == "attribute" and "phrase" in caps.kinds and "filtered" in caps.kinds
    negatives = [t for t, k in zip(caps.texts, caps.kinds) if k == "negative"]
    assert "a photo of a purple shoe." in negatives      # a vocabulary value no photo has
    assert caps.negatives == len(negatives) and all(not (caps.match[text[t]] == 1).any() for t in negatives)


def test_class_names_give_labels_and_a_dataset_without_any_is_refused():
    from shoefind.learn.captions import NoLabels, readable_name, require_labels, shoe_labels
    classes = pd.DataFrame({"shoe": ["j1_high", "dunk_low", "j3"], "name": ["j1_high", "dunk_low", "j3"],
                            "brand": "", "color": "", "hightop": "", "sole": "", "folder": ""})
    labels = shoe_labels(classes)
    assert labels["hightop"].tolist() == ["High", "Low", ""]
    assert readable_name("j1_high") == "jordan 1 high"
    require_labels(labels, "nike")
    cats = classes.assign(shoe=["cat", "dog", "cow"], name=["cat", "dog", "cow"])
    with pytest.raises(NoLabels, match="no attribute labels"):
        require_labels(shoe_labels(cats), "animals")


def test_heldout_split_keeps_whole_shoes_and_photos_out():
    from shoefind.features.heldout import TooFewPhotos, colourway, heldout_split
    from shoefind.demo.drawings import demo_shoes
    shoes = demo_shoes()[:40]
    labels = _labels([(s.name, s.name, s.brand, s.color, s.hightop, s.sole) for s in shoes])
    images = pd.DataFrame([{"path": f"{s.folder}/p{k}.png", "sha256": f"{s.name}-{k}", "shoe": s.name}
                           for s in shoes for k in range(5)])
    split = heldout_split(images, labels, "folders", seed=0)
    d = split.describe()
    assert d["by"] == ["shoe", "photo"] and d["heldout_by"]["shoe"] and d["heldout_by"]["photo"]
    train = split.train()
    for shoe in d["heldout_shoes"]:                      # a held-out shoe: no photo in training...
        assert shoe not in set(train["shoe"])
        row = labels.set_index("shoe").loc[shoe]
        for attr in ("brand", "color", "hightop", "sole"):   # ...but each of its values is
            assert (labels.set_index("shoe").loc[list(set(train["shoe"])), attr] == row[attr]).any()
    again = heldout_split(images.sample(frac=1, random_state=1), labels, "folders", seed=0)
    assert set(again.heldout()["sha256"]) == set(split.heldout()["sha256"])   # order does not matter
    assert colourway("air-jordan-1-mid-black-gym-red-1-400.png") == "air-jordan-1-mid-black-gym-red"
    with pytest.raises(TooFewPhotos, match="at least"):
        heldout_split(images.head(6), labels, "folders")


def test_multi_positive_loss_prefers_the_right_pairs_and_ignores_unknowns():
    from shoefind.learn.lit import multi_positive_infonce
    match = torch.tensor([[1, 0, -1], [0, 1, 0]])
    right = torch.tensor([[10.0, 0.0, 0.0], [0.0, 10.0, 0.0]])
    wrong = torch.tensor([[0.0, 10.0, 0.0], [10.0, 0.0, 0.0]])
    assert multi_positive_infonce(right, match) < multi_positive_infonce(wrong, match)
    unknown_high = right.clone()
    unknown_high[0, 2] = 50.0          # photo 0 vs caption 2 is unknown: no effect on the loss
    assert torch.isclose(multi_positive_infonce(unknown_high, match), multi_positive_infonce(right, match))


def test_a_small_tower_learns_which_words_go_with_which_embeddings():
    """Four 'colours' as four directions in a 64-d image space; captions name them."""
    from shoefind.encoders.families.openai_clip import text_features
    from shoefind.encoders.families.text_tower import TextTower, TowerConfig
    from shoefind.learn.captions import build_captions
    from shoefind.learn.lit import LitSettings, train_text_tower
    import clip
    colours = ["Red", "Blue", "Green", "Black"]
    labels = _labels([(c, f"Shoe {c}", "Nike", c, "Low", "Plain Sole") for c in colours])
    gen = np.random.default_rng(0)
    centres = gen.normal(size=(4, 64))
    photo_shoe = np.repeat(np.arange(4), 12)
    x = centres[photo_shoe] + 0.3 * gen.normal(size=(48, 64))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    caps = build_captions(labels, photo_shoe)
    torch.manual_seed(0)
    tower = TextTower(TowerConfig(64, width=32, layers=1, heads=1))
    report = train_text_tower(tower, x, caps, LitSettings(steps=60, batch_size=32, negatives=16, lr=5e-3,
                                                          scale_lr=5e-2))
    assert report.final_loss < report.losses[0]
    with torch.no_grad():
        t = text_features(tower, clip.tokenize([f"a photo of a {c.lower()} shoe." for c in colours])).numpy()
    predicted = (x @ t.T).argmax(axis=1)
    assert (predicted == photo_shoe).mean() >= 0.9


def _write_lit(tmp_path, base=None):
    from shoefind.encoders.families.backbones import load_backbone
    from shoefind.encoders.families.lit import backbone_base, write_lit
    from shoefind.encoders.families.text_tower import TextTower, TowerConfig
    from shoefind.learn.checkpoint import write_model
    backbone = load_backbone("efficientnet-lite0")
    torch.manual_seed(0)
    tower = TextTower(TowerConfig(backbone.embed_dim, width=32, layers=1, heads=1))
    path = tmp_path / "m.lit.pt"
    write_model(path, lambda tmp: write_lit(tmp, tower, base or backbone_base(backbone)), {"method": "lit"})
    return path, tower


def test_lit_checkpoint_loads_as_an_encoder_with_a_text_side(tmp_path):
    from shoefind.encoders.families.lit import LitEncoder
    from shoefind.encoders.load import load_encoder
    from shoefind.encoders.families.openai_clip import text_features
    from shoefind.learn.checkpoint import manifest_paths
    import clip
    path, tower = _write_lit(tmp_path)
    enc = load_encoder(str(path))
    assert isinstance(enc, LitEncoder) and enc.has_text and enc.family == "lit" and enc.supports_prompt_learning
    assert enc.model_id.startswith("lit-m-") and enc.embed_dim == 1280
    assert enc.cache_key.startswith(enc.backbone.cache_key)      # image embeddings: the backbone's
    with torch.no_grad():
        want = text_features(tower, clip.tokenize(["a red shoe"])).numpy()
    assert np.allclose(enc.encode_texts(["a red shoe"]), want, atol=1e-5)
    img = enc.encode_images([make_photo(tmp_path / "p.png")])
    assert img.shape == (1, 1280) and abs(float(np.linalg.norm(img)) - 1) < 1e-4
    manifest = json.loads(manifest_paths(path)[0].read_text())
    assert manifest["checkpoint_sha256"] and manifest_paths(path)[1].is_file()


def test_a_killed_write_leaves_the_previous_checkpoint(tmp_path):
    from shoefind.learn.checkpoint import manifest_paths, write_model
    path, _ = _write_lit(tmp_path)
    before = path.read_bytes()
    manifest_before = manifest_paths(path)[0].read_text()

    def dies_half_way(tmp):
        tmp.write_bytes(b"half a checkpoint")
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        write_model(path, dies_half_way, {"method": "lit"})
    assert path.read_bytes() == before and manifest_paths(path)[0].read_text() == manifest_before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.lit.pt", "m.lit.pt.json", "m.lit.pt.md"]


def test_a_checkpoint_from_another_backbone_is_refused(tmp_path):
    from shoefind.encoders.families.backbones import load_backbone
    from shoefind.encoders.base import ModelUnavailable
    from shoefind.encoders.families.lit import backbone_base, load_lit
    base = backbone_base(load_backbone("efficientnet-lite0")) | {"weights_id": "0123456789ab"}
    path, _ = _write_lit(tmp_path, base)
    with pytest.raises(ModelUnavailable, match="trained on the image backbone efficientnet-lite0"):
        load_lit(path)
    other = tmp_path / "o.lit.pt"
    torch.save({"format": "something-else"}, other)
    with pytest.raises(ModelUnavailable, match="not a LiT checkpoint"):
        load_lit(other)
    # the commands say so in one line (exit code 2)
    from typer.testing import CliRunner
    from shoefind.cli.main import app
    dataset = make_labeled_dataset(tmp_path / "ds", n_per_shoe=1)
    for args in (["search", "red shoe"], ["evaluate"]):
        res = CliRunner().invoke(app, [*args, "--model", str(path), "--dataset", str(dataset),
                                       "--data-dir", str(tmp_path / "data")])
        assert res.exit_code == 2 and "trained on the image backbone efficientnet-lite0" in res.output, res.output
        errors = [line for line in res.output.splitlines() if line.startswith("error:")]
        assert "Traceback" not in res.output and len(errors) == 1, res.output


def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "shoefind.cli.main", *args], cwd=REPO, capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=600)


def test_lit_over_a_clip_model_writes_a_clip_checkpoint(tmp_path, tiny_model, data_dir):
    """--method lit --model <CLIP>: CLIP's own text tower trained, image tower untouched, a file clip.load reads."""
    from shoefind.encoders.load import load_encoder
    dataset = make_labeled_dataset(tmp_path / "ds", n_per_shoe=4)
    out = tmp_path / "tiny-lit.pt"
    r = _cli("learn", str(dataset), "--method", "lit", "--model", tiny_model, "--steps", "5", "--out", str(out),
             "--json", env={"SHOEFIND_DATA": str(data_dir)})
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["checkpoint"] == str(out) and "zero_shot_top1" in result["heldout"]
    assert set(result["heldout"]) >= {"photos", "zero_shot_top1", "name_5step_top1", "color_top1"}
    trained = torch.load(out, weights_only=True)
    base = load_encoder(tiny_model, runtime="torch").model.state_dict()     # as clip.load gives it
    assert all(torch.equal(trained[k], base[k]) for k in base if k.startswith("visual."))
    assert not torch.equal(trained["token_embedding.weight"], base["token_embedding.weight"])
    enc = load_encoder(str(out), runtime="torch")
    assert enc.family == "clip" and enc.encode_texts(["a red shoe"]).shape == (1, 32)
    manifest = json.loads((tmp_path / "tiny-lit.pt.json").read_text())
    assert manifest["base"]["family"] == "clip" and manifest["split"]["heldout_photos"] > 0


def test_lit_refuses_what_it_cannot_learn_from(tmp_path, tiny_model, data_dir):
    classes = tmp_path / "animals"
    for name in ("cat", "dog"):
        for k in range(6):
            make_photo(classes / name / f"{k}.png", seed=k)
    r = _cli("learn", str(classes), "--method", "lit", "--model", tiny_model, env={"SHOEFIND_DATA": str(data_dir)})
    assert r.returncode == 2 and "no attribute labels" in r.stderr
    few = make_labeled_dataset(tmp_path / "few", n_per_shoe=1)
    r = _cli("learn", str(few), "--method", "lit", "--model", tiny_model, env={"SHOEFIND_DATA": str(data_dir)})
    assert r.returncode == 2 and "usable photos" in r.stderr
    r = _cli("learn", str(few), "--method", "lit,fewshot", "--model", tiny_model)
    assert r.returncode == 2 and "runs alone" in r.stderr


def test_lit_image_side_leaves_the_shared_backbone_alone_and_bf16_stays_close(tmp_path):
    """bf16 autocast + channels-last run on a copy of the network; their features stay close to fp32's."""
    from shoefind.encoders.families.backbones import load_backbone
    from shoefind.encoders.families.lit import BackboneImages
    backbone = load_backbone("efficientnet-lite0")
    x = torch.stack([backbone.load_image(make_photo(tmp_path / f"{i}.png", seed=i)) for i in range(4)])
    plain = backbone.encode_tensors(x)
    for precision, bar in (("fp32", 0.99999), ("bf16", 0.99)):
        got = BackboneImages(backbone, precision).encode_tensors(x)
        assert float((got * plain).sum(axis=1).min()) > bar, precision
    assert np.array_equal(backbone.encode_tensors(x), plain)
    assert backbone.model._conv_stem.weight.is_contiguous()          # not turned channels-last in place


def test_lit_continues_from_a_lit_checkpoint(tmp_path, data_dir):
    """--model PATH.lit.pt: its tower trains further on the dataset, over the same backbone."""
    from shoefind.encoders.load import load_encoder
    first, _ = _write_lit(tmp_path)
    dataset = make_labeled_dataset(tmp_path / "ds", n_per_shoe=4)
    out = tmp_path / "more.lit.pt"
    r = _cli("learn", str(dataset), "--method", "lit", "--model", str(first), "--steps", "2", "--out", str(out),
             "--json", env={"SHOEFIND_DATA": str(data_dir)})
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["heldout_before"]["zero_shot_top1"] is not None      # the checkpoint it started from has text
    manifest = json.loads((tmp_path / "more.lit.pt.json").read_text())
    assert manifest["base"]["continued_from"] == str(first) and manifest["base"]["spec"] == "efficientnet-lite0"
    assert load_encoder(str(out)).tower.config.width == 32                # the checkpoint's shape, not the default
