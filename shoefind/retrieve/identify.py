"""Identifying photos against a catalog: top shoes, attribute confidences, nearest catalog photos.

The classifier is chosen by name (`method`, the same names as `learn --method`):
"zeroshot" is the 5-step zero-shot method (needs a text side); "fewshot" and "coop" are what
`shoefind learn` saved ("learned" is the best of them); "current" is the dataset's current model in
the model registry (what the expansion runs train and promote, shoefind.registry); "nearest" ranks
shoes by their most similar catalog photo. "auto" picks the best available: the current model,
else learned, else zero-shot, else nearest (an image-only backbone before `learn`). Others plug
in with `register_classifier`.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

import numpy as np

from shoefind.features.catalog import Catalog
from shoefind.encoders.base import require_text, stack_pixels
from shoefind.errors import UserError
from shoefind.images import ImageError, sha256_bytes, sha256_file
from shoefind.scoring.zeroshot import (Identification, ZeroShotModel, ZeroShotOptions, shoe_values, softmax,
                                      top_k)

log = logging.getLogger("shoefind.identify")
_SAID: set[str] = set()   # warnings already given in this process


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


def _learned(encoder, catalog: Catalog, family: str = "best"):
    """A classifier `shoefind learn` saved for this model and catalog (None if none; issue 6).

    family "best" is the method that scored best on shoe names; "fewshot" the better of the
    prototype and Tip-Adapter; "coop" CoOp.
    """
    # model_id too: two models may share image embeddings (a backbone and its LiT checkpoints)
    key = (f"learned-{family}", encoder.cache_key, encoder.model_id, _learned_stamp(encoder, catalog))
    if key not in catalog.classifiers:
        found = None
        if catalog.table is not None and catalog.data_dir is not None:
            from shoefind.learn.saved import LearnedForAnotherModel, best_method
            # damaged or edited classifiers are refused with one line (shoefind.learn.saved), never skipped
            try:
                found = best_method(catalog.data_dir, encoder, catalog.table,
                                    among=None if family == "best" else LEARNED_FAMILIES[family])
            except LearnedForAnotherModel as exc:      # not usable with this model: said (once), then not used
                if str(exc) not in _SAID:
                    _SAID.add(str(exc))
                    log.warning("%s: not using them", exc)
                found = None
        catalog.classifiers[key] = found
    return catalog.classifiers[key]


def _learned_stamp(encoder, catalog: Catalog) -> float | None:
    """Changes when `shoefind learn` saves again, so a running web page picks up what it learned."""
    if catalog.table is None or catalog.data_dir is None:
        return None
    from shoefind.learn.saved import learned_dir
    manifest = learned_dir(catalog.data_dir, encoder.model_id, str(catalog.table.root)) / "manifest.json"
    try:
        return manifest.stat().st_mtime
    except OSError:
        return None


# `--method` names shared by `learn`, `evaluate` and `infer`: a family and the saved methods it covers
LEARNED_FAMILIES = {"fewshot": ("prototype", "tip-adapter", "tip-adapter-f", "linear-probe"),
                    "tip-adapter-f": ("tip-adapter-f",), "linear-probe": ("linear-probe",),
                    "coop": ("coop",), "cocoop": ("cocoop",)}


def _current(encoder, catalog: Catalog):
    """The dataset's current model (model registry), when it reads this encoder's embeddings."""
    from shoefind.registry.current import current_classifier
    return current_classifier(encoder, catalog)


def _zero_shot(encoder, catalog: Catalog, options: ZeroShotOptions | None = None) -> ZeroShotModel:
    require_text(encoder, "the zero-shot method (text prompts)")
    return ZeroShotModel.build(encoder, catalog.shoes, catalog.attributes, options)


@dataclass
class NearestPhotos:
    """Identification by the most similar catalog photos (no text side, nothing learned needed).

    A shoe scores by its most similar photo; attribute probabilities add up the probabilities
    of the shoes that carry each label.
    """
    catalog: Catalog
    temperature: float = 30.0       # softmax scale for cosine similarities (as few-shot's image-only scale)

    def classes(self, attribute: str) -> list[str]:
        return shoe_values(self.catalog.shoes, attribute)

    def identify(self, image_embeddings: np.ndarray) -> Identification:
        x = np.asarray(image_embeddings, np.float32)
        sims = x @ self.catalog.embeddings.T
        per_shoe = np.stack([self.catalog.best_photo_per_shoe(row)[0] for row in sims]) if len(x) else \
            np.zeros((0, len(self.catalog.shoes)), np.float32)
        probs = softmax(self.temperature * np.where(np.isfinite(per_shoe), per_shoe, -1.0))
        return Identification.from_shoe_probabilities(probs, self.catalog.shoes, list(self.catalog.attributes))


CLASSIFIERS: dict[str, ClassifierMethod] = {
    "zeroshot": ClassifierMethod("zeroshot", _zero_shot, lambda enc, cat: bool(enc.has_text), rank=5),
    "fewshot": ClassifierMethod("fewshot", lambda enc, cat: _learned(enc, cat, "fewshot"),
                                lambda enc, cat: _learned(enc, cat, "fewshot") is not None, rank=9),
    "tip-adapter-f": ClassifierMethod("tip-adapter-f", lambda enc, cat: _learned(enc, cat, "tip-adapter-f"),
                                      lambda enc, cat: _learned(enc, cat, "tip-adapter-f") is not None, rank=8),
    "linear-probe": ClassifierMethod("linear-probe", lambda enc, cat: _learned(enc, cat, "linear-probe"),
                                     lambda enc, cat: _learned(enc, cat, "linear-probe") is not None, rank=8),
    "coop": ClassifierMethod("coop", lambda enc, cat: _learned(enc, cat, "coop"),
                             lambda enc, cat: _learned(enc, cat, "coop") is not None, rank=9),
    "cocoop": ClassifierMethod("cocoop", lambda enc, cat: _learned(enc, cat, "cocoop"),
                               lambda enc, cat: _learned(enc, cat, "cocoop") is not None, rank=9),
    "learned": ClassifierMethod("learned", _learned, lambda enc, cat: _learned(enc, cat) is not None, rank=10),
    "current": ClassifierMethod("current", _current, lambda enc, cat: _current(enc, cat) is not None, rank=11),
    "nearest": ClassifierMethod("nearest", lambda enc, cat: NearestPhotos(cat), lambda enc, cat: True, rank=0),
}

# What each method is, in the words `infer` prints next to the answer.
DESCRIPTIONS = {
    "zeroshot": "zero-shot 5-step method (text prompts; nothing learned)",
    "fewshot": "few-shot classifier learned by `shoefind learn`",
    "tip-adapter-f": "Tip-Adapter-F (fine-tuned cache model) learned by `shoefind learn`",
    "linear-probe": "linear probe (logistic regression on the embeddings) learned by `shoefind learn`",
    "coop": "CoOp prompts learned by `shoefind learn`",
    "cocoop": "CoCoOp prompts (context + a token from each photo) learned by `shoefind learn`",
    "learned": "the best classifier learned by `shoefind learn`",
    "current": "the dataset's current model (model registry: `shoefind models`), trained by the expansion runs",
    "nearest": "nearest catalog photos (no classifier learned: `shoefind learn` trains one)",
}


def register_classifier(name: str, build, available=lambda enc, cat: True, rank: int = 10,
                        description: str | None = None) -> None:
    """Plug in a classifier (e.g. a learned few-shot method); `auto` uses it when available."""
    CLASSIFIERS[name] = ClassifierMethod(name, build, available, rank)
    if description:
        DESCRIPTIONS[name] = description


def method_names() -> list[str]:
    return ["auto", *CLASSIFIERS]


@dataclass
class Choice:
    """The classifier a request gets, and why when it is not the one `auto` would have liked (a learned
    model below a reference) or a named learned one is below a reference."""
    name: str
    note: str | None = None


LEARNED_NAMES = ("learned", "current", *LEARNED_FAMILIES)


def choose(method: str, encoder, catalog: Catalog) -> Choice:
    """The classifier a request names, or with "auto" the best one available: a learned classifier or
    the current model only where its held-out shoe top-1 is not below the nearest catalog photo's or
    zero-shot's on the same photos (shoefind.learn.references); a UserError (one sentence) when the
    named one is unknown or cannot run here."""
    from shoefind.learn.references import ANSWERED_BY
    if method != "auto":
        if method not in CLASSIFIERS:
            raise UserError(f"'{method}' is not an identification method: choose one of "
                            f"{', '.join(method_names())}.")
        if not CLASSIFIERS[method].available(encoder, catalog):
            raise UserError(_unavailable(method, encoder, catalog))
        classifier = _learned_one(method, encoder, catalog)
        below = _below(method, classifier, catalog)
        return Choice(method, f"{_label(method, classifier)} was asked for, although {below[1]}" if below else None)
    usable = sorted((m for m in CLASSIFIERS.values() if m.available(encoder, catalog)), key=lambda m: -m.rank)
    for candidate in usable:
        classifier = _learned_one(candidate.name, encoder, catalog)
        below = _below(candidate.name, classifier, catalog)
        if below is None:
            return Choice(candidate.name)
        reference, why = below
        if reference == "zeroshot" and not CLASSIFIERS["zeroshot"].available(encoder, catalog):
            reference = "nearest"
        return Choice(reference, f"not using {_label(candidate.name, classifier)}: {why}; "
                                 f"answering with {ANSWERED_BY[reference]}")
    return Choice("nearest")


def choose_method(method: str, encoder, catalog: Catalog) -> str:
    """The name `choose` picks."""
    return choose(method, encoder, catalog).name


def _learned_one(name: str, encoder, catalog: Catalog):
    """The learned classifier or current model a method name stands for (None for the others)."""
    return CLASSIFIERS[name].build(encoder, catalog) if name in LEARNED_NAMES else None


def _below(name: str, classifier, catalog: Catalog) -> tuple[str, str] | None:
    """(reference, why) when a learned classifier or the current model scored below a reference."""
    if classifier is None:
        return None
    from shoefind.learn.references import below_references
    trained = getattr(classifier, "trained_shoes", None)
    if trained is not None:
        unseen = [s for s in catalog.shoes["shoe"].astype(str) if s not in trained]
        if unseen:      # it can never answer these; the nearest catalog photo can
            return "nearest", (f"it had no training photo of {len(unseen)} of the catalog's {len(catalog.shoes)} "
                               f"shoes (e.g. {unseen[0]}), which the nearest catalog photo can still find")
    references = getattr(classifier, "references", None)
    if references is None:     # learned before the references were recorded
        again = "the next expansion run records them" if name == "current" else \
            "run `shoefind learn` again to record them"
        return "nearest", ("it was saved without held-out scores against the nearest catalog photo and zero-shot "
                           f"({again})")
    return below_references(getattr(classifier, "heldout_top1", None), references)


def _label(name: str, classifier) -> str:
    if name == "current":
        return f"the current model {classifier.model_id} ({classifier.method})"
    return f"the learned classifier ({getattr(classifier, 'method', name)})"


def _unavailable(method: str, encoder, catalog: Catalog) -> str:
    if method in ("zeroshot", "coop") and not encoder.has_text:
        from shoefind.encoders.base import no_text_message
        what = "the zero-shot method (text prompts)" if method == "zeroshot" else "CoOp (learned text prompts)"
        return no_text_message(encoder.model_id, what)
    if method == "current":
        return (f"The dataset {catalog.root} has no current model for {encoder.model_id} (an expansion run trains "
                "and promotes one; `shoefind models` lists them). Leave out --model to use the current model's own, "
                "or use another --method.")
    learn = f"shoefind learn {catalog.root} --model {encoder.model_id}"
    what = {"fewshot": "No few-shot classifier", "coop": "No CoOp classifier"}.get(method, "No classifier")
    return (f"{what} has been learned for {encoder.model_id} and the catalog {catalog.root}. "
            f"Run `{learn}` first, or use --method nearest (the nearest catalog photos).")


def classifier_for(encoder, catalog: Catalog, method: str = "auto",
                   options: ZeroShotOptions | None = None) -> tuple[str, Classifier]:
    """The classifier for a catalog (built once per process, catalog and zero-shot options) and its
    method name ("fewshot: tip-adapter", "nearest"...)."""
    chosen = chosen_classifier(encoder, catalog, method, options)
    return chosen.name, chosen.classifier


@dataclass
class ChosenClassifier:
    name: str                  # as answers show it: "fewshot: tip-adapter", "current: linear-probe m0002"...
    classifier: Classifier
    note: str | None           # why it is not the learned one (or why the learned one asked for is doubtful)


def chosen_classifier(encoder, catalog: Catalog, method: str = "auto",
                      options: ZeroShotOptions | None = None) -> ChosenClassifier:
    """classifier_for with the choice's note."""
    choice = choose(method, encoder, catalog)
    name, classifier = _build_chosen(choice.name, encoder, catalog, options)
    return ChosenClassifier(name, classifier, choice.note)


