"""Identifying photos against a catalog: top shoes, attribute confidences, nearest catalog photos.

The classifier is chosen by name (`method`): "zeroshot" is the 5-step zero-shot method;
learned methods (few-shot, CoOp...) register themselves with `register_classifier`, and
"auto" picks the best registered one that is available for the catalog, else zero-shot.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

import numpy as np
import torch

from shoefind.features.catalog import Catalog
from shoefind.images import ImageError, sha256_bytes, sha256_file
from shoefind.retrieve.zeroshot import Identification, ZeroShotModel, softmax, top_k


class Classifier(Protocol):
    """What identification needs: attribute classes (a dict, or a method taking the attribute)
    and `identify(embeddings) -> Identification`."""
    classes: dict[str, list[str]]

    def identify(self, image_embeddings: np.ndarray) -> Identification: ...


@dataclass
class ClassifierMethod:
    name: str
    build: Callable[[object, Catalog], Classifier]      # (encoder, catalog) -> classifier
    available: Callable[[object, Catalog], bool]        # can it be built for this catalog?
    rank: int                                           # "auto" prefers the highest rank


def _best_learned(encoder, catalog: Catalog):
    """The best classifier `shoefind learn` saved for this model and catalog (None if none; issue 6)."""
    key = ("learned-best", encoder.cache_key)
    if key not in catalog.classifiers:
        found = None
        if catalog.table is not None and catalog.data_dir is not None:
            from shoefind.learn.saved import best_method
            try:
                found = best_method(catalog.data_dir, encoder, catalog.table)
            except ValueError:      # learned with another model: zero-shot answers instead
                found = None
        catalog.classifiers[key] = found
    return catalog.classifiers[key]


def _zero_shot(encoder, catalog: Catalog) -> ZeroShotModel:
    return ZeroShotModel.build(encoder, catalog.shoes, catalog.attributes)


CLASSIFIERS: dict[str, ClassifierMethod] = {
    "zeroshot": ClassifierMethod("zeroshot", _zero_shot, lambda enc, cat: True, rank=0),
    "learned": ClassifierMethod("learned", _best_learned, lambda enc, cat: _best_learned(enc, cat) is not None,
                                rank=10),
}


def register_classifier(name: str, build, available=lambda enc, cat: True, rank: int = 10) -> None:
    """Plug in a classifier (e.g. a learned few-shot method); `auto` uses it when available."""
    CLASSIFIERS[name] = ClassifierMethod(name, build, available, rank)


def choose_method(method: str, encoder, catalog: Catalog) -> str:
    if method != "auto":
        if method not in CLASSIFIERS:
            raise ValueError(f"unknown identification method '{method}' (known: auto, {', '.join(CLASSIFIERS)})")
        if not CLASSIFIERS[method].available(encoder, catalog):
            raise ValueError(f"identification method '{method}' is not available for this model and catalog "
                             "(learned methods: run `shoefind learn` first)")
        return method
    usable = [m for m in CLASSIFIERS.values() if m.available(encoder, catalog)]
    return max(usable, key=lambda m: m.rank).name


def classifier_for(encoder, catalog: Catalog, method: str = "auto") -> tuple[str, Classifier]:
    """The classifier for a catalog (built once per process and catalog)."""
    name = choose_method(method, encoder, catalog)
    key = (name, encoder.cache_key)
    if key not in catalog.classifiers:
        catalog.classifiers[key] = CLASSIFIERS[name].build(encoder, catalog)
    classifier = catalog.classifiers[key]
    if getattr(classifier, "method", None):      # a learned classifier says which one it is
        name = f"{name}: {classifier.method}"
    return name, classifier


@dataclass
class QueryPhotos:
    """Encoded query photos; `errors[i]` is the reason photo i could not be used (else None)."""
    labels: list[str]
    embeddings: np.ndarray          # (n, dim); rows of failed photos are zero
    errors: list[str | None]
    catalog_rows: list[int | None]  # the catalog photo with the same content, if any

    @property
    def ok(self) -> list[int]:
        return [i for i, e in enumerate(self.errors) if e is None]


def encode_queries(encoder, catalog: Catalog | None, photos: Sequence, batch_size: int | None = None
                   ) -> QueryPhotos:
    """Decode and encode photos (paths or bytes) in batches; a bad photo fails alone.

    A photo already in the catalog (same bytes) reuses its cached embedding.
    """
    n = len(photos)
    labels = [("uploaded photo" if isinstance(p, (bytes, bytearray)) else str(p)) for p in photos]
    errors: list[str | None] = [None] * n
    rows: list[int | None] = [None] * n
    emb = np.zeros((n, catalog.embeddings.shape[1] if catalog is not None else encoder.embed_dim), np.float32)
    todo = []
    for i, p in enumerate(photos):
        try:
            sha = sha256_bytes(bytes(p)) if isinstance(p, (bytes, bytearray)) else sha256_file(p)
        except FileNotFoundError:
            errors[i] = f"{p}: no such file"
            continue
        except (IsADirectoryError, PermissionError, OSError) as exc:
            errors[i] = f"{p}: cannot be read ({exc.strerror or exc})"
            continue
        row = catalog.photo_index(sha) if catalog is not None else None
        if row is not None:
            rows[i] = row
            emb[i] = catalog.embeddings[row]
        else:
            todo.append(i)
    bs = batch_size or encoder.batch_size
    for start in range(0, len(todo), bs):
        chunk, tensors = [], []
        for i in todo[start:start + bs]:
            try:
                tensors.append(encoder.load_image(photos[i]))
                chunk.append(i)
            except ImageError as exc:
                errors[i] = str(exc)
        if tensors:
            emb[chunk] = encoder.encode_tensors(torch.stack(tensors))
    return QueryPhotos(labels, emb, errors, rows)


def describe_identification(catalog: Catalog, classifier: Classifier, result: Identification, i: int,
                            query: np.ndarray, k: int = 5, neighbours: int = 5, logit_scale: float = 100.0) -> dict:
    """Photo i's answer as plain data: top-k shoes, attribute confidences, nearest catalog photos."""
    scores = result.combined_scores[i]
    # zero-shot gives cosines; learned classifiers may give probabilities already
    is_probability = bool((scores >= 0).all() and abs(float(scores.sum()) - 1) < 1e-3)
    probs = scores if is_probability else softmax(logit_scale * scores[None])[0]
    shoes = [catalog.shoe_record(j) | {"score": round(float(scores[j]), 4), "probability": round(float(probs[j]), 4)}
             for j in top_k(scores[None], k)[0]]
    attributes = {}
    for attr, p in result.attribute_probs.items():
        order = np.argsort(-p[i])[:3]
        classes = classifier.classes(attr) if callable(classifier.classes) else classifier.classes[attr]
        attributes[attr] = {"value": classes[order[0]], "confidence": round(float(p[i][order[0]]), 4),
                            "alternatives": [{"value": classes[j], "confidence": round(float(p[i][j]), 4)}
                                             for j in order[1:]]}
        # the most likely value some catalog shoe has: what "same brand" can keep
        present = set(catalog.shoes[attr].astype(str)) if attr in catalog.shoes else set()
        in_catalog = [j for j in np.argsort(-p[i]) if classes[j] in present]
        if in_catalog:
            attributes[attr]["catalog_value"] = classes[in_catalog[0]]
            attributes[attr]["catalog_confidence"] = round(float(p[i][in_catalog[0]]), 4)
    sims = catalog.embeddings @ query
    nearest = [] if neighbours <= 0 else [
        catalog.shoe_record(catalog.photo_shoe[j]) | {"path": catalog.photos["path"].iat[j],
                                                      "similarity": round(float(sims[j]), 4)}
               for j in top_k(sims[None], min(neighbours, len(sims)))[0]]
    return {"shoe": shoes[0] if shoes else None, "top_shoes": shoes, "attributes": attributes,
            "nearest_photos": nearest}


def reference_attributes(answer: dict, catalog: Catalog, catalog_row: int | None,
                         use_catalog_labels: bool = True) -> dict[str, tuple[str, float]]:
    """The query shoe's attribute values with confidence: its catalog labels if the photo is a
    catalog photo, else the most likely value that some catalog shoe has."""
    if use_catalog_labels and catalog_row is not None:
        rec = catalog.shoe_record(catalog.photo_shoe[catalog_row])
        return {a: (rec[a], 1.0) for a in catalog.attributes if rec.get(a)}
    return {a: (v.get("catalog_value", v["value"]), v.get("catalog_confidence", v["confidence"]))
            for a, v in answer["attributes"].items()}
