"""The held-out split, fixed once when a dataset is registered: every model is scored on it, none
is trained or calibrated on it.

Either a labeled folder kept apart (one subfolder per shoe, named as the dataset's shoe folders:
its photos are copied into the registry, so they stay even if the folder goes), or, by default, a
share of the dataset's own photos at registration (`heldout_share`: about a fifth of every shoe with
3 or more photos, whole colourways where the file names tell them apart, else photos; reproducible
for a seed). Those stay in the dataset but are never trained on. Every shoe keeps training photos:
a closed-set head cannot name a shoe it never saw, so holding out whole shoes would only measure
that. Photos added later are never held out, so scores across the registry's life compare.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pandas as pd

from shoefind.errors import UserError
from shoefind.features.table import FeatureTable, build_table
from shoefind.images import sha256_file

COLUMNS = ["sha256", "folder", "path", "held_by"]


class HeldOutProblem(UserError):
    """A held-out folder that cannot be used."""


SHARE = 0.2


def _rank(seed: int, key: str) -> float:
    """A reproducible number in [0, 1) for a key (a photo's place does not move when others are added)."""
    return int(hashlib.sha256(f"{seed}|{key}".encode()).hexdigest()[:12], 16) / 16 ** 12


def heldout_share(images: pd.DataFrame, seed: int = 0, share: float = SHARE) -> pd.Series:
    """Which photos (path, sha256, shoe) to hold out: per shoe with 3+ photos, the units (colourways
    when the file names give 3 or more, else photos) whose seeded hash rank is below `share`, at least
    one, never all. Returns "colourway" / "photo" for held-out rows, "" for the others."""
    from shoefind.features.heldout import colourway
    held = pd.Series("", index=images.index, dtype=object)
    for shoe, group in images.groupby("shoe"):
        if len(group) < 3:
            continue
        ways = group["path"].map(colourway)
        by = "colourway" if ways.nunique() >= 3 else "photo"
        keys = ways if by == "colourway" else group["sha256"]
        units = sorted(set(keys), key=lambda u: _rank(seed, f"{by}|{shoe}|{u}"))
        out = [u for u in units if _rank(seed, f"{by}|{shoe}|{u}") < share] or units[:1]
        out = out[:len(units) - 1]
        held[group.index[keys.isin(out).to_numpy()]] = by
    return held


def heldout_from_dataset(table: FeatureTable, seed: int = 0) -> pd.DataFrame:
    images = table.images.drop_duplicates("sha256")
    held_by = heldout_share(images, seed)
    held = images[held_by != ""]
    folder_of = dict(zip(table.shoes["shoe"], table.shoes["folder"]))
    frame = pd.DataFrame({"sha256": held["sha256"], "folder": held["shoe"].map(folder_of),
                          "path": [str(table.root / p) for p in held["path"]], "held_by": held_by[held_by != ""]},
                         columns=COLUMNS).reset_index(drop=True)
    if frame.empty:
        raise HeldOutProblem(f"the dataset {table.root} has no shoe with 3 or more photos, so none can be held out "
                             "to score its models: add photos, or give a held-out folder")
    return frame


def heldout_from_folder(folder: str | os.PathLike, table: FeatureTable, copy_to: Path) -> pd.DataFrame:
    """The photos of a labeled folder kept apart, copied under copy_to/<shoe folder>/<sha256><ext>."""
    folder = Path(folder).expanduser().resolve()
    if not folder.is_dir():
        raise HeldOutProblem(f"held-out folder {folder} does not exist")
    held = build_table(folder)
    known = set(table.shoes["folder"]) | set(table.shoes["shoe"])
    folder_of_name = dict(zip(table.shoes["shoe"], table.shoes["folder"]))
    names = dict(zip(held.shoes["shoe"], held.shoes["folder"]))
    rows = []
    for rel, sha, shoe in zip(held.images["path"], held.images["sha256"], held.images["shoe"]):
        own = names.get(shoe, shoe)
        dataset_folder = own if own in set(table.shoes["folder"]) else folder_of_name.get(shoe)
        if dataset_folder is None:
            continue
        src = folder / rel
        dst = copy_to / dataset_folder / f"{sha}{src.suffix.lower()}"
        dst.parent.mkdir(parents=True, exist_ok=True)
        if not dst.exists():
            tmp = dst.with_name(f".{dst.name}.part")
            shutil.copyfile(src, tmp)
            os.replace(tmp, dst)
        rows.append({"sha256": sha, "folder": dataset_folder, "path": str(dst), "held_by": "folder"})
    if not rows:
        raise HeldOutProblem(f"held-out folder {folder} has no photo of a shoe of the dataset {table.root} (its "
                             f"subfolders must be named as the dataset's shoe folders, e.g. "
                             f"{sorted(known)[0] if known else 'Brand_Top_Color_Sole_Name'})")
    return pd.DataFrame(rows, columns=COLUMNS).drop_duplicates("sha256").reset_index(drop=True)


def save_heldout(frame: pd.DataFrame, path: Path) -> str:
    """Write heldout.csv atomically; returns its sha256 (kept in registry.json)."""
    tmp = path.with_name(f".{path.name}.tmp")
    frame[COLUMNS].to_csv(tmp, index=False)
    os.replace(tmp, path)
    return sha256_file(path)


def read_heldout(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)[COLUMNS]
