"""Triage thresholds, chosen on labeled photos each fit did not see (never on the held-out split).

Every training photo is scored by a model fitted without it (cross-fitting: 5 folds for the fast
few-shot heads; one share kept out of a single fit for LiT and CoOp, see learners.calibration_folds).
From those answers:
- margin: the smallest top-1 minus top-2 probability at which the answers at or above it, whose
  nearest training photo is of the same shoe, are right at least `target` (98%) of the time, with at
  least MIN_SUPPORT photos above it, and never below MARGIN_FLOOR. A photo crawled for shoe S is
  accepted under S only when the model says S with this margin and its nearest training photo is of S
  (two views of the photo must agree: the crawl's confusable shoes fooled the head alone). None when no
  threshold reaches the target (too few or too hard photos): then nothing is decided automatically.
- other_shoe: a photo crawled for S is rejected as another shoe only when the model gives S less
  probability than all but REJECT_LOSS (2%) of the calibration photos give their own shoe, so at most
  that share of S's right photos is lost. A margin for another shoe is not enough: a query's results are
  mostly its shoe, and measured on expansion runs the margin rule rejected 91 right photos in 5 rounds.
- novelty: a photo less similar to every training photo than all but NOVELTY_QUANTILE of the catalog's
  own photos are to theirs is no shoe of the catalog (another brand, not a shoe) and is rejected.

What the calibration photos are matters more than their number. Cross-fitting over every training photo
overstated precision on crawled photos: the photos a model admitted itself are the ones it was sure of,
near-duplicates of them sit in other folds, and a query's confusable shoes are the hardest negatives.
Calibrating on the photos a person labeled only (retrain._calibrate) held auto-accepted precision at 100%
on the nike-silhouettes benchmark, where all photos gave 95%.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

TARGET_PRECISION = 0.98
MIN_SUPPORT = 10          # photos at or above a margin before its precision is believed
MARGIN_FLOOR = 0.25       # never sure below this, whatever a small calibration set says
NOVELTY_QUANTILE = 0.01
REJECT_LOSS = 0.02        # the share of a shoe's right photos "another shoe" may reject


@dataclass
class Thresholds:
    margin: float | None              # None: nothing is auto-accepted or auto-rejected as another shoe
    novelty: float | None             # None: nothing is rejected as no catalog shoe
    target_precision: float = TARGET_PRECISION
    calibration: dict = field(default_factory=dict)
    other_shoe: float | None = None   # reject as another shoe below this probability of the intended one

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> "Thresholds":
        d = d or {}
        return cls(d.get("margin"), d.get("novelty"), d.get("target_precision", TARGET_PRECISION),
                   d.get("calibration", {}), d.get("other_shoe"))

    def describe(self) -> str:
        c = self.calibration
        if self.margin is None:
            return (f"no automatic decisions: no margin reaches {self.target_precision:.0%} precision on "
                    f"{c.get('photos', 0)} calibration photos")
        text = (f"margin >= {self.margin:.3f} (precision {c.get('precision', 0):.1%}, 95% lower bound "
                f"{c.get('precision_lower', 0):.1%}, on {c.get('above', 0)} of {c.get('photos', 0)} calibration "
                "photos)")
        if self.other_shoe is not None:
            text += f"; another shoe when the intended one gets < {self.other_shoe:.3f}"
        if self.novelty is not None:
            text += f"; no catalog shoe below similarity {self.novelty:.3f}"
        return text


def margins(probs: np.ndarray) -> np.ndarray:
    """Top-1 minus top-2 probability per row."""
    if probs.shape[1] < 2:
        return np.ones(len(probs))
    part = np.partition(probs, -2, axis=1)
    return part[:, -1] - part[:, -2]


def wilson_lower(hits: int, n: int, z: float = 1.96) -> float:
    """The Wilson score interval's lower end for hits of n."""
    if n == 0:
        return 0.0
    p = hits / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - spread) / (1 + z * z / n)


def choose_thresholds(probs: np.ndarray, truth: np.ndarray, similarity: np.ndarray,
                      target: float = TARGET_PRECISION, folds: int = 0,
                      neighbour: np.ndarray | None = None) -> Thresholds:
    """Thresholds from out-of-fold answers: probs (n, C), the right class per photo, each photo's
    similarity to its fold's nearest training photo and that photo's class (`neighbour`; None: not
    checked)."""
    probs, truth, similarity = np.asarray(probs), np.asarray(truth), np.asarray(similarity, float)
    n = len(truth)
    info: dict = {"photos": int(n), "folds": int(folds), "min_support": MIN_SUPPORT, "floor": MARGIN_FLOOR}
    novelty = float(np.quantile(similarity, NOVELTY_QUANTILE)) if n else None
    if n == 0:
        return Thresholds(None, None, target, info)
    own = probs[np.arange(n), truth]
    if n >= MIN_SUPPORT:   # the REJECT_LOSS quantile of the right shoe's probability, below every other
        other_shoe = float(np.quantile(own, REJECT_LOSS, method="lower"))
        info["other_shoe_loss"] = round(float((own < other_shoe).mean()), 4)
    else:
        other_shoe = None
    info["accuracy"] = round(float((probs.argmax(axis=1) == truth).mean()), 4)
    if neighbour is not None:      # only photos whose nearest training photo agrees can be accepted
        agree = np.asarray(neighbour) == probs.argmax(axis=1)
        info["neighbour_agrees"] = round(float(agree.mean()), 4)
        probs, truth = probs[agree], truth[agree]
    chosen = _margin(probs, truth, target, info)
    return Thresholds(chosen, novelty, target, info, None if other_shoe is None else round(other_shoe, 4))


def _margin(probs: np.ndarray, truth: np.ndarray, target: float, info: dict) -> float | None:
    n = len(truth)
    if n == 0:
        return None
    m = margins(probs)
    right = probs.argmax(axis=1) == truth
    order = np.argsort(-m, kind="stable")
    hits = np.cumsum(right[order])
    count = np.arange(1, n + 1)
    precision = hits / count
    ranked = m[order]
    # a threshold takes every photo with that margin: only the last of equal margins is a place to cut
    cut = np.append(ranked[:-1] > ranked[1:], True)
    ok = cut & (count >= MIN_SUPPORT) & (precision >= target) & (ranked >= MARGIN_FLOOR)
    if not ok.any():
        return None
    k = int(np.flatnonzero(ok)[-1])
    margin = float(ranked[k])
    above = m >= margin
    info |= {"above": int(above.sum()), "covered": round(float(above.mean()), 4),
             "precision": round(float(right[above].mean()), 4),
             "precision_lower": round(wilson_lower(int(right[above].sum()), int(above.sum())), 4)}
    return round(margin, 4)


def nearest_photo(query: np.ndarray, support: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(cosine, row) of each query photo's nearest support photo, in the embedding space as it is
    (row -1 without support).

    Not centred: the catalog's photos sit in a narrow cone of it and photos of other things fall outside.
    Measured on expansion runs (nike-silhouettes with converse-crawl as distractors, efficientnet-lite0):
    the raw cosine put 96% of the distractors below the 5th percentile of the catalog's own photos, where
    a cosine centred on the training mean (as the image-only heads classify) overlapped them heavily."""
    if not len(support) or not len(query):
        return np.full(len(query), -1.0), np.full(len(query), -1)

    def unit(x):
        x = np.asarray(x, np.float32)
        return x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-12)
    sims = unit(query) @ unit(support).T
    return sims.max(axis=1), sims.argmax(axis=1)
