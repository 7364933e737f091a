"""Models the tests train, trained once per machine: the demo model and LiT on nike-silhouettes.

Training takes minutes on two cores, so the result lands in ~/.cache/shoefind-tests/<name>-<key>/
($SHOEFIND_TEST_CACHE overrides the root), where <key> names what the model is made from: the
version constants of the code that draws, captions, splits, encodes, trains and scores (each bumped
when its output changes; tests/models/test_golden.py catches an encoder whose output changed
without a bump), the rules it reads, the settings, the torch version and whether bf16 is used.
Editing a comment or moving a function trains nothing; a second session (or CI job on the same
runner) finds the model and trains nothing. A lock file keeps two sessions from training the same
model at once.
"""
from __future__ import annotations

import fcntl
import hashlib
import importlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from tests.helpers import REPO

DEMO_SETTINGS = {"photos_per_shoe": 10, "steps": None, "seed": 0}
NIKE_SETTINGS = {"steps": 300, "seed": 0}
# what the trained models are made from: bumping any of these (or editing a rules file) trains new ones
VERSIONS = ("shoefind.demo.drawings:DRAWING_VERSION", "shoefind.learn.captions:CAPTIONS_VERSION",
            "shoefind.learn.lit:TRAINING_VERSION", "shoefind.encoders.families.lit:LIT_VERSION",
            "shoefind.encoders.families.text_tower:TOWER_VERSION",
            "shoefind.encoders.families.clip_parts:TOKENIZER_VERSION",
            "shoefind.encoders.families.backbones:BACKBONE_PREPROCESS_VERSION",
            "shoefind.features.heldout:SPLIT_VERSION", "shoefind.features.table_fingerprint:TABLE_FORMAT",
            "shoefind.scoring.zeroshot:SCORING_VERSION")
RULES = ("lit_captions.yaml", "prompts_shoefind.yaml", "vocabularies.yaml", "change_phrases.yaml")


def cache_root() -> Path:
    return Path(os.environ.get("SHOEFIND_TEST_CACHE") or "~/.cache/shoefind-tests").expanduser()


def pin_bf16() -> str:
    """Decide bf16 once from what the CPU supports (not a timing), so every session agrees."""
    from shoefind.encoders.runtimes.precision import cpu_has_bf16
    os.environ.setdefault("SHOEFIND_BF16", "1" if cpu_has_bf16() else "0")
    return os.environ["SHOEFIND_BF16"]


def versions() -> dict[str, object]:
    """Every version constant the trained models depend on, by its module and name."""
    found = {}
    for target in VERSIONS:
        module, name = target.split(":")
        found[target] = getattr(importlib.import_module(module), name)
    return found


def model_key(settings: dict) -> str:
    import torch
    h = hashlib.sha256(json.dumps(versions(), sort_keys=True).encode())
    for name in RULES:
        h.update(name.encode())
        h.update((REPO / "rules" / name).read_bytes())
    h.update(json.dumps(settings, sort_keys=True).encode())
    h.update(torch.__version__.encode())
    h.update(f"bf16={os.environ.get('SHOEFIND_BF16', '')}".encode())
    return h.hexdigest()[:16]


def trained_once(name: str, settings: dict, train, log=print) -> tuple[Path, dict]:
    """(folder, result): `train(folder)` run once per key; its JSON-able result kept in folder/done.json."""
    pin_bf16()
    folder = cache_root() / f"{name}-{model_key(settings)}"
    done = folder / "done.json"
    if not done.is_file():
        folder.parent.mkdir(parents=True, exist_ok=True)
        with open(folder.parent / f"{folder.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)          # another session training it: wait for it
            if not done.is_file():
                log(f"training {name} into {folder} (once per machine and code version)")
                result = train(folder)
                tmp = folder / ".done.json.tmp"
                tmp.write_text(json.dumps(result, indent=2, default=str))
                os.replace(tmp, done)
                _forget_older(name, folder)
    return folder, json.loads(done.read_text())


def _forget_older(name: str, keep: Path) -> None:
    """Remove this model's folders for other code versions (none in use: their lock is free)."""
    import shutil
    for other in cache_root().glob(f"{name}-*"):
        if other == keep or not other.is_dir():
            continue
        lock_path = other.parent / f"{other.name}.lock"
        with open(lock_path, "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue                               # another session is using or training it
            shutil.rmtree(other, ignore_errors=True)


@dataclass
class TrainedModel:
    folder: Path
    model: Path          # the LiT checkpoint
    catalog: Path        # the dataset it was trained on
    data_dir: Path       # its tables and embedding cache
    result: dict         # held-out scores, split summary

    @property
    def split(self) -> pd.DataFrame:
        return pd.read_csv(self.result["split"]["file"], dtype={"path": str, "sha256": str, "shoe": str},
                           keep_default_na=False)


def demo_model(log=print) -> TrainedModel:
    """The demo model (`shoefind demo`: LiT over efficientnet-lite0 on the demo catalog)."""
    from shoefind.stages.demo import run_demo
    folder, result = trained_once("demo", DEMO_SETTINGS,
                                  lambda f: run_demo(f, f / "data", **DEMO_SETTINGS, log=log), log)
    return TrainedModel(folder, Path(result["model"]), Path(result["catalog"]), folder / "data", result)


def nike_lit_model(shared_data: Path, log=print) -> TrainedModel:
    """LiT over efficientnet-lite0 on ../shared/data/nike-silhouettes, held out by colourway."""
    from shoefind.stages.lit import learn_lit_dataset
    dataset = shared_data / "nike-silhouettes"

    def train(folder: Path) -> dict:
        return learn_lit_dataset(dataset, folder / "data", model="efficientnet-lite0",
                                 out=folder / "nike.lit.pt", batch_size=64, log=log, **NIKE_SETTINGS)
    folder, result = trained_once("nike-lit", NIKE_SETTINGS | {"dataset": str(dataset)}, train, log)
    return TrainedModel(folder, Path(result["checkpoint"]), dataset, folder / "data", result)
