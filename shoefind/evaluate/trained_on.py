"""Which photos a trained model learned from, so that an evaluation scores them apart from the others.

A model that `learn --method lit` or `--method finetune` wrote carries its manifest beside the
checkpoint (`<checkpoint>.json`, shoefind.learn.checkpoint) and, for LiT, its split
(`<checkpoint>.split.csv`: every photo of its dataset, `train` or `heldout`). Scoring such a model on
its own dataset mixes photos it learned with photos it never saw; the mixed figure flatters it. The
record read here says, per photo hash, which side a photo is on. A photo the model never saw at
all (not in its dataset, or added since) counts as held out: it is as fair a test as a held-out one.

A LiT model trained further from another LiT checkpoint (`base.continued_from`) learned that
checkpoint's training photos too: they are followed back.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

HELD_OUT, TRAINED_ON, ALL = "held-out", "trained-on", "all"
SPLIT_ORDER = (HELD_OUT, TRAINED_ON, ALL)
TRAINED_METHODS = ("lit", "finetune")
MAX_CHAIN = 8             # continued-from links followed (a loop in hand-edited manifests stops here)


@dataclass
class TrainingRecord:
    """What a trained model learned from, as far as its manifests tell."""
    checkpoint: Path
    method: str                              # lit | finetune
    dataset: str                             # the dataset it was trained on
    trained: frozenset[str] | None           # sha256 of every photo that trained it; None: unknown
    heldout: frozenset[str] = frozenset()    # sha256 its split kept out of training
    notes: list[str] = field(default_factory=list)

    @property
    def known(self) -> bool:
        return self.trained is not None

    def role(self, sha256: str) -> str:
        """held-out | trained-on for one photo (all when the training photos are unknown)."""
        if self.trained is None:
            return ALL
        return TRAINED_ON if sha256 in self.trained else HELD_OUT

    def describe(self, sha256s) -> str:
        """One line for a report: how this table's photos divide."""
        roles = pd.Series([self.role(s) for s in sha256s], dtype=object)
        if self.trained is None:
            return (f"{self.checkpoint.name} was trained ({self.method}) on {self.dataset}, but which photos trained "
                    "it is unknown: the scores below may include photos it learned")
        held = int((roles == HELD_OUT).sum())
        in_split = sum(1 for s in sha256s if s in self.heldout)
        new = held - in_split
        text = (f"{self.checkpoint.name} was trained ({self.method}) on {int((roles == TRAINED_ON).sum())} of these "
                f"{len(roles)} photos; the other {held} it never trained on")
        if held:
            text += f" ({in_split} held out by its split" + (f", {new} not in its training data" if new else "") + ")"
        return text + "."


def checkpoint_of(model: str | None, encoder=None) -> Path | None:
    """The checkpoint file a model spec (or a loaded encoder) names, when it is a local file."""
    path = getattr(encoder, "path", None)
    if path and Path(path).is_file():
        return Path(path)
    if not model:
        return None
    from shoefind.encoders.spec import split_spec
    candidate = Path(split_spec(str(model))[0] or "").expanduser()
    return candidate if candidate.is_file() else None


def _manifest(checkpoint: Path) -> dict | None:
    from shoefind.learn.checkpoint import manifest_paths
    path = manifest_paths(checkpoint)[0]
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and manifest.get("method") in TRAINED_METHODS else None


def _read_split(manifest: dict, checkpoint: Path) -> pd.DataFrame | None:
    """The LiT split file: where the manifest says, else beside the checkpoint (a moved model folder)."""
    given = Path(str((manifest.get("split") or {}).get("file") or ""))
    for path in (given, checkpoint.with_name(checkpoint.name + ".split.csv")):
        if str(path) not in ("", ".") and path.is_file():
            try:
                frame = pd.read_csv(path, dtype={"sha256": str, "role": str}, keep_default_na=False)
            except (OSError, ValueError, pd.errors.ParserError):
                continue
            if {"sha256", "role"} <= set(frame.columns):
                return frame
    return None


def _finetune_photos(manifest: dict, data_dir) -> tuple[frozenset[str] | None, frozenset[str]]:
    """(trained, held out) of a fine-tuned CLIP: its dataset's saved table minus the held-out hashes."""
    split = manifest.get("split") or {}
    heldout = frozenset(str(s) for s in split.get("heldout_sha256") or [])
    if data_dir is None or not manifest.get("dataset"):
        return None, heldout
    from shoefind.features.table import load_table, table_dir_for
    try:
        table = load_table(table_dir_for(Path(data_dir), manifest["dataset"]))
    except (OSError, ValueError, KeyError):   # no saved table of that dataset here: the trained photos are unknown
        return None, heldout
    photos = frozenset(table.labeled_images()["sha256"].astype(str))
    return photos - heldout, heldout


def training_record(model: str | None, encoder=None, data_dir=None) -> TrainingRecord | None:
    """The record of a trained model (None: not a model shoefind trained, e.g. a stock CLIP)."""
    checkpoint = checkpoint_of(model, encoder)
    if checkpoint is None or (manifest := _manifest(checkpoint)) is None:
        return None
    record = TrainingRecord(checkpoint, str(manifest["method"]), str(manifest.get("dataset", "")), None)
    trained: set[str] = set()
    heldout: set[str] = set()
    seen: set[Path] = set()
    current, current_manifest = checkpoint, manifest
    for _ in range(MAX_CHAIN):
        seen.add(current.resolve())
        if current_manifest["method"] == "lit":
            split = _read_split(current_manifest, current)
            if split is None:
                record.notes.append(f"the split file of {current.name} is missing: which photos trained it is unknown")
                return record
            trained |= set(split.loc[split["role"] == "train", "sha256"])
            heldout |= set(split.loc[split["role"] == "heldout", "sha256"])
        else:
            photos, held = _finetune_photos(current_manifest, data_dir)
            if photos is None:
                record.notes.append(f"no saved table of {current_manifest.get('dataset')} here: which photos "
                                    f"trained {current.name} is unknown")
                return record
            trained |= photos
            heldout |= held
        parent = (current_manifest.get("base") or {}).get("continued_from")
        if not parent:
            break
        parent = Path(parent)
        if parent.resolve() in seen or (parent_manifest := _manifest(parent)) is None:
            if parent.resolve() not in seen:
                record.notes.append(f"{current.name} continued {parent}, whose manifest is missing: photos that "
                                    "trained it may count as held out")
            break
        current, current_manifest = parent, parent_manifest
    # a photo held out by a later model but trained on by an earlier one was learned all the same
    record.trained = frozenset(trained)
    record.heldout = frozenset(heldout - trained)
    return record


def trained_test_warning(record: TrainingRecord | None, test_sha256s) -> str | None:
    """A warning when a comparison's test photos include photos the model itself trained on."""
    if record is None:
        return None
    test = list(test_sha256s)
    if not record.known:
        return (f"{record.checkpoint.name} was trained on {record.dataset}, and which photos trained it is unknown: "
                "its zero-shot scores here may include photos it learned")
    learned = sum(1 for s in test if s in record.trained)
    if not learned:
        return None
    return (f"{record.checkpoint.name} trained on {learned} of these {len(test)} test photos: its zero-shot row is "
            "flattered there (`shoefind evaluate` scores its held-out photos apart)")
