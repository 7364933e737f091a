"""Training-free few-shot classifiers over cached image embeddings.

- `TipAdapter`: a cache model (Tip-Adapter, Zhang et al. 2022): the affinity of a photo to
  the k-shot training photos, exp(-beta (1 - cos)), summed per class and blended with the
  zero-shot prompt logits as zs + alpha * cache. alpha and beta are chosen by leave-one-out
  accuracy on the training photos themselves, so no test photo is looked at.
- `PrototypeClassifier`: the nearest class mean (the plain baseline).

Both take the zero-shot class text embeddings when the encoder has a text side; a class
with no training photo (a shoe added later) is then still scored by its prompts. With an
image-only backbone there are no prompts: features are centred on the training mean
(SimpleShot) because pooled CNN features all point the same way.

Every classifier has `classes`, `logits(x)` and `predict_proba(x)`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from shoefind.retrieve.zeroshot import softmax

DEFAULT_ALPHA, DEFAULT_BETA = 1.0, 5.5        # Tip-Adapter's published defaults
ALPHAS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
BETAS = (1.0, 2.0, 3.5, 5.5, 8.0, 12.0, 20.0, 35.0)
IMAGE_ONLY_SCALE = 30.0   # softmax temperature for cosine scores without CLIP's logit scale


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / (np.linalg.norm(x, axis=-1, keepdims=True) + 1e-12)


def one_hot(labels: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros((len(labels), n), dtype=np.float32)
    out[np.arange(len(labels)), labels] = 1.0
    return out


@dataclass
class FeatureSpace:
    """Where similarities are measured: raw CLIP space, or centred on the training mean."""
    mean: np.ndarray | None = None

    @classmethod
    def fit(cls, train_x: np.ndarray, center: bool) -> "FeatureSpace":
        return cls(train_x.mean(axis=0).astype(np.float32) if center and len(train_x) else None)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        return _normalise(x - self.mean) if self.mean is not None else x


@dataclass
class TipAdapter:
    classes: list[str]
    keys: np.ndarray                     # (n, D) training embeddings, in `space`
    values: np.ndarray                   # (n, C) one-hot labels
    text: np.ndarray | None              # (C, D) zero-shot class embeddings, or None
    logit_scale: float
    space: FeatureSpace = field(default_factory=FeatureSpace)
    alpha: float = DEFAULT_ALPHA
    beta: float = DEFAULT_BETA
    selection: dict = field(default_factory=dict)   # how alpha/beta were chosen

    name = "tip-adapter"

    @classmethod
    def fit(cls, train_x: np.ndarray, train_y: np.ndarray, classes: list[str], text: np.ndarray | None = None,
            logit_scale: float = 100.0, center: bool | None = None) -> "TipAdapter":
        model = cls.build(train_x, train_y, classes, text, logit_scale, center=center)
        model._choose_blend(np.asarray(train_x, np.float32), np.asarray(train_y))
        return model

    @classmethod
    def build(cls, train_x: np.ndarray, train_y: np.ndarray, classes: list[str], text: np.ndarray | None = None,
              logit_scale: float = 100.0, alpha: float = DEFAULT_ALPHA, beta: float = DEFAULT_BETA,
              center: bool | None = None) -> "TipAdapter":
        """The cache model with given blend weights (no search): how a saved one is rebuilt."""
        center = text is None if center is None else center
        space = FeatureSpace.fit(train_x, center)
        return cls(list(classes), space(np.asarray(train_x, np.float32)), one_hot(np.asarray(train_y), len(classes)),
                   None if text is None else np.asarray(text, np.float32),
                   logit_scale if text is not None else IMAGE_ONLY_SCALE, space, alpha, beta)

    def _zero_shot(self, x_raw: np.ndarray) -> np.ndarray:
        if self.text is None:
            return np.zeros((len(x_raw), len(self.classes)), np.float32)
        return self.logit_scale * x_raw @ self.text.T

    def _cache(self, q: np.ndarray, beta: float, leave_out_self: bool = False) -> np.ndarray:
        affinity = np.exp(-beta * (1.0 - q @ self.keys.T))
        if leave_out_self:
            np.fill_diagonal(affinity, 0.0)
        return affinity @ self.values

    def _choose_blend(self, train_x: np.ndarray, train_y: np.ndarray) -> None:
        """Grid search (alpha, beta) by leave-one-out accuracy, then log-loss, on the training photos."""
        counts = np.bincount(train_y, minlength=len(self.classes))
        if (counts >= 2).sum() == 0:
            # with one shot per class, leaving it out leaves nothing to learn from
            self.selection = {"by": "defaults (1 shot per class: leave-one-out is uninformative)"}
            return
        keep = counts[train_y] >= 2
        q = self.keys
        zs = self._zero_shot(train_x) if self.text is not None else 0.0
        best = None
        alphas = ALPHAS if self.text is not None else (1.0,)
        for beta in BETAS:
            cache = self._cache(q, beta, leave_out_self=True)
            for alpha in alphas:
                logits = self._blend(zs, cache, alpha, leave_out_self=True)
                probs = softmax(logits[keep])
                acc = float((probs.argmax(axis=1) == train_y[keep]).mean())
                nll = float(-np.log(probs[np.arange(keep.sum()), train_y[keep]] + 1e-9).mean())
                score = (acc, -nll)
                if best is None or score > best[0]:
                    best = (score, alpha, beta)
        (acc, neg_nll), self.alpha, self.beta = best
        self.selection = {"by": "leave-one-out on the training photos", "accuracy": acc, "log_loss": -neg_nll,
                          "photos": int(keep.sum())}

    def logits(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        return self._blend(self._zero_shot(x), self._cache(self.space(x), self.beta), self.alpha)

    def _blend(self, zs, cache: np.ndarray, alpha: float, leave_out_self: bool = False) -> np.ndarray:
        if self.text is None:
            # no prompts: the mean affinity per class, so classes with more photos are not favoured
            counts = self.values.sum(axis=0)[None, :] - (self.values if leave_out_self else 0.0)
            return self.logit_scale * cache / np.maximum(counts, 1.0)
        return zs + alpha * cache

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return softmax(self.logits(x))


@dataclass
class PrototypeClassifier:
    """Nearest class mean; a class without training photos is scored by its prompt embedding,
    shifted by how much closer photos are to their own prototype than to their own prompt."""
    classes: list[str]
    prototypes: np.ndarray               # (C, D) in `space`; zero rows for classes without photos
    seen: np.ndarray                     # (C,) bool
    text: np.ndarray | None
    logit_scale: float
    space: FeatureSpace = field(default_factory=FeatureSpace)
    text_offset: float = 0.0

    name = "prototype"

    @classmethod
    def fit(cls, train_x: np.ndarray, train_y: np.ndarray, classes: list[str], text: np.ndarray | None = None,
            logit_scale: float = 100.0, center: bool | None = None) -> "PrototypeClassifier":
        center = text is None if center is None else center
        space = FeatureSpace.fit(train_x, center)
        q = space(train_x)
        y = np.asarray(train_y)
        protos = np.zeros((len(classes), q.shape[1] if q.ndim == 2 else 0), np.float32)
        seen = np.zeros(len(classes), bool)
        for c in np.unique(y):
            protos[c] = _normalise(q[y == c].mean(axis=0))
            seen[c] = True
        offset = 0.0
        if text is not None and len(y):
            text = np.asarray(text, np.float32)
            offset = float(((q * protos[y]).sum(1) - (np.asarray(train_x) * text[y]).sum(1)).mean())
        return cls(list(classes), protos, seen, text, logit_scale if text is not None else IMAGE_ONLY_SCALE,
                   space, offset)

    def logits(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        scores = self.space(x) @ self.prototypes.T
        if self.text is not None and not self.seen.all():
            unseen = ~self.seen
            scores[:, unseen] = x @ self.text[unseen].T + self.text_offset
        elif not self.seen.all():
            scores[:, ~self.seen] = -1.0   # no photo and no prompt: the lowest possible cosine
        return self.logit_scale * scores

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return softmax(self.logits(x))


@dataclass
class ZeroShotClassifier:
    """Prompt embeddings alone, with the same interface (the baseline every method is compared to)."""
    classes: list[str]
    text: np.ndarray
    logit_scale: float

    name = "zeroshot"

    def logits(self, x: np.ndarray) -> np.ndarray:
        return self.logit_scale * np.asarray(x, np.float32) @ self.text.T

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return softmax(self.logits(x))
