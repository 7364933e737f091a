"""Open-set answers: how far a photo is from everything the catalog knows, and when that is too far.

Every identification names some catalog shoe, even for a photo of a shoe the catalog lacks. The
measure here is the cosine between the photo and its nearest catalog photo (the image side only,
so it means the same whatever classifier answered). The threshold is calibrated on the catalog
itself, leave-one-out: each catalog photo (up to SAMPLE of them) is held out in turn and its nearest
*other* catalog photo found, as if it were a new photo of a catalog shoe; the threshold is the k-th
lowest of those n similarities, k = floor(QUANTILE * (n + 1)) (the conformal 5th percentile: a new
photo that is like the catalog's own falls below it with probability at most 5%, however small n).
A photo below it is farther from the catalog than 95% of the catalog's own photos are from the rest,
and the answer says "not like any shoe in this catalog", with the nearest shoes as suggestions.

Leave-one-out rather than a learned model's held-out split: the similarity is image to image, and
no method shoefind trains on a catalog (few-shot, CoOp, LiT) changes the image tower, so a photo
held out of the catalog search is unseen for this measure whatever was trained. A shoe with a
single photo is held out against the other shoes, which lowers the threshold (fewer flags): a
catalog of one photo per shoe gets a cautious threshold rather than none. Under MIN_PHOTOS catalog
photos (k would be 0 below 19) no threshold is set and nothing is flagged (the similarity is still
reported).

The threshold is worked out once per catalog and process and kept beside the embedding cache
(`open-set-<digest>.json`, the digest naming the catalog's photos), so a cold `infer` reads it.
"""
from __future__ import annotations

import hashlib
import json
import os
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

QUANTILE = 0.05
SAMPLE = 2000            # held-out photos at most (a fixed random sample of a bigger catalog)
MIN_PHOTOS = 20          # fewer catalog photos: no threshold
VERSION = "loo-v2"       # bump when the calibration changes, so stored thresholds are worked out again
NOT_IN_CATALOG = "not like any shoe in this catalog"


@dataclass(frozen=True)
class OpenSetThreshold:
    threshold: float | None     # None: too few catalog photos to calibrate
    quantile: float
    photos: int                 # held-out catalog photos it was calibrated on
    version: str = VERSION

    def describe(self) -> str:
        if self.threshold is None:
            return (f"no threshold: the catalog has fewer than {MIN_PHOTOS} photos to calibrate one on "
                    f"({self.photos})")
        return (f"conformal {self.quantile:.0%} quantile of the nearest-photo similarity of {self.photos} catalog "
                "photos, each held out of the catalog in turn")


def _digest(catalog) -> str:
    h = hashlib.sha256(f"{VERSION}|{QUANTILE}|{SAMPLE}|{MIN_PHOTOS}|{catalog.model_id}".encode())
    for sha in catalog.photos["sha256"]:
        h.update(str(sha).encode())
    return h.hexdigest()[:20]


def calibrate(catalog, quantile: float = QUANTILE, sample: int = SAMPLE, seed: int = 0) -> OpenSetThreshold:
    """The threshold from leave-one-out nearest-photo similarities over (a sample of) the catalog's photos."""
    n = len(catalog.photos)
    if n < MIN_PHOTOS:
        return OpenSetThreshold(None, quantile, n)
    held = np.arange(n) if n <= sample else np.sort(np.random.default_rng(seed).choice(n, sample, replace=False))
    return OpenSetThreshold(conformal_quantile(held_out_similarities(catalog, held), quantile), quantile, len(held))


def conformal_quantile(sims: np.ndarray, quantile: float = QUANTILE) -> float | None:
    """The k-th lowest similarity, k = floor(quantile * (n + 1)); None when k is 0 (too few)."""
    k = int(np.floor(quantile * (len(sims) + 1)))
    return round(float(np.sort(sims)[k - 1]), 4) if k >= 1 else None


def held_out_similarities(catalog, held: np.ndarray) -> np.ndarray:
    """For each catalog photo in `held`: the cosine to its nearest catalog photo with other content
    (not itself, nor a byte-identical copy)."""
    shas = catalog.photos["sha256"].to_numpy()
    out = np.empty(len(held), np.float32)
    if not catalog.search.approximate:      # small catalog in memory: a few matrix products
        emb = np.asarray(catalog.embeddings, np.float32)
        for start in range(0, len(held), 256):
            rows = held[start:start + 256]
            sims = emb[rows] @ emb.T
            sims[shas[rows][:, None] == shas[None, :]] = -np.inf
            out[start:start + len(rows)] = sims.max(axis=1)
        return out
    for i, row in enumerate(held):          # big catalog: through its index, as queries go
        query = np.asarray(catalog.embeddings[row], np.float32)
        photos, scores = catalog.nearest_photos(query, 8)
        other = [s for p, s in zip(photos, scores) if shas[p] != shas[row]]
        out[i] = other[0] if other else -1.0
    return out


def threshold_for(catalog) -> OpenSetThreshold:
    """The catalog's threshold: worked out once per process, kept beside its embedding cache."""
    key = ("open-set", VERSION)
    if key not in catalog.classifiers:
        catalog.classifiers[key] = _stored_or_calibrated(catalog)
    return catalog.classifiers[key]


def _stored_or_calibrated(catalog) -> OpenSetThreshold:
    cache_dir = getattr(catalog, "cache_dir", None)
    path = Path(cache_dir) / f"open-set-{_digest(catalog)}.json" if cache_dir is not None else None
    if path is not None:
        try:
            return OpenSetThreshold(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):   # absent or damaged: worked out again
            pass
    found = calibrate(catalog)
    if path is not None:
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            tmp.write_text(json.dumps(asdict(found)))
            os.replace(tmp, path)
        except OSError:      # a read-only cache: worked out again by the next process
            tmp.unlink(missing_ok=True)
    return found


def nearest_similarity(catalog, query: np.ndarray) -> float:
    """Cosine between a photo's embedding and its nearest catalog photo."""
    _, sims = catalog.nearest_photos(np.asarray(query, np.float32), 1)
    return float(sims[0]) if len(sims) else -1.0


def judge(similarity: float, found: OpenSetThreshold, top_shoes: list[dict], suggestions: int = 3) -> dict:
    """The answer's open-set part: `not_in_catalog` and, when set, the message and the nearest shoes
    as suggestions."""
    flagged = found.threshold is not None and similarity < found.threshold
    out = {"not_in_catalog": flagged,
           "open_set": {"nearest_similarity": round(float(similarity), 4), "threshold": found.threshold,
                        "calibration": found.describe()}}
    if flagged:
        out["message"] = NOT_IN_CATALOG
        out["suggestions"] = [s["shoe"] for s in top_shoes[:suggestions]]
    return out
