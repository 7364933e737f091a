"""Held-out scores of a model with a text side: what `learn --method lit` and `demo` report.

On photos kept out of training: zero-shot top-1 of each attribute the catalog labels, the
shoe (class) by its name prompts alone (`zero_shot_top1`: text prompts over the dataset's
classes) and by the 5-step method, and, as the image-only reference, the prototype classifier
(the mean training photo of each shoe; a shoe without training photos cannot be its answer).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from shoefind.scoring.zeroshot import ZeroShotModel, ZeroShotOptions
from shoefind.vocab import ATTRIBUTES

METRIC_ORDER = ["photos", "zero_shot_top1", "name_5step_top1", "brand_top1", "color_top1", "hightop_top1",
                "sole_top1", "prototype_top1"]


def _top1(predicted: np.ndarray, truth: np.ndarray) -> float | None:
    keep = truth >= 0
    return round(float((predicted[keep] == truth[keep]).mean()), 4) if keep.any() else None


def shoe_index(shoes: pd.DataFrame, photo_shoes) -> np.ndarray:
    index = {s: i for i, s in enumerate(shoes["shoe"])}
    return np.array([index.get(s, -1) for s in photo_shoes], dtype=int)


def prototype_top1(shoes: pd.DataFrame, train_x: np.ndarray, train_shoes, test_x: np.ndarray,
                   test_shoes) -> float | None:
    """Top-1 of the nearest shoe prototype (mean normalised training embedding per shoe)."""
    train_y, test_y = shoe_index(shoes, train_shoes), shoe_index(shoes, test_shoes)
    if not len(test_x) or not len(train_x):
        return None
    classes = np.unique(train_y[train_y >= 0])
    protos = np.stack([train_x[train_y == c].mean(axis=0) for c in classes])
    protos /= np.linalg.norm(protos, axis=1, keepdims=True) + 1e-12
    predicted = classes[(test_x @ protos.T).argmax(axis=1)]
    return _top1(predicted, test_y)


def heldout_metrics(encoder, shoes: pd.DataFrame, test_x: np.ndarray, test_shoes,
                    train_x: np.ndarray | None = None, train_shoes=None,
                    options: ZeroShotOptions | None = None) -> dict:
    """Scores on held-out photos (`test_x` their embeddings, `test_shoes` their shoe per photo).

    Text scores need `encoder.has_text`; without it only the prototype score is given."""
    shoes = shoes.reset_index(drop=True)
    truth = shoe_index(shoes, test_shoes)
    out: dict = {"photos": int(len(test_x))}
    if getattr(encoder, "has_text", False) and len(test_x):
        attrs = [a for a in ATTRIBUTES if a in shoes and shoes[a].fillna("").astype(str).str.len().gt(0).any()]
        zs = ZeroShotModel.build(encoder, shoes, attributes=attrs, options=options or ZeroShotOptions())
        result = zs.identify(test_x)
        out["zero_shot_top1"] = _top1(result.name_scores.argmax(axis=1), truth)
        out["name_5step_top1"] = _top1(result.combined_scores.argmax(axis=1), truth)
        for attr in zs.attributes:
            classes = {c: i for i, c in enumerate(zs.classes[attr])}
            labels = zs.shoes[attr].fillna("").astype(str).to_numpy()   # as the prompt set reads them
            attr_truth = np.array([classes.get(labels[t], -1) if t >= 0 and labels[t] else -1 for t in truth])
            out[f"{attr}_top1"] = _top1(result.attribute_probs[attr].argmax(axis=1), attr_truth)
    if train_x is not None and train_shoes is not None:
        out["prototype_top1"] = prototype_top1(shoes, train_x, train_shoes, test_x, test_shoes)
    return {k: out[k] for k in METRIC_ORDER if k in out}
