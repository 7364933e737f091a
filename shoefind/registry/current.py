"""The dataset's current model, as `infer`, `search`, the web page and the warm worker use it.

`current_spec(data_dir, dataset)`: the model spec to load when none is given (the configured backbone,
or the current LiT checkpoint). `current_classifier(encoder, catalog)`: the current model's head for a
catalog, when it reads this encoder's embeddings (None otherwise, and before any model was promoted),
rebuilt when another model becomes current. A registry that cannot be read is one clear error.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shoefind.registry import learners
from shoefind.registry.store import ModelRegistry
from shoefind.scoring.zeroshot import Identification, shoe_values


@dataclass
class LoadedModel:
    manifest: dict
    encoder: object
    head: object
    table: object


def model_spec(registry: ModelRegistry, manifest: dict) -> str:
    enc = manifest["encoder"]
    return str(registry.model_dir(manifest["id"]) / enc["spec"]) if enc.get("in_folder") else enc["spec"]


def load_current(registry: ModelRegistry, table=None, encoder=None) -> LoadedModel | None:
    """The current model with its encoder and head (rebuilt for `table`, default the dataset's now)."""
    manifest = registry.current()
    if manifest is None:
        return None
    from shoefind.encoders.load import load_encoder
    if table is None:
        from shoefind.registry.table import dataset_table
        table = dataset_table(registry.dataset, registry.data_dir)
    encoder = encoder or load_encoder(model_spec(registry, manifest))
    learner = manifest["learner"]
    head = learners.load(learner["name"], registry.model_dir(manifest["id"]), encoder, table, learner["settings"])
    return LoadedModel(manifest, encoder, head, table)


def current_spec(data_dir: str | os.PathLike, dataset: str | os.PathLike) -> str | None:
    """The spec of the dataset's current model (None when it has none)."""
    registry = ModelRegistry(data_dir, dataset)
    if not registry.registered:
        return None
    manifest = registry.current()
    return model_spec(registry, manifest) if manifest else None


@dataclass
class CurrentClassifier:
    """The current model behind identify's Classifier interface: shoe probabilities from its head,
    attribute probabilities summed over the shoes that carry each value."""
    method: str
    model_id: str
    head: object
    shoes: object                      # the catalog's shoes (rows of the head's classes)
    attribute_names: list[str]
    heldout_top1: float | None = None   # on the registry's held-out photos
    references: dict | None = None      # nearest-photo and zero-shot top-1 on them (None: not recorded)

    def classes(self, attribute: str) -> list[str]:
        return shoe_values(self.shoes, attribute)

    def identify(self, image_embeddings: np.ndarray) -> Identification:
        probs = self.head.predict_proba(np.asarray(image_embeddings, np.float32))
        return Identification.from_shoe_probabilities(probs, self.shoes, self.attribute_names)


def current_classifier(encoder, catalog) -> CurrentClassifier | None:
    """The catalog dataset's current model, when it reads this encoder's embeddings (memoised per
    catalog until the pointer changes)."""
    if catalog.table is None or catalog.data_dir is None:
        return None
    registry = ModelRegistry(catalog.data_dir, catalog.root)
    if not registry.registered:
        return None
    try:
        stamp = registry.pointer_path.stat().st_mtime_ns
    except OSError:
        return None
    key = ("registry-current", encoder.cache_key, encoder.model_id, stamp)
    if key not in catalog.classifiers:
        catalog.classifiers[key] = _build(registry, encoder, catalog)
    return catalog.classifiers[key]


def _build(registry: ModelRegistry, encoder, catalog) -> CurrentClassifier | None:
    manifest = registry.current()
    if manifest is None:
        return None
    wanted = manifest["encoder"]
    if wanted.get("in_folder"):
        same = Path(getattr(encoder, "path", "") or "").resolve() == Path(model_spec(registry, manifest)).resolve()
    else:
        same = encoder.model_id == wanted.get("model_id") and encoder.cache_key == wanted.get("cache_key")
    if not same:
        return None
    loaded = load_current(registry, catalog.table, encoder)
    return CurrentClassifier(manifest["learner"]["name"], manifest["id"], loaded.head,
                             catalog.shoes.reset_index(drop=True), list(catalog.attributes),
                             (manifest.get("heldout") or {}).get("top1"), manifest.get("references"))
