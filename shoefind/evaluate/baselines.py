"""What a score must beat to mean something, and how many photos it needs.

- Chance: a uniform guess over the classes (1 / classes).
- The majority class: always answering the most frequent class of the scored photos. On a catalog
  where 94% of the photos are one brand, a brand top-1 of 95% is no better than that.
- A score on few photos is a coin toss: below MIN_TEST_PHOTOS a held-out score means little, and
  reports say so (with its 95% interval).

"Clearly better" is a one-sided exact binomial test at 5%: could a model that always answered the
majority class have scored this well on this many photos?
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MIN_TEST_PHOTOS = 30       # with 30 photos a top-1 is known to about +-18 points (95%); 100: +-10
SIGNIFICANCE = 0.05


@dataclass(frozen=True)
class Majority:
    label: str          # the most frequent true class of the scored photos
    rate: float         # its share: the top-1 of always answering it
    photos: int


def majority_of(classes: list[str], matrix: np.ndarray) -> Majority | None:
    """The majority class of a confusion matrix's true rows (None without photos)."""
    rows = np.asarray(matrix).sum(axis=1)
    total = int(rows.sum())
    if not total:
        return None
    i = int(rows.argmax())
    return Majority(str(classes[i]), float(rows[i] / total), total)


def binomial_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), exact (log space, so n in the hundred thousands is fine)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    i = np.arange(k, n + 1)
    log_pmf = (math.lgamma(n + 1) - np.array([math.lgamma(j + 1) + math.lgamma(n - j + 1) for j in i])
               + i * math.log(p) + (n - i) * math.log1p(-p))
    top = log_pmf.max()
    return float(min(1.0, math.exp(top) * np.exp(log_pmf - top).sum()))


def versus_majority(top1: float, photos: int, majority: Majority | None) -> str | None:
    """A caveat when top-1 is not clearly above always answering the majority class; None when it is."""
    if majority is None or photos <= 0 or top1 is None or (isinstance(top1, float) and math.isnan(top1)):
        return None
    always = f"always answering '{majority.label}' ({majority.rate:.1%})"
    if majority.rate >= 1.0:
        return f"meaningless: every photo is '{majority.label}', so there is nothing to tell apart"
    if top1 <= majority.rate:
        return f"no better than {always}"
    correct = int(round(top1 * photos))
    if binomial_tail(correct, photos, majority.rate) > SIGNIFICANCE:
        return f"not clearly better than {always} on {photos} photos"
    return None


def wilson_interval(correct: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The 95% Wilson interval of a proportion (sound at 0 and n, unlike the normal one)."""
    if n <= 0:
        return 0.0, 1.0
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def margin(n: int) -> float:
    """Half the 95% interval of a proportion near 50% on n photos (the worst case)."""
    return 1.96 * math.sqrt(0.25 / n) if n > 0 else 1.0


def small_test_warning(photos: int, what: str = "held-out", total: int | None = None,
                       minimum: int = MIN_TEST_PHOTOS, top1: float | None = None) -> str | None:
    """A warning when a score rests on fewer than `minimum` photos (None: enough), stating the minimum."""
    if photos >= minimum:
        return None
    of = f" of {total}" if total is not None else ""
    text = f"only {photos}{of} photo{'s' if photos != 1 else ''} {what}"
    if top1 is not None and photos:
        low, high = wilson_interval(int(round(top1 * photos)), photos)
        text += f": a top-1 of {top1:.0%} on {photos} could be anything from {low:.0%} to {high:.0%}"
    return (text + f". Scores on so few photos mean little: at least {minimum} {what} photos are needed "
            f"(a top-1 is then known to about \u00b1{margin(minimum):.0%}); add photos of more shoes.")


# held-out score keys (shoefind.learn.heldout.METRIC_ORDER) -> the label column they are scored on
SCORE_LABELS = {"brand_top1": "brand", "color_top1": "color", "hightop_top1": "hightop", "sole_top1": "sole",
                "zero_shot_top1": "shoe", "name_5step_top1": "shoe", "prototype_top1": "shoe"}
SCORE_NAMES = {"brand_top1": "brand", "color_top1": "color", "hightop_top1": "hightop", "sole_top1": "sole",
               "zero_shot_top1": "name (name prompts)", "name_5step_top1": "name (5-step)",
               "prototype_top1": "name (nearest prototype)"}


def heldout_baselines(shoes, photo_shoes) -> dict[str, dict]:
    """Per held-out score: chance (1 / the catalog's classes) and the majority class of the held-out
    photos with its rate, so `learn` and `demo` can show what each score must beat."""
    import pandas as pd
    shoes = shoes.reset_index(drop=True)
    photos = pd.DataFrame({"shoe": list(photo_shoes)}).merge(shoes, on="shoe", how="left")
    out = {}
    for key, column in SCORE_LABELS.items():
        if column not in shoes:
            continue
        catalog = shoes[column].fillna("").astype(str)
        classes = catalog[catalog.str.len() > 0].nunique()
        labels = photos[column].fillna("").astype(str)
        labels = labels[labels.str.len() > 0]
        if not classes or not len(labels):
            continue
        counts = labels.value_counts()
        out[key] = {"chance": round(1 / classes, 4), "classes": int(classes),
                    "majority": round(float(counts.iloc[0] / len(labels)), 4),
                    "majority_class": str(counts.index[0]), "photos": int(len(labels))}
    return out


def heldout_caveats(scores: dict, baselines: dict) -> list[str]:
    """One line per held-out score not clearly above always answering its majority class."""
    out = []
    for key, base in baselines.items():
        top1 = scores.get(key)
        if top1 is None:
            continue
        majority = Majority(base["majority_class"], base["majority"], base["photos"])
        if caveat := versus_majority(float(top1), base["photos"], majority):
            out.append(f"held-out {SCORE_NAMES.get(key, key)} top-1 {float(top1):.1%} is {caveat}")
    return out


def photo_baselines(table) -> dict[str, dict]:
    """Per task of a feature table (each attribute, and name): chance over its catalog classes and the
    majority class of its labeled photos. For reports that score every photo (a model comparison)."""
    labeled = table.labeled_images()
    out = {}
    for task, column in [(a, a) for a in table.attributes] + [("name", "shoe")]:
        catalog = table.shoes[column].fillna("").astype(str)
        classes = catalog[catalog.str.len() > 0].nunique()
        labels = labeled[column].fillna("").astype(str)
        labels = labels[labels.str.len() > 0]
        if not classes or not len(labels):
            continue
        counts = labels.value_counts()
        out[task] = {"chance": 1 / classes, "majority": float(counts.iloc[0] / len(labels)),
                     "majority_class": str(counts.index[0]), "photos": int(len(labels))}
    return out
