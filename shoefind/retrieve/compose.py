"""Composed retrieval: catalog shoes like the photo, changed as the words say.

Three methods, plus two one-sided baselines for the benchmark:
- baseline:    identify the shoe, match "Similar to {name}, I want {change}" against catalog photos;
- fusion:      (1-w)·photo + w·text embedding (w = text_weight);
- constraints: read the change into attribute constraints (shoefind/change.py), keep only the
               catalog shoes that satisfy them, rank those by fused similarity; a change it
               cannot read falls back to fusion;
- photo-only / text-only: the photo alone, the change text alone.
Words to push away ("not red", "-red") are subtracted from the query in every text method.
The query shoe itself is never returned.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from shoefind.features.catalog import Catalog
from shoefind.prompts import PromptSet, load_prompt_set
from shoefind.scoring.change_words import ATTRIBUTE_NAMES, ChangeRequest
from shoefind.settings import load_rules
from shoefind.errors import UserError

METHODS = ("constraints", "fusion", "baseline")
BASELINES = ("photo-only", "text-only")


@lru_cache(maxsize=1)
def retrieval_rules() -> dict:
    return load_rules("retrieval_prompts")


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / (np.linalg.norm(v) + 1e-12)).astype(np.float32)


def text_query_vector(encoder, text: str, prompts: str | PromptSet | None = None) -> np.ndarray:
    """A prompt-ensembled embedding of free text (zero vector for empty text)."""
    text = " ".join(str(text).split())
    if not text:
        return np.zeros(encoder.embed_dim, np.float32)
    templates = load_prompt_set(prompts).retrieval["query_templates"]
    return encoder.encode_ensemble([[t.format(text) for t in templates]])[0]


def negative_vector(encoder, terms: list[str], prompts: str | PromptSet | None = None) -> np.ndarray:
    """One direction for everything to push away (zero vector when nothing is)."""
    if not terms:
        return np.zeros(encoder.embed_dim, np.float32)
    templates = load_prompt_set(prompts).retrieval["negative_templates"]
    per_term = encoder.encode_ensemble([[t.format(term) for t in templates] for term in terms])
    return _unit(per_term.mean(axis=0))


def fuse(photo: np.ndarray | None, text: np.ndarray | None, negative: np.ndarray | None,
         text_weight: float, negative_weight: float) -> np.ndarray:
    """Normalised (1-w)·photo + w·text - wn·negative; a missing part counts as zero."""
    dim = next(len(v) for v in (photo, text, negative) if v is not None)
    zero = np.zeros(dim, np.float32)
    photo = zero if photo is None else photo
    text = zero if text is None or not text.any() else text
    w = text_weight if text.any() and photo.any() else (1.0 if text.any() else 0.0)
    v = (1 - w) * photo + w * text
    if negative is not None and negative.any():
        v = v - negative_weight * negative
    return _unit(v)


@dataclass
class ChangeQuery:
    """One photo and one change request, with what identification said about the photo."""
    photo: np.ndarray                                 # normalised photo embedding
    change: ChangeRequest
    reference: dict[str, tuple[str, float]]           # attribute -> (query shoe's value, confidence)
    identified_name: str = ""
    exclude_shoe: int | None = None                   # the query shoe (never returned)


@dataclass
class RetrievalResult:
    method: str
    ranking: np.ndarray                # catalog shoe indices, best first (only allowed shoes)
    scores: np.ndarray                 # their scores
    best_photos: np.ndarray            # their best photo (catalog photo index)
    understood: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def shoes(self, catalog: Catalog, k: int) -> list[dict]:
        return [catalog.shoe_record(s) | {"score": round(float(sc), 4), "photo": catalog.photos["path"].iat[p]}
                for s, sc, p in zip(self.ranking[:k], self.scores[:k], self.best_photos[:k])]


def _rank(catalog: Catalog, query: np.ndarray, allowed: np.ndarray, method: str,
          **extra) -> RetrievalResult:
    """Allowed shoes by their best photo's similarity to query (above the ANN threshold: the best ones)."""
    best, best_photo = catalog.shoe_scores(query, allowed)
    order = np.argsort(-best, kind="stable")
    order = order[np.isfinite(best[order])]
    return RetrievalResult(method, order, best[order], best_photo[order], **extra)


