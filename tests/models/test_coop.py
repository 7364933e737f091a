"""CoOp: the prompt learner is CLIP's text tower, it learns a known task, its artifact reloads
exactly, and classes it never saw keep their zero-shot prompts."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from shoefind.learn.coop import PromptLearner, load_coop, train_coop
from shoefind.learn.methods import compare_methods, task_specs
from shoefind.encoders.load import load_model

from tests.helpers.colour_task import COLOURS, colours  # noqa: F401  (module fixture: the colour task)


def test_prompt_learner_initialised_as_text_equals_clip_encode_text(tiny_model):
    encoder = load_model(tiny_model, runtime="torch")  # exact fp32: the learner is the fp32 tower
    names = ["red", "Jordan1 Retro High og Chicago"]
    reference = encoder.encode_texts([f"a photo of a {n} shoe." for n in names])
    shared = PromptLearner(encoder.model, names, "{} shoe.", n_ctx=4)
    for class_specific in (False, True):
        learner = PromptLearner(encoder.model, names, "{} shoe.", n_ctx=4, class_specific=class_specific)
        with torch.no_grad():
            if class_specific:   # starts random (the paper's setting); give every class the phrase
                learner.ctx.copy_(shared.ctx.expand(len(names), -1, -1))
            ours = learner().numpy()
        # prompts are cut after [EOS] (causal attention): the features must not change
        assert np.abs(ours - reference).max() < 1e-5


def test_coop_learns_colours_and_stops_on_a_validation_fold(colours):  # noqa: F811
    encoder, table, cache = colours
    comparison = compare_methods(encoder, table, cache, ["zeroshot", "coop"], [4],
                                 coop_options={"progress": False, "max_epochs": 120})
    m = comparison.metrics.set_index(["method", "shots"])
    assert m.loc[("coop", 4), "top1"] >= 0.75 > 1 / len(COLOURS) + 0.3
    training = comparison.details["coop"]["name"]
    assert training["val_photos"] == len(COLOURS) and training["best_epoch"] >= 1


def test_class_specific_context_learns_too(colours):  # noqa: F811
    encoder, table, cache = colours
    spec = task_specs(encoder, table)[-1]
    x = cache.matrix(table.images["sha256"].tolist())
    y = spec.labels(table.images)
    clf = train_coop(encoder, spec, x, y, class_specific=True, max_epochs=80, progress=False)
    assert clf.ctx.shape[0] == len(COLOURS)
    assert (clf.logits(x).argmax(1) == y).mean() >= 0.75


def test_saved_artifact_reloads_with_identical_logits_and_falls_back_for_new_classes(colours, tmp_path):  # noqa: F811
    encoder, table, cache = colours
    spec = task_specs(encoder, table)[-1]
    x = cache.matrix(table.images["sha256"].tolist())
    y = spec.labels(table.images)
    seen = y != 3                                            # 'yellow' never trained
    clf = train_coop(encoder, spec, x[seen], y[seen], max_epochs=20, progress=False)
    assert not clf.trained[3] and np.array_equal(clf.text[3], spec.text[3])   # zero-shot prompt kept
    path = clf.save(tmp_path / "coop-name.pt")
    again = load_coop(path, encoder, spec)
    assert np.array_equal(again.logits(x), clf.logits(x))
    assert again.trained_classes == [c for i, c in enumerate(spec.classes) if i != 3]
    payload = torch.load(path, weights_only=True)
    assert payload["model_id"] == encoder.model_id and payload["version"] == 2
    # a catalog that grew: the new class is scored by its prompts, the learned ones unchanged
    spec.classes = spec.classes + ["purple"]
    spec.text = np.vstack([spec.text, encoder.encode_ensemble([["a photo of a purple shoe."]])])
    grown = load_coop(path, encoder, spec)
    assert grown.logits(x).shape == (len(x), 5) and not grown.trained[4]
    assert np.array_equal(grown.logits(x)[:, :3], clf.logits(x)[:, :3])


def test_artifact_of_another_model_is_refused(colours, tmp_path):  # noqa: F811
    encoder, table, cache = colours
    spec = task_specs(encoder, table)[-1]
    x = cache.matrix(table.images["sha256"].tolist())
    clf = train_coop(encoder, spec, x, spec.labels(table.images), max_epochs=2, progress=False)
    clf.model_id = "ViT-B-32"
    path = clf.save(tmp_path / "coop-name.pt")
    with pytest.raises(ValueError, match="trained for model ViT-B-32"):
        load_coop(path, encoder, spec)


def test_unknown_schedule_is_refused():
    # the paper schedule's figures: tests/unit/test_coop_schedule.py
    from shoefind.learn.coop import make_schedule
    with pytest.raises(ValueError, match="unknown CoOp schedule"):
        make_schedule("slow", 4)


def test_context_init_phrase_random_and_sixteen_tokens(tiny_model):
    encoder = load_model(tiny_model)
    words = encoder.model.token_embedding(torch.tensor(clip_tokens("a photo of a")))
    phrase = PromptLearner(encoder.model, ["red"], "{} shoe.", n_ctx=16, init="a photo of a")
    assert phrase.ctx.shape == (16, words.shape[1])
    assert torch.allclose(phrase.ctx[-4:], words.float())          # the phrase fills the last slots
    random = PromptLearner(encoder.model, ["red"], "{} shoe.", n_ctx=16, init="random")
    assert float(random.ctx.detach().std()) == pytest.approx(0.02, rel=0.3)
    specific = PromptLearner(encoder.model, ["red", "blue"], "{} shoe.", n_ctx=4, class_specific=True)
    assert not torch.allclose(specific.ctx[0], specific.ctx[1])    # class-specific: random per class
    with pytest.raises(ValueError, match="more than --n-ctx"):
        PromptLearner(encoder.model, ["red"], "{} shoe.", n_ctx=2, init="a photo of a")


def clip_tokens(text):
    import clip
    ids = clip.tokenize(text)[0]
    return ids[1:int(ids.argmax())].tolist()


def test_coop_trains_on_every_shot_after_validation_picks_the_epochs(colours):  # noqa: F811
    encoder, table, cache = colours
    spec = task_specs(encoder, table)[-1]
    x = cache.matrix(table.images["sha256"].tolist())
    y = spec.labels(table.images)
    clf = train_coop(encoder, spec, x, y, max_epochs=20, progress=False)
    t = clf.training
    assert t["fit_photos"] == len(x) and t["val_photos"] == len(COLOURS) * 2
    assert t["epochs_run"] == t["best_epoch"] >= 1                  # refit for the chosen epochs
    paper = train_coop(encoder, spec, x, y, schedule="paper", max_epochs=6, ctx_init="random", progress=False)
    assert paper.training["fit_photos"] == len(x) and paper.training["epochs_run"] == 6
    assert paper.training["schedule"]["optimizer"] == "sgd" and paper.n_ctx == 16   # random: 16 tokens
    # Dassl drops an epoch's last partial batch when there is a full one (batch 32)
    many = np.concatenate([x] * (40 // len(x) + 1))[:40]
    paper = train_coop(encoder, spec, many, np.concatenate([y] * (40 // len(y) + 1))[:40], schedule="paper",
                       max_epochs=3, progress=False)
    assert paper.training["steps"] == 3 and paper.n_ctx == 4                       # 40 photos: 1 batch an epoch
    few = train_coop(encoder, spec, x[:20], y[:20], schedule="paper", max_epochs=3, progress=False)
    assert few.training["steps"] == 3                                               # 20 photos: one partial batch


def test_cocoop_token_shifts_the_context_and_zero_token_is_coop(tiny_model):
    encoder = load_model(tiny_model)
    names = ["red", "blue", "green"]
    plain = PromptLearner(encoder.model, names, "{} shoe.", n_ctx=4)
    cond = PromptLearner(encoder.model, names, "{} shoe.", n_ctx=4, conditional=True)
    images = torch.nn.functional.normalize(torch.randn(5, encoder.embed_dim), dim=-1)
    with torch.no_grad():
        assert cond(images).shape == (5, 3, encoder.embed_dim)
        assert not torch.allclose(cond(images)[0], cond(images)[1])  # each image its own prompts
        last = cond.meta_net[-1]
        last.weight.zero_()
        last.bias.zero_()
        assert torch.allclose(cond(images), plain().expand(5, -1, -1), atol=1e-5)


def test_cocoop_learns_colours_scores_unseen_classes_and_reloads(colours, tmp_path):  # noqa: F811
    from shoefind.learn.coop import train_cocoop
    encoder, table, cache = colours
    spec = task_specs(encoder, table)[-1]
    x = cache.matrix(table.images["sha256"].tolist())
    y = spec.labels(table.images)
    seen = y != 3
    default = train_cocoop(encoder, spec, x[seen][:4], y[seen][:4], max_epochs=1, progress=False)
    assert default.training["schedule"]["name"] == "paper" and default.training["schedule"]["batch_size"] == 1
    # random weights learn in few steps with the fast schedule only
    clf = train_cocoop(encoder, spec, x[seen], y[seen], max_epochs=30, schedule="fast", progress=False)
    assert clf.name == "cocoop" and clf.trained.tolist() == [c != spec.classes[3] for c in spec.classes]
    # among the trained classes (random weights give the unseen name an arbitrary score)
    assert (clf.logits(x[seen])[:, :3].argmax(1) == y[seen]).mean() >= 0.75
    again = load_coop(clf.save(tmp_path / "cocoop-name.pt"), encoder, spec)
    assert again.name == "cocoop" and np.allclose(again.logits(x), clf.logits(x), atol=1e-4)


def test_base_to_new_is_the_cocoop_papers_protocol(colours):  # noqa: F811
    from shoefind.evaluate.base_new import base_new_classes, base_new_photos, compare_base_new, harmonic_mean
    encoder, table, cache = colours
    # subsample_classes: the sorted labels, the first ceil(n / 2) base, whatever the seed
    assert base_new_classes(list(COLOURS), seed=0) == base_new_classes(list(COLOURS), seed=5) == \
        (["blue", "green"], ["red", "yellow"])
    assert base_new_classes(["c", "a", "b"]) == (["a", "b"], ["c"])
    seeded = base_new_classes(list(COLOURS), seed=0, split="seeded")       # the old split, kept by name
    assert len(seeded[0]) == 2 and seeded != base_new_classes(list(COLOURS), seed=3, split="seeded")
    labeled = table.labeled_images()
    base, new, train, base_test, new_test = base_new_photos(labeled, sorted(COLOURS), 4, seed=0)
    # both sets are scored on a test split; no photo that trains, or could, is ever scored
    assert set(train["shoe"]) == set(base) and not set(train["sha256"]) & set(base_test["sha256"])
    assert len(new_test) == 4 * 2 and len(base_test) == 4 * 2 and len(train) == 4 * 2
    rows = compare_base_new(encoder, table, cache, shots=4)      # the papers' schedules: 100 and 10 epochs
    rows = rows.set_index("method")
    assert list(rows.index) == ["zeroshot", "coop", "cocoop"]
    assert (rows["new_images"] == 8).all() and (rows["base_images"] == 8).all()
    assert rows.loc["coop", "schedule"] == rows.loc["cocoop", "schedule"] == "paper"
    assert (rows.loc["coop", "epochs"], rows.loc["cocoop", "epochs"]) == (100, 10)
    assert rows.loc["coop", "views"] == rows.loc["cocoop", "views"] == 10      # per-epoch augmented views
    assert rows.loc["coop", "base_top1"] >= 0.75                        # learned on the base shoes
    for r in rows.itertuples():
        assert r.harmonic == pytest.approx(harmonic_mean(r.base_top1, r.new_top1))
    assert harmonic_mean(1.0, 0.0) == 0.0 and harmonic_mean(0.5, 0.5) == 0.5


def test_base_to_new_on_a_models_heldout_photos_trains_on_none_of_them(colours):  # noqa: F811
    from shoefind.evaluate.base_new import base_new_classes, compare_base_new, pick_shots
    encoder, table, cache = colours
    images = table.images
    held = set(images.groupby("shoe").head(3)["sha256"])          # 3 photos a shoe the "model" never saw
    rows = compare_base_new(encoder, table, cache, methods=("zeroshot",), shots=4, heldout=held).set_index("method")
    base, new = base_new_classes(list(COLOURS), seed=0)
    assert rows.loc["zeroshot", "base_images"] == 3 * len(base) and rows.loc["zeroshot", "new_images"] == 3 * len(new)
    shots = pick_shots(images[~images["sha256"].isin(held)], 2, seed=1)
    assert not set(shots["sha256"]) & held and (shots.groupby("shoe").size() == 2).all()
    assert shots.equals(pick_shots(images[~images["sha256"].isin(held)], 2, seed=1))
    assert set(shots["sha256"]) <= set(pick_shots(images[~images["sha256"].isin(held)], 3, seed=1)["sha256"])
