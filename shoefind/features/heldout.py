"""A held-out split for training a model (LiT): photos kept out by photo, and by shoe or colourway.

Whole units are held out where the labels allow, so the held-out score says how the model does
on shoes it never saw, not only on new photos of known ones:
- by shoe: a labeled catalog with several photos per shoe holds out some whole shoes (only
  shoes whose every attribute value other training shoes still have, so zero-shot can be
  right on them), then some photos of every other shoe;
- by colourway: a classes-layout dataset (one folder per model, file name = colourway, as
  nike-silhouettes) holds out whole colourways (file name without its trailing view/size
  numbers) within each class;
- by photo: otherwise.
Every choice is a hash of the seed and the photo's or shoe's name, so it is reproducible and
does not move when other photos are added.
"""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from shoefind.errors import UserError

MIN_PHOTOS = 10
# Bump when the same table gives another held-out split.
SPLIT_VERSION = 1
SHOE_FRACTION = 0.15
PHOTO_FRACTION = 0.2


class TooFewPhotos(UserError):
    """Not enough photos to keep some out of training."""


def _rank(seed: int, key: str) -> float:
    """A reproducible number in [0, 1) for a key."""
    return int(hashlib.sha256(f"{seed}|{key}".encode()).hexdigest()[:12], 16) / 16 ** 12


def colourway(path: str) -> str:
    """A photo's colourway: its file name without extension and trailing view/size numbers
    ('air-jordan-1-mid-black-gym-red-1-400.png' -> 'air-jordan-1-mid-black-gym-red')."""
    stem = Path(path).stem
    return re.sub(r"([-_ ]\d{1,4})+$", "", stem) or stem


@dataclass
class HeldOutSplit:
    """Per photo: `role` train | heldout, and `held_by` photo | shoe | colourway for held-out ones."""
    images: pd.DataFrame           # path, sha256, shoe, role, held_by
    by: list[str]                  # the units held out, e.g. ["shoe", "photo"]
    seed: int

    def train(self) -> pd.DataFrame:
        return self.images[self.images["role"] == "train"].reset_index(drop=True)

    def heldout(self) -> pd.DataFrame:
        return self.images[self.images["role"] == "heldout"].reset_index(drop=True)

    def describe(self) -> dict:
        held = self.heldout()
        return {"by": self.by, "seed": self.seed, "train_photos": int(len(self.images) - len(held)),
                "heldout_photos": int(len(held)),
                "heldout_by": {k: int(v) for k, v in held["held_by"].value_counts().sort_index().items()},
                "heldout_shoes": sorted(set(held.loc[held["held_by"] == "shoe", "shoe"]))}

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp")
        self.images.to_csv(tmp, index=False)
        os.replace(tmp, path)
        return path


def heldout_split(images: pd.DataFrame, labels: pd.DataFrame, layout: str, seed: int = 0) -> HeldOutSplit:
    """Split `images` (path, sha256, shoe) whose shoes are described by `labels` (shoe + attributes,
    "" unknown); `layout` is the feature table's (folders | catalog | classes)."""
    images = images[["path", "sha256", "shoe"]].drop_duplicates("sha256").reset_index(drop=True)
    if len(images) < MIN_PHOTOS:
        raise TooFewPhotos(f"only {len(images)} usable photos: training keeps some out to measure itself, so it "
                           f"needs at least {MIN_PHOTOS} (and more than one per class helps)")
    role = np.array(["train"] * len(images), dtype=object)
    held_by = np.array([""] * len(images), dtype=object)
    per_shoe = images.groupby("shoe").size()
    by: list[str] = []
    if layout == "classes":
        keys = images["path"].map(colourway)
        for shoe, group in images.groupby("shoe"):
            units = sorted(set(keys[group.index]))
            if len(units) < 3:
                continue
            out = {u for u in units if _rank(seed, f"colourway|{shoe}|{u}") < PHOTO_FRACTION}
            if not out:
                out = {min(units, key=lambda u: _rank(seed, f"colourway|{shoe}|{u}"))}
            hit = group.index[keys[group.index].isin(out)]
            role[hit], held_by[hit] = "heldout", "colourway"
        by = ["colourway"]
    else:
        if len(per_shoe) >= 8 and per_shoe.median() >= 3:
            held_shoes = _held_shoes(labels, per_shoe, seed)
            hit = images.index[images["shoe"].isin(held_shoes)]
            role[hit], held_by[hit] = "heldout", "shoe"
            by.append("shoe")
        for shoe, group in images.groupby("shoe"):
            if (role[group.index] == "heldout").any() or len(group) < 3:
                continue
            order = sorted(group.index, key=lambda i: _rank(seed, f"photo|{images.at[i, 'sha256']}"))
            n = max(1, int(round(len(group) * PHOTO_FRACTION)))
            role[order[:n]], held_by[order[:n]] = "heldout", "photo"
        by.append("photo")
    images["role"], images["held_by"] = role, held_by
    split = HeldOutSplit(images, by, seed)
    if not (images["role"] == "heldout").any() or (images["role"] == "train").sum() < 2:
        raise TooFewPhotos(f"{len(images)} photos in {len(per_shoe)} classes cannot be split into training and "
                           "held-out photos: give more photos per shoe (3 or more lets some be held out)")
    return split


def _held_shoes(labels: pd.DataFrame, per_shoe: pd.Series, seed: int) -> set[str]:
    """About SHOE_FRACTION of the shoes, each leaving every one of its attribute values to other
    training shoes."""
    attrs = [a for a in ("brand", "color", "hightop", "sole") if a in labels and labels[a].astype(str).str.len().gt(0).any()]
    rows = labels.set_index("shoe")
    remaining = {a: rows.loc[rows.index.isin(per_shoe.index), a].astype(str).value_counts().to_dict() for a in attrs}
    want = int(round(len(per_shoe) * SHOE_FRACTION))
    out: set[str] = set()
    for shoe in sorted(per_shoe.index, key=lambda s: _rank(seed, f"shoe|{s}")):
        if len(out) >= want:
            break
        values = {a: str(rows.at[shoe, a]) for a in attrs}
        if all(remaining[a].get(v, 0) > 1 for a, v in values.items() if v):
            out.add(shoe)
            for a, v in values.items():
                if v:
                    remaining[a][v] -= 1
    return out
