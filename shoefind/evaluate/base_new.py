"""Base-to-new generalisation, the CoCoOp paper's protocol: learn on some shoes, test on shoes never seen.

As the official code (KaiyangZhou/CoOp datasets/*.py `subsample_classes`, scripts/cocoop/base2new_*.sh):
- the labels are sorted and the first half (ceil(n / 2)) are base, the rest new (`split="paper"`, the
  default; `split="seeded"` keeps shoefind's earlier split, a seeded hash of the names);
- every shoe's photos are split the same way into a training pool and a test split
  (shoefind.features.splits.make_split); the k shots of each base shoe come from its pool, and base
  and new are both scored on their test splits only, so no photo that could train is ever scored;
- base top-1 is among the base shoes, new top-1 among the new shoes; H = 2 b n / (b + n);
- CoOp and CoCoOp train with their papers' schedules (`--schedule paper`: CoOp 200 epochs at 16 shots,
  batch 32; CoCoOp 10 epochs, batch 1), with per-epoch augmented views (shoefind.features.views),
  unless `coop_options` says otherwise. Prompt learners score new shoes through their learned context
  with the new names (CoOp) or context plus each photo's meta-token (CoCoOp); zero-shot uses its prompts.

With `heldout` (the photos a LiT or fine-tuned model never trained on, from its split file), those photos
are the test split and the shots come from the others: the base shoes are the first half of the sorted
shoes that have such training photos, every other shoe with a test photo is new.
"""
from __future__ import annotations

import hashlib
import math

import numpy as np
import pandas as pd

from shoefind.errors import UserError
from shoefind.learn.methods import task_specs
from shoefind.features.splits import _order_key, make_split

BASE_NEW_METHODS = ("zeroshot", "coop", "cocoop")
CLASS_SPLITS = ("paper", "seeded")
PAPER_COOP_OPTIONS = {"schedule": "paper"}   # both prompt learners, as their papers train them


def harmonic_mean(base: float, new: float) -> float:
    return 0.0 if base + new == 0 else 2 * base * new / (base + new)


def base_new_classes(classes: list[str], seed: int = 0, split: str = "paper") -> tuple[list[str], list[str]]:
    """(base, new), each in the order of `classes`.

    "paper": subsample_classes: the sorted labels, the first ceil(n / 2) base, the rest new (the
    seed plays no part: the paper's classes are the same for every seed).
    "seeded": shoefind's earlier split, half of the classes in a seeded hash order."""
    if split == "paper":
        ordered = sorted(classes)
    elif split == "seeded":
        ordered = sorted(classes, key=lambda c: hashlib.sha256(f"{seed}|{c}".encode()).hexdigest())
    else:
        raise UserError(f"unknown base-to-new split '{split}' (known: {', '.join(CLASS_SPLITS)})")
    n_base = max(1, min(len(ordered) - 1, math.ceil(len(ordered) / 2)))
    base = set(ordered[:n_base])
    return [c for c in classes if c in base], [c for c in classes if c not in base]


def pick_shots(images: pd.DataFrame, shots: int, seed: int = 0) -> pd.DataFrame:
    """The first `shots` photos of each shoe in a seeded order by content hash (all of a shoe's
    photos when it has fewer): a k-shot training set drawn from a pool that has no test photo."""
    keys = [_order_key(seed, s, p) for s, p in zip(images["sha256"], images["path"])]
    ordered = images.assign(_key=keys).sort_values(["shoe", "_key"])
    return ordered.groupby("shoe", sort=True).head(shots).drop(columns="_key").reset_index(drop=True)


def _top1(logits: np.ndarray, y: np.ndarray) -> float:
    return float((logits.argmax(1) == y).mean()) if len(y) else float("nan")


