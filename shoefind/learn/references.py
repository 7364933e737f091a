"""The two references a learned model must not fall below: the nearest catalog photo and zero-shot prompts.

Both are what identification answers with when nothing learned is used (shoefind.retrieve.identify:
"nearest" ranks shoes by their most similar catalog photo, "zeroshot" is the 5-step prompt method), so a
learned classifier or a registry model is scored against them on the same held-out photos and is used
only where its shoe top-1 is not lower (issue 24: a `learn` on one photo per shoe answered a catalog
shoe wrongly at 100%, where the nearest photo had it right).

`reference_scores` scores both for held-out photos against a set of catalog photos; `exclude_same`
leaves each held-out photo's own copy out of its catalog (leave-one-out, when the held-out photos are
catalog photos themselves, as in `learn`'s comparison).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from shoefind.scoring.metrics import accuracy_at
from shoefind.scoring.zeroshot import top_k

CHUNK = 512     # held-out photos per similarity block: bounds memory on a big catalog
ANSWERED_BY = {"nearest": "the nearest catalog photos", "zeroshot": "zero-shot prompts"}   # what a fallback says


def nearest_photo_scores(query_x: np.ndarray, photo_x: np.ndarray, photo_shoe: np.ndarray, n_shoes: int,
                         query_sha: list[str] | None = None, photo_sha: list[str] | None = None) -> np.ndarray:
    """(n, n_shoes): each shoe's most similar photo, -inf for a shoe without one. With the sha lists, a
    query's own content is not its neighbour."""
    out = np.full((len(query_x), n_shoes), -np.inf, dtype=np.float32)
    photo_shoe = np.asarray(photo_shoe, dtype=int)
    shas = np.asarray(photo_sha) if photo_sha is not None else None
    for start in range(0, len(query_x), CHUNK):
        sims = np.asarray(query_x[start:start + CHUNK], np.float32) @ np.asarray(photo_x, np.float32).T
        if shas is not None and query_sha is not None:
            own = shas[None, :] == np.asarray(query_sha[start:start + CHUNK])[:, None]
            sims = np.where(own, -np.inf, sims)
        block = out[start:start + CHUNK]
        for shoe in np.unique(photo_shoe):
            block[:, shoe] = sims[:, photo_shoe == shoe].max(axis=1)
    return out


def top_scores(scores: np.ndarray, truth: np.ndarray) -> dict:
    """Top-1 and top-5 of per-shoe scores against the true shoe rows."""
    if not len(truth):
        return {"photos": 0, "top1": None, "top5": None}
    ranked = top_k(scores, 5)
    return {"photos": int(len(truth)), "top1": round(accuracy_at(truth, ranked, 1), 4),
            "top5": round(accuracy_at(truth, ranked, 5), 4)}


def reference_scores(encoder, shoes: pd.DataFrame, attributes: list[str], held_x: np.ndarray,
                     held_y: np.ndarray, photo_x: np.ndarray, photo_shoe: np.ndarray,
                     held_sha: list[str] | None = None, photo_sha: list[str] | None = None,
                     options=None, zeroshot=None) -> dict:
    """{"nearest": scores, "zeroshot": scores or None} on the held-out photos (shoe rows of `shoes`);
    zero-shot only where the encoder has a text side (`zeroshot`: its ZeroShotModel, when built already)."""
    near = nearest_photo_scores(held_x, photo_x, photo_shoe, len(shoes), held_sha, photo_sha)
    out = {"nearest": top_scores(near, held_y), "zeroshot": None}
    if getattr(encoder, "has_text", False) and len(held_y):
        if zeroshot is None:
            from shoefind.scoring.zeroshot import ZeroShotModel
            zeroshot = ZeroShotModel.build(encoder, shoes, attributes=attributes, options=options)
        out["zeroshot"] = top_scores(zeroshot.identify(np.asarray(held_x, np.float32)).combined_scores, held_y)
    return out


def best_reference(references: dict) -> tuple[str, float] | None:
    """The reference with the higher top-1 (nearest on a tie: it needs no prompts)."""
    scored = [(name, r["top1"]) for name, r in (references or {}).items()
              if isinstance(r, dict) and r.get("top1") is not None]
    if not scored:
        return None
    return max(scored, key=lambda s: (s[1], s[0] == "nearest"))


def below_references(top1: float | None, references: dict | None) -> tuple[str, str] | None:
    """(the reference to answer with, why) when a learned model's held-out top-1 is lower than a
    reference's; None when it may be used."""
    best = best_reference(references or {})
    if best is None:
        return None
    name, score = best
    if top1 is None:
        return name, "it has no held-out score"
    if top1 < score:
        what = {"nearest": "the nearest catalog photo", "zeroshot": "zero-shot prompts"}[name]
        return name, f"its held-out top-1 {top1:.1%} is below {what}'s {score:.1%} on the same photos"
    return None
