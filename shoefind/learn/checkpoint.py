"""Trained model files and their manifests, written so that a killed run leaves the previous ones intact.

A checkpoint is written under a temporary name and renamed over the old one only when it is
complete (a rename is atomic), then its manifest beside it, in JSON (`<checkpoint>.json`) and markdown
(`<checkpoint>.md`): base model and its sha256, the feature table's hash, the split, hyperparameters,
training time and held-out scores before and after. The manifest carries the checkpoint's own
sha256, so a manifest that does not belong to the file beside it can be told: loading refuses a
checkpoint that does not match it (shoefind.encoders.checkpoint_manifest).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable

import pandas as pd

# loading compares the checkpoint with its manifest: shoefind.encoders.checkpoint_manifest.verify_checkpoint
from shoefind.encoders.checkpoint_manifest import MANIFEST_FORMAT, manifest_paths  # noqa: F401  (this module's API)
from shoefind.learn.heldout import METRIC_ORDER
from shoefind.images import sha256_file


def table_hash(images: pd.DataFrame, labels: pd.DataFrame) -> str:
    """A hash of what training read: every photo's content hash and its shoe's labels."""
    merged = images[["sha256", "shoe"]].merge(labels, on="shoe", how="left").fillna("")
    rows = sorted("|".join(str(v) for v in r) for r in merged.itertuples(index=False))
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_model(checkpoint: str | os.PathLike, write: Callable[[Path], None], manifest: dict) -> dict:
    """`write(tmp_path)` writes the checkpoint; it is moved into place, then the manifest (with the
    checkpoint's path and sha256 added) is written beside it. Returns the manifest."""
    checkpoint = Path(checkpoint)
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    tmp = checkpoint.with_name(f".{checkpoint.name}.{os.getpid()}.part")
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        digest = sha256_file(tmp)
        os.replace(tmp, checkpoint)
    finally:
        tmp.unlink(missing_ok=True)
    manifest = {"format": MANIFEST_FORMAT, "checkpoint": str(checkpoint), "checkpoint_sha256": digest} | manifest
    json_path, md_path = manifest_paths(checkpoint)
    _atomic_text(json_path, json.dumps(manifest, indent=2, default=str) + "\n")
    _atomic_text(md_path, manifest_markdown(manifest))
    return manifest


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1%}" if 0 <= value <= 1 else f"{value:.3g}"
    return str(value)


def manifest_markdown(manifest: dict) -> str:
    """The manifest for people: what was trained on what, and how it scores on held-out photos."""
    base = manifest.get("base", {})
    split = manifest.get("split", {})
    training = manifest.get("training", {})
    lines = [f"# {Path(manifest['checkpoint']).name}", "",
             f"- method: {manifest.get('method', '')}",
             f"- base model: {base.get('spec', '')} ({base.get('family', '')}), sha256 {base.get('sha256', '') or '-'}",
             f"- dataset: {manifest.get('dataset', '')}",
             f"- feature table hash: {manifest.get('table_hash', '')}",
             f"- checkpoint sha256: {manifest.get('checkpoint_sha256', '')}",
             f"- held out by {', '.join(split.get('by', []))}: {split.get('heldout_photos', 0)} photos "
             f"({split.get('train_photos', 0)} for training)",
             f"- training: {training.get('steps', '')} steps in {training.get('seconds', '')} s "
             f"({training.get('precision', '')}), final loss {training.get('final_loss', '')}"]
    # what changes how to read the scores (too few held-out photos, a score no better than the majority class)
    lines[2:2] = [f"> **Warning:** {w}  " for w in manifest.get("warnings") or []] + \
        ([""] if manifest.get("warnings") else [])
    baselines = manifest.get("heldout_baselines") or {}
    lines += ["", "## Held-out scores", "", "| score | before | after |" + (" chance | majority class |" if baselines
                                                                              else ""),
              "| --- | --- | --- |" + (" --- | --- |" if baselines else "")]
    before, after = manifest.get("heldout_before") or {}, manifest.get("heldout") or {}
    for key in METRIC_ORDER:
        if key in before or key in after:
            base = baselines.get(key)
            extra = (f" {_fmt(base['chance'])} | {_fmt(base['majority'])} ({base['majority_class']}) |" if base
                     else (" - | - |" if baselines else ""))
            lines.append(f"| {key} | {_fmt(before.get(key))} | {_fmt(after.get(key))} |{extra}")
    if baselines:
        lines += ["", "Chance: a uniform guess over the catalog's classes; majority class: always answering the "
                  "most frequent class of the held-out photos."]
    lines += ["", "## Hyperparameters", ""]
    lines += [f"- {k}: {v}" for k, v in (manifest.get("hyperparameters") or {}).items()]
    notes = manifest.get("notes") or []
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"
