"""CoOp: the prompt learner is CLIP's text tower, it learns a known task, its artifact reloads
exactly, and classes it never saw keep their zero-shot prompts."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from shoefind.learn.coop import PromptLearner, load_coop, train_coop
from shoefind.evaluate.methods import compare_methods, task_specs
from shoefind.encoders.load import load_model

from tests.helpers.colour_task import COLOURS, colours  # noqa: F401  (module fixture: the colour task)


def test_prompt_learner_initialised_as_text_equals_clip_encode_text(tiny_model):
    encoder = load_model(tiny_model)
    names = ["red", "Jordan1 Retro High og Chicago"]
    reference = encoder.encode_texts([f"a photo of a {n} shoe." for n in names])
    for class_specific in (False, True):
        learner = PromptLearner(encoder.model, names, "{} shoe.", n_ctx=4, class_specific=class_specific)
        with torch.no_grad():
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
    assert payload["model_id"] == encoder.model_id and payload["version"] == 1
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
