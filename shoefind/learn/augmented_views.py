"""How many augmented views each learned method trains with, and encoding them before training.

By default each method's official setting: 10 augmented views per training photo for Tip-Adapter and
Tip-Adapter-F (Tip-Adapter's augment_epoch) and for CoOp and CoCoOp on the paper's schedule (one drawn
per photo and epoch, for the paper's re-augmentation every epoch), none for CoOp's fast schedule;
`--views N` gives every one of them N, `--views 0` none. The views themselves, their crops and their
cache: shoefind.features.views.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from shoefind.features.cache import EmbeddingCache
from shoefind.features.views import (DEFAULT_VIEWS, RECIPES, ViewRecipe, can_augment, embed_views, view_cache,
                                     view_matrix)
from shoefind.learn.coop import default_schedule


def views_plan(methods, views: int | None = None, coop_options: dict | None = None) -> dict[str, tuple[int, ViewRecipe]]:
    """{method: (views per training photo, recipe)} for the methods that use augmented views.

    views None: each method's official setting (see the module docstring); 0: none; N: N for each."""
    plan = {}
    for method in methods:
        if method not in RECIPES:
            continue
        if views is None:
            coop = method in ("coop", "cocoop")
            schedule = (coop_options or {}).get("schedule") or default_schedule(method == "cocoop")
            n = DEFAULT_VIEWS if not coop or schedule == "paper" else 0
        else:
            n = int(views)
        if n > 0:
            plan[method] = (n, RECIPES[method])
    return plan


def prepare_views(encoder, embeddings_root, root, pool, methods, views: int | None = None,
                  coop_options: dict | None = None, seed: int = 0,
                  log: Callable[[str], None] | None = None) -> Callable:
    """Encode (once, cached) the augmented views `views_plan` asks for, of the photos in `pool` (a frame
    with path, sha256; paths under `root`), and return `views_of(method, frame)`: the (N, V, D) views
    of a training frame's photos for that method, or None. An encoder whose preprocessing cannot be
    augmented gets none, and the log says so."""
    plan = views_plan(methods, views, coop_options)
    say = log or (lambda _m: None)
    if plan and not can_augment(encoder):
        say(f"augmented views: {encoder.model_id}'s preprocessing cannot be augmented; training without them")
        plan = {}
    stores: dict[str, EmbeddingCache] = {}
    items = [(str(Path(root) / p), s) for p, s in zip(pool["path"], pool["sha256"])]
    for n, recipe in sorted({v for v in plan.values()}, key=lambda v: v[1].name):
        if recipe.name not in stores:
            stores[recipe.name] = view_cache(embeddings_root, encoder, recipe)
        users = ", ".join(m for m, v in plan.items() if v == (n, recipe))
        say(f"augmented views ({users}): {n} per training photo, {recipe.name} ({len(items)} photos)")
        embed_views(encoder, stores[recipe.name], items, n, seed, recipe=recipe)

    def views_of(method: str, frame) -> np.ndarray | None:
        if method not in plan or not len(frame):
            return None
        n, recipe = plan[method]
        return view_matrix(stores[recipe.name], frame["sha256"].tolist(), n, seed)
    return views_of