def _build_chosen(name: str, encoder, catalog: Catalog, options: ZeroShotOptions | None):
    options = options or ZeroShotOptions()
    key = (name, encoder.cache_key, encoder.model_id) + ((options,) if name == "zeroshot" else ())
    if name not in ("learned", "current", *LEARNED_FAMILIES):
        if key not in catalog.classifiers:
            build = CLASSIFIERS[name].build
            catalog.classifiers[key] = build(encoder, catalog, options) if build is _zero_shot else \
                build(encoder, catalog)
        classifier = catalog.classifiers[key]
    else:       # learned ones are memoised by _learned (and rebuilt when learn saves again)
        classifier = CLASSIFIERS[name].build(encoder, catalog)
    if name == "current":
        return f"current: {classifier.method} {classifier.model_id}", classifier
    if getattr(classifier, "method", None):      # a learned classifier says which one it is, by its family
        family = next((f for f, saved in LEARNED_FAMILIES.items() if classifier.method in saved), classifier.method)
        name = f"{family}: {classifier.method}" if family != classifier.method else family
    return name, classifier


def describe_method(name: str) -> str:
    """One line saying what a method name from `classifier_for` is."""
    return DESCRIPTIONS.get(name.split(":")[0], name)


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


def encode_queries(encoder, catalog: Catalog | None, photos: Sequence, batch_size: int | None = None,
                   progress: Callable[[int], None] | None = None,
                   encode: Callable[[list], np.ndarray] | None = None) -> QueryPhotos:
    """Decode and encode photos (paths or bytes) in batches; a bad photo fails alone.

    A photo already in the catalog (same bytes) reuses its cached embedding. `progress(n)` is
    called as photos are done. `encode(pixels) -> embeddings`: how preprocessed photos are encoded
    (default: one forward pass per batch; the HTTP API batches photos of concurrent requests).
    """
    encode = encode or (lambda pixels: encoder.encode_tensors(stack_pixels(pixels)))
    advance = progress or (lambda _n: None)
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
            emb[i] = catalog.embeddings[row]   # float16 rows of a big catalog become float32 here
        else:
            todo.append(i)
    advance(n - len(todo))
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
            emb[chunk] = encode(tensors)
        advance(len(todo[start:start + bs]))
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
        present = set(catalog.labels(attr)) if attr in catalog.shoes else set()
        in_catalog = [j for j in np.argsort(-p[i]) if classes[j] in present]
        if in_catalog:
            attributes[attr]["catalog_value"] = classes[in_catalog[0]]
            attributes[attr]["catalog_confidence"] = round(float(p[i][in_catalog[0]]), 4)
    photos, sims = catalog.nearest_photos(query, neighbours) if neighbours > 0 else ([], [])
    nearest = [catalog.shoe_record(catalog.photo_shoe[j]) | {"path": catalog.photos["path"].iat[j],
                                                             "sha256": catalog.photos["sha256"].iat[j],
                                                             "similarity": round(float(sim), 4)}
               for j, sim in zip(photos, sims)]
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