def base_new_photos(labeled: pd.DataFrame, classes: list[str], shots: int, seed: int = 0, split: str = "paper",
                    heldout: set[str] | None = None) -> tuple[list[str], list[str], pd.DataFrame, pd.DataFrame,
                                                              pd.DataFrame]:
    """(base shoes, new shoes, training shots, base test photos, new test photos)."""
    if heldout is None:
        photos = make_split(labeled[["path", "sha256", "shoe"]], [shots], seed)
        train_pool, test = photos.train(shots), photos.test()
        scored = [c for c in classes if c in set(test["shoe"])]
        base, new = base_new_classes(scored, seed, split)
        train = train_pool[train_pool["shoe"].isin(base)]
    else:
        tested = labeled["sha256"].isin(heldout)
        trainable = set(labeled.loc[~tested, "shoe"])
        base, _ = base_new_classes([c for c in classes if c in trainable], seed, split)
        test = labeled[tested]
        new = [c for c in classes if c not in set(base) and c in set(test["shoe"])]
        train = pick_shots(labeled[~tested & labeled["shoe"].isin(base)], shots, seed)
    base_test = test[test["shoe"].isin(base)]
    new_test = test[test["shoe"].isin(new)]
    return base, new, train.reset_index(drop=True), base_test.reset_index(drop=True), new_test.reset_index(drop=True)


def compare_base_new(encoder, table, cache, methods=BASE_NEW_METHODS, shots: int = 16, seed: int = 0,
                     coop_options: dict | None = None, views: int | None = None,
                     heldout: set[str] | None = None, split: str = "paper") -> pd.DataFrame:
    """One row per method: base top-1, new top-1, harmonic mean (task: which shoe).

    coop_options None: both prompt learners on the paper's schedule. views: augmented views per
    training photo (None: the official setting for the schedule, see shoefind.features.views).
    heldout: sha256 of the only photos to test (the k shots come from the rest), see above."""
    from shoefind.learn.augmented_views import prepare_views
    from shoefind.learn.coop import context_features, train_coop
    coop_options = dict(PAPER_COOP_OPTIONS if coop_options is None else coop_options)
    spec = task_specs(encoder, table)[-1]
    if spec.text is None:
        raise UserError(f"{encoder.model_id} has no text side: base-to-new needs prompts for the new shoes")
    labeled = table.labeled_images()
    labeled = labeled[labeled["sha256"].map(lambda s: s in cache)].reset_index(drop=True)
    base, new, train, test, new_images = base_new_photos(labeled, spec.classes, shots, seed, split, heldout)
    if not len(test) or not len(new_images) or not len(train):
        raise UserError("base-to-new needs training and test photos of the base shoes and test photos of new shoes")
    index = {c: i for i, c in enumerate(spec.classes)}
    base_idx, new_idx = np.array([index[c] for c in base]), np.array([index[c] for c in new])
    x_train = cache.matrix(train["sha256"].tolist())
    y_train = spec.labels(train)
    x_base, x_new = cache.matrix(test["sha256"].tolist()), cache.matrix(new_images["sha256"].tolist())
    # labels as positions within the base / new class lists
    y_base = np.array([base.index(s) for s in test["shoe"]])
    y_new = np.array([new.index(s) for s in new_images["shoe"]])
    learners = [m for m in methods if m in ("coop", "cocoop")]
    views_of = prepare_views(encoder, cache.dir.parent, table.root, train, learners, views, coop_options, seed)
    rows = []
    for method in methods:
        if method == "zeroshot":
            lb = x_base @ spec.text[base_idx].T
            ln = x_new @ spec.text[new_idx].T
            extra = {}
        elif method in ("coop", "cocoop"):
            clf = train_coop(encoder, spec, x_train, y_train, views=views_of(method, train),
                             conditional=method == "cocoop", seed=seed, **{"progress": False, **coop_options})
            lb = clf.logits(x_base)[:, base_idx]
            if method == "coop":
                ln = x_new @ context_features(clf, encoder, spec.task, new).T
            else:
                ln = clf.logits(x_new)[:, new_idx]
            t = clf.training
            extra = {"schedule": t["schedule"]["name"], "epochs": t.get("epochs_run"), "views": t.get("views"),
                     "n_ctx": t.get("n_ctx"), "seconds": t.get("seconds")}
        else:
            raise UserError(f"base-to-new compares {', '.join(BASE_NEW_METHODS)}, not '{method}'")
        b, n = _top1(lb, y_base), _top1(ln, y_new)
        rows.append({"method": method, "shots": shots, "split": split, "base_classes": len(base),
                     "new_classes": len(new), "train_images": len(train), "base_images": len(y_base),
                     "new_images": len(y_new), "base_top1": b, "new_top1": n, "harmonic": harmonic_mean(b, n),
                     **extra})
    return pd.DataFrame(rows)
