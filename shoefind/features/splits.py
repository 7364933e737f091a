"""Reproducible k-shot splits per shoe: one held-out test set shared by every k and method.

Each shoe's images are put in a seeded random order (by content hash, so a renamed file
keeps its place). The first min(max_k, n - 1) images form the shoe's training pool and
the rest are its test images; the k-shot training set is the first k of the pool. So
every k and every method is scored on the same test images, and the k-shot sets are
nested (the 4-shot images include the 1-shot one). A shoe with a single photo is test
only: the learned methods never see it and must fall back to zero-shot for it.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from shoefind.errors import UserError

STANDARD_SHOTS = (1, 2, 4, 8, 16)


def parse_shots(text: str | int | None, default: int = 16) -> list[int]:
    """'16' -> the standard k up to 16 (1, 2, 4, 8, 16); '1,4,16' -> exactly those."""
    if text is None or str(text).strip() == "":
        text = str(default)
    parts = [p for p in str(text).replace(" ", "").split(",") if p]
    try:
        values = sorted({int(p) for p in parts})
    except ValueError:
        raise UserError(f"--shots '{text}': give a number (e.g. 16) or a comma list (e.g. 1,4,16)") from None
    if not values or values[0] < 1:
        raise UserError(f"--shots '{text}': shots must be 1 or more")
    if len(values) == 1:
        return [k for k in STANDARD_SHOTS if k <= values[0]] or values
    return values


def _order_key(seed: int, sha: str, path: str) -> str:
    return hashlib.sha256(f"{seed}|{sha}|{path}".encode()).hexdigest()


@dataclass
class Split:
    """Per image: its shoe, its rank in the shoe's order, and whether it is test or pool."""
    images: pd.DataFrame      # path, sha256, shoe, rank, role ("pool" | "test")
    shots: list[int]
    seed: int

    def train(self, k: int) -> pd.DataFrame:
        """The k-shot training images (fewer for a shoe whose pool is smaller)."""
        pool = self.images[self.images["role"] == "pool"]
        return pool[pool["rank"] < k].reset_index(drop=True)

    def test(self) -> pd.DataFrame:
        return self.images[self.images["role"] == "test"].reset_index(drop=True)

    def save(self, folder: str | os.PathLike) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        table = self.images.copy()
        for k in self.shots:
            table[f"train_k{k}"] = (table["role"] == "pool") & (table["rank"] < k)
        tmp = folder / ".split.csv.tmp"
        table.to_csv(tmp, index=False)
        os.replace(tmp, folder / "split.csv")
        (folder / "split.json").write_text(json.dumps({"seed": self.seed, "shots": self.shots}, indent=2))
        return folder / "split.csv"

    @classmethod
    def load(cls, folder: str | os.PathLike) -> "Split":
        folder = Path(folder)
        meta = json.loads((folder / "split.json").read_text())
        table = pd.read_csv(folder / "split.csv", dtype={"path": str, "sha256": str, "shoe": str},
                            keep_default_na=False)
        return cls(table[["path", "sha256", "shoe", "rank", "role"]], list(meta["shots"]), int(meta["seed"]))


def make_split(images: pd.DataFrame, shots: list[int], seed: int = 0) -> Split:
    """Split `images` (path, sha256, shoe) per shoe for the given k values."""
    max_k = max(shots)
    rows = []
    for shoe, group in images.groupby("shoe", sort=True):
        ordered = sorted(group[["path", "sha256"]].itertuples(index=False),
                         key=lambda r: _order_key(seed, r.sha256, r.path))
        pool_size = min(max_k, len(ordered) - 1)
        for rank, r in enumerate(ordered):
            rows.append({"path": r.path, "sha256": r.sha256, "shoe": shoe, "rank": rank,
                         "role": "pool" if rank < pool_size else "test"})
    table = pd.DataFrame(rows, columns=["path", "sha256", "shoe", "rank", "role"])
    return Split(table, sorted(shots), seed)


def usable_shots(images: pd.DataFrame, shots: list[int]) -> list[int]:
    """The k values at which some shoe still keeps a test image (k < its image count)."""
    most = int(images.groupby("shoe").size().max()) if len(images) else 0
    return [k for k in shots if k < most]