def _allowed_base(catalog: Catalog, query: ChangeQuery) -> np.ndarray:
    allowed = np.ones(len(catalog.shoes), dtype=bool)
    if query.exclude_shoe is not None:
        allowed[query.exclude_shoe] = False
    return allowed


def constraint_mask(catalog: Catalog, change: ChangeRequest, reference: dict) -> tuple[np.ndarray, list[str]]:
    """Which catalog shoes satisfy the parsed rules; notes on rules that could not be applied."""
    mask = np.ones(len(catalog.shoes), dtype=bool)
    notes = []
    labeled = set(catalog.attributes)
    for attr, rule in change.rules.items():
        if not rule.active:
            continue
        name = ATTRIBUTE_NAMES[attr]
        if attr not in labeled:
            notes.append(f"the catalog has no {name} labels: " + (
                f"the wanted {name} is matched as text only" if rule.want else
                f"'{'same' if rule.keep else 'not' if rule.avoid else 'different'} {name}' cannot be checked"))
            continue
        ref = reference.get(attr, (None, 0.0))[0]
        if (rule.keep or rule.differ) and not rule.want and ref is None:
            notes.append(f"the photo's {name} is unknown: 'same/different {name}' was ignored")
            continue
        values, shoe_value = np.unique(catalog.labels(attr), return_inverse=True)   # each value judged once
        mask &= np.array([rule.allows(v, ref) for v in values], dtype=bool)[shoe_value]
    return mask, notes


def retrieve(encoder, catalog: Catalog, query: ChangeQuery, method: str = "constraints",
             text_weight: float | None = None, negative_weight: float | None = None,
             prompts: str | PromptSet | None = None) -> RetrievalResult:
    """Rank catalog shoes for a photo + change with one method (METHODS or BASELINES)."""
    rules = retrieval_rules()
    prompts = load_prompt_set(prompts)
    w = rules["text_weight"] if text_weight is None else float(text_weight)
    wn = rules["negative_weight"] if negative_weight is None else float(negative_weight)
    change = query.change
    negative = negative_vector(encoder, change.avoid_texts(), prompts)
    allowed = _allowed_base(catalog, query)
    photo = _unit(query.photo)
    understood = change.understood(query.reference)

    if method == "photo-only":
        return _rank(catalog, photo, allowed, method)
    if method == "text-only":
        q = fuse(None, text_query_vector(encoder, change.positive_text, prompts), negative, w, wn)
        return _rank(catalog, q, allowed, method)
    if method == "baseline":
        text = prompts.retrieval["baseline_template"].format(name=query.identified_name or "this shoe",
                                                 change=change.positive_text or change.text)
        q = fuse(None, encoder.encode_texts([text])[0], negative, w, wn)
        return _rank(catalog, q, allowed, method, understood=[f"text: '{text}'"])
    if method == "fusion":
        q = fuse(photo, text_query_vector(encoder, change.positive_text, prompts), negative, w, wn)
        return _rank(catalog, q, allowed, method,
                     understood=[f"photo + text '{change.positive_text}' (text weight {w:g})"] +
                     ([f"pushed away: {', '.join(change.avoid_texts())}"] if change.avoid_texts() else []))
    if method != "constraints":
        raise UserError(f"unknown retrieval method '{method}' (known: {', '.join(METHODS + BASELINES)})")

    if not change.parsed:
        result = retrieve(encoder, catalog, query, "fusion", w, wn, prompts)
        result.method = "constraints"
        result.notes.insert(0, "no attribute constraint recognised in the text: fell back to photo + text fusion")
        return result
    mask, notes = constraint_mask(catalog, change, query.reference)
    q = fuse(photo, text_query_vector(encoder, change.wanted_description(), prompts), negative, w, wn)
    result = _rank(catalog, q, allowed & mask, method, understood=understood, notes=notes)
    if not len(result.ranking):
        result.notes.append("no catalog shoe satisfies all of: " + "; ".join(understood))
    return result
