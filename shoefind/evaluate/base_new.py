"""Base-to-new generalisation (the CoCoOp paper's protocol): learn on some shoes, test on shoes never seen.

The shoes are split in two by a seeded hash of their names: the first half are base classes
(their k-shot photos train), the rest are new (no photo of them trains). Each method is
scored on the base classes' held-out photos among the base classes, and on every photo of
the new shoes among the new classes; the harmonic mean H = 2 b n / (b + n) rewards doing
well on both. Prompt learners score new classes through their learned context with the new
names (CoOp) or context plus each photo's meta-token (CoCoOp); zero-shot uses its prompts.

With `heldout` (the photos a LiT or fine-tuned model never trained on, from its split file),
only those photos are tested and the k shots come from the others: the base classes are half
of the shoes that have such training photos, and every other shoe is new.
"""
from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from shoefind.errors import UserError
from shoefind.learn.methods import task_specs
from shoefind.features.splits import _order_key, make_split

BASE_NEW_METHODS = ("zeroshot", "coop", "cocoop")


def harmonic_mean(base: float, new: float) -> float:
    return 0.0 if base + new == 0 else 2 * base * new / (base + new)


def base_new_classes(classes: list[str], seed: int = 0, base_fraction: float = 0.5) -> tuple[list[str], list[str]]:
    order = sorted(classes, key=lambda c: hashlib.sha256(f"{seed}|{c}".encode()).hexdigest())
    n_base = max(1, min(len(order) - 1, int(np.ceil(base_fraction * len(order)))))
    base = set(order[:n_base])
    return [c for c in classes if c in base], [c for c in classes if c not in base]


def pick_shots(images: pd.DataFrame, shots: int, seed: int = 0) -> pd.DataFrame:
    """The first `shots` photos of each shoe in a seeded order by content hash (all of a shoe's
    photos when it has fewer): a k-shot training set drawn from a pool that has no test photo."""
    keys = [_order_key(seed, s, p) for s, p in zip(images["sha256"], images["path"])]
    ordered = images.assign(_key=keys).sort_values(["shoe", "_key"])
    return ordered.groupby("shoe", sort=True).head(shots).drop(columns="_key").reset_index(drop=True)


def _top1(logits: np.ndarray, y: np.ndarray) -> float:
    return float((logits.argmax(1) == y).mean()) if len(y) else float("nan")


def compare_base_new(encoder, table, cache, methods=BASE_NEW_METHODS, shots: int = 16, seed: int = 0,
                     coop_options: dict | None = None, views: int = 0,
                     heldout: set[str] | None = None) -> pd.DataFrame:
    """One row per method: base top-1, new top-1, harmonic mean (task: which shoe).

    heldout: sha256 of the only photos to test (the k shots come from the rest), see above."""
    from shoefind.learn.coop import context_features, train_coop
    spec = task_specs(encoder, table)[-1]
    if spec.text is None:
        raise UserError(f"{encoder.model_id} has no text side: base-to-new needs prompts for the new shoes")
    labeled = table.labeled_images()
    labeled = labeled[labeled["sha256"].map(lambda s: s in cache)].reset_index(drop=True)
    if heldout is None:
        base, new = base_new_classes(spec.classes, seed)
        base_images = labeled[labeled["shoe"].isin(base)]
        split = make_split(base_images[["path", "sha256", "shoe"]], [shots], seed)
        train, test = split.train(shots), split.test()
        new_images = labeled[labeled["shoe"].isin(new)]
    else:
        tested = labeled["sha256"].isin(heldout)
        trainable = set(labeled.loc[~tested, "shoe"])
        base, _ = base_new_classes([c for c in spec.classes if c in trainable], seed)
        new = [c for c in spec.classes if c not in set(base)]
        train = pick_shots(labeled[~tested & labeled["shoe"].isin(base)], shots, seed)
        test = labeled[tested & labeled["shoe"].isin(base)]
        new_images = labeled[tested & labeled["shoe"].isin(new)]
    if not len(test) or not len(new_images):
        raise UserError("base-to-new needs test photos of both base and new shoes")
    index = {c: i for i, c in enumerate(spec.classes)}
    base_idx, new_idx = np.array([index[c] for c in base]), np.array([index[c] for c in new])
    x_train = cache.matrix(train["sha256"].tolist())
    y_train = spec.labels(train)
    x_base, x_new = cache.matrix(test["sha256"].tolist()), cache.matrix(new_images["sha256"].tolist())
    # labels as positions within the base / new class lists
    y_base = np.array([base.index(s) for s in test["shoe"]])
    y_new = np.array([new.index(s) for s in new_images["shoe"]])
    train_views = None
    if views:
        from shoefind.features.views import embed_views, view_cache, view_matrix
        store = view_cache(cache.dir.parent, encoder)
        embed_views(encoder, store, [(str(table.root / p), s) for p, s in zip(train["path"], train["sha256"])],
                    views, seed)
        train_views = view_matrix(store, train["sha256"].tolist(), views, seed)
    rows = []
    for method in methods:
        if method == "zeroshot":
            lb = x_base @ spec.text[base_idx].T
            ln = x_new @ spec.text[new_idx].T
            extra = {}
        elif method in ("coop", "cocoop"):
            clf = train_coop(encoder, spec, x_train,
                             y_train, views=train_views, conditional=method == "cocoop",
                             **{"progress": False, **(coop_options or {})})
            lb = clf.logits(x_base)[:, base_idx]
            if method == "coop":
                ln = x_new @ context_features(clf, encoder, spec.task, new).T
            else:
                ln = clf.logits(x_new)[:, new_idx]
            extra = {"epochs": clf.training.get("epochs_run"), "seconds": clf.training.get("seconds")}
        else:
            raise UserError(f"base-to-new compares {', '.join(BASE_NEW_METHODS)}, not '{method}'")
        b, n = _top1(lb, y_base), _top1(ln, y_new)
        rows.append({"method": method, "shots": shots, "base_classes": len(base), "new_classes": len(new),
                     "base_images": len(y_base), "new_images": len(y_new), "base_top1": b, "new_top1": n,
                     "harmonic": harmonic_mean(b, n), **extra})
    return pd.DataFrame(rows)
