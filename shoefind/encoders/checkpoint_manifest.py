"""A trained checkpoint is the file its manifest describes: compared by sha256 before it is loaded.

`shoefind learn` (finetune, LiT) writes `<checkpoint>.json` beside each checkpoint
(shoefind.learn.checkpoint) with the checkpoint's own sha256. A checkpoint edited, truncated or swapped
after training no longer matches, and is refused with one line rather than loaded; so is a manifest
that cannot be read (it is the only witness of which file training wrote). A checkpoint without a
manifest (a CLIP download, a file from elsewhere) is loaded as it is. The checkpoint's hash is
remembered per version of the file (shoefind.encoders.weights), so a check costs no second hashing.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

from shoefind.errors import UserError

MANIFEST_FORMAT = "shoefind-trained-model"
# `learn --method finetune` writes its own format; the ones written before it recorded the checkpoint's
# sha256 have nothing to compare (loaded as they are)
FINETUNE_FORMAT = "shoefind-finetune"
_SHA256 = re.compile(r"[0-9a-f]{64}")


class CheckpointMismatch(UserError):
    """A trained checkpoint that is not the file its manifest describes, or whose manifest is unreadable."""


def manifest_paths(checkpoint: str | os.PathLike) -> tuple[Path, Path]:
    """<checkpoint>.json and <checkpoint>.md beside it (as `learn --method finetune|lit` writes them)."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(checkpoint.name + ".json"), checkpoint.with_name(checkpoint.name + ".md")


def _unchecked_hint(manifest: Path) -> str:
    return f"train it again, or delete {manifest.name} to load the checkpoint unchecked"


def read_checkpoint_manifest(checkpoint: str | os.PathLike) -> dict | None:
    """The manifest beside a trained checkpoint (None when there is none), or CheckpointMismatch when it
    cannot be read or does not record the checkpoint's sha256."""
    path = manifest_paths(checkpoint)[0]
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CheckpointMismatch(f"{path}, the manifest of {Path(checkpoint).name}, cannot be read "
                                 f"({exc.strerror or exc}): {_unchecked_hint(path)}") from None
    try:
        manifest = json.loads(text)
    except ValueError:
        manifest = None
    if not isinstance(manifest, dict) or manifest.get("format") not in (MANIFEST_FORMAT, FINETUNE_FORMAT):
        raise CheckpointMismatch(f"{path}, the manifest of {Path(checkpoint).name}, is truncated or is not a "
                                 f"shoefind manifest: {_unchecked_hint(path)}")
    digest = manifest.get("checkpoint_sha256")
    if digest is None and manifest["format"] == FINETUNE_FORMAT:
        return None
    if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
        raise CheckpointMismatch(f"{path} records no valid checkpoint_sha256 for {Path(checkpoint).name}: "
                                 f"{_unchecked_hint(path)}")
    return manifest


def verify_checkpoint(checkpoint: str | os.PathLike) -> dict | None:
    """Refuse a trained checkpoint whose sha256 is not the one its manifest recorded; returns the
    manifest (None: the checkpoint has none, nothing to compare)."""
    from shoefind.encoders.weights import remembered_sha256
    checkpoint = Path(checkpoint)
    manifest = read_checkpoint_manifest(checkpoint)
    if manifest is None:
        return None
    actual = remembered_sha256(checkpoint)
    if actual != manifest["checkpoint_sha256"]:
        path = manifest_paths(checkpoint)[0]
        raise CheckpointMismatch(
            f"{checkpoint} is not the file its manifest {path.name} describes (sha256 {actual[:16]}..., the "
            f"manifest says {manifest['checkpoint_sha256'][:16]}...): it changed after training; {_unchecked_hint(path)}")
    return manifest
