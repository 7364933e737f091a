"""The held-out split, fixed once when a dataset is registered: every model is scored on it, none
is trained or calibrated on it.

Either a labeled folder kept apart (one subfolder per shoe, named as the dataset's shoe folders:
its photos are copied into the registry, so they stay even if the folder goes), or, by default, a
share of the dataset's own photos at registration (shoefind.features.heldout: whole colourways where
file names tell them, else photos; reproducible for a seed). Those stay in the dataset but are never
trained on. Photos added later are never held out, so scores across the registry's life compare.
"""
from __future__ import annotations

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


def heldout_from_dataset(table: FeatureTable, seed: int = 0) -> pd.DataFrame:
    from shoefind.features.heldout import heldout_split
    from shoefind.learn.captions import shoe_labels
    split = heldout_split(table.images, shoe_labels(table.shoes), table.layout, seed)
    held = split.heldout()
    folder_of = dict(zip(table.shoes["shoe"], table.shoes["folder"]))
    return pd.DataFrame({"sha256": held["sha256"], "folder": held["shoe"].map(folder_of),
                         "path": [str(table.root / p) for p in held["path"]], "held_by": held["held_by"]},
                        columns=COLUMNS)


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
