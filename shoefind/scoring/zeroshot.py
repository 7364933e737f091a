"""Zero-shot CLIP: attribute classification and the 5-step shoe identification.

The 5-step method (as the seed defines it):
 1. classify the attributes (brand, colour, top, sole) of the photo, over the values that
    appear in the catalog (`vocabulary="full"`: over every vocabulary value);
 2. keep the catalog shoes whose brand, colour and top match (`filter_attributes`; sole is an
    opt-in, as its zero-shot accuracy is low);
 3. score those shoes with prompts that name them with their attributes;
 4. score every shoe with name prompts;
 5. answer the better of the two best scores. When the filter keeps nothing, the best name
    match answers (`fallback="relax"` drops the least confident attribute until a shoe is left).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from shoefind.errors import UserError
from shoefind.prompts import DEFAULT_PROMPTS, PromptSet, load_prompt_set, prompt_set_names
from shoefind.vocab import ATTRIBUTES, vocabularies

# Bump when the same embeddings and prompts give other scores or answers.
SCORING_VERSION = 1

VOCABULARIES = ("catalog", "full")
FALLBACKS = ("name", "relax")
DEFAULT_FILTER = ("brand", "color", "hightop")


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


@dataclass(frozen=True)
class ZeroShotOptions:
    """How zero-shot identification reads a catalog: which prompt set, which attribute values
    step 1 scores, which attributes step 2 filters on, and what answers when the filter is empty."""
    prompts: str = DEFAULT_PROMPTS
    vocabulary: str = "catalog"
    filter_attributes: tuple[str, ...] = DEFAULT_FILTER
    fallback: str = "name"

    @classmethod
    def parse(cls, prompts: str | None = None, vocabulary: str | None = None,
              filter_attributes: str | list[str] | tuple[str, ...] | None = None,
              fallback: str | None = None) -> "ZeroShotOptions":
        """Options from user input (None: the default); a bad value is a UserError naming the choices."""
        prompts = prompts or DEFAULT_PROMPTS
        if prompts not in prompt_set_names():
            raise UserError(f"unknown prompt set '{prompts}' (known: {', '.join(prompt_set_names())})")
        vocabulary = vocabulary or "catalog"
        if vocabulary not in VOCABULARIES:
            raise UserError(f"unknown vocabulary '{vocabulary}' (known: {', '.join(VOCABULARIES)})")
        fallback = fallback or "name"
        if fallback not in FALLBACKS:
            raise UserError(f"unknown fallback '{fallback}' (known: {', '.join(FALLBACKS)})")
        if filter_attributes is None:
            attrs = DEFAULT_FILTER
        else:
            if isinstance(filter_attributes, str):
                filter_attributes = filter_attributes.split(",")
            attrs = tuple(dict.fromkeys(a.strip().lower() for a in filter_attributes if a.strip()))
            unknown = [a for a in attrs if a not in ATTRIBUTES]
            if unknown:
                raise UserError(f"unknown filter attribute '{unknown[0]}' (known: {', '.join(ATTRIBUTES)})")
        return cls(prompts, vocabulary, attrs, fallback)

    @classmethod
    def of(cls, value: "ZeroShotOptions | dict | None") -> "ZeroShotOptions":
        """Options from what stages and flows pass around: None (defaults), a dict as `describe`
        gives (checked), or options."""
        if isinstance(value, cls):
            return value
        return cls.parse(**(value or {}))

    @property
    def prompt_set(self) -> PromptSet:
        return load_prompt_set(self.prompts)

    def describe(self) -> dict:
        return {"prompts": self.prompts, "vocabulary": self.vocabulary,
                "filter_attributes": list(self.filter_attributes), "fallback": self.fallback}


def attribute_classes(attribute: str, labels: pd.Series | None = None, vocabulary: str = "catalog",
                      as_written: bool = False) -> list[str]:
    """The classes step 1 scores for an attribute.

    "catalog": the values the catalog's shoes have (vocabulary order, then values the
    vocabulary lacks); "full": every vocabulary value, plus catalog values it lacks.
    as_written (a word-for-word prompt set, the seed's): the catalog's values in the order it
    first lists them, as the seed's dicts hold them (utils.update_dict), so its 97-shoe catalog
    has 20 colours ("Grey" and "Whte" among them) where shoefind reads 19.
    """
    known = list(vocabularies()[attribute].values)
    values = [] if labels is None else [v for v in labels.dropna().astype(str) if v]
    present = set(values)
    if as_written:
        in_order = list(dict.fromkeys(values))
        if vocabulary == "catalog" and present:
            return in_order
        return known + [v for v in in_order if v not in known]
    extra = sorted(v for v in present if v not in known)
    if vocabulary == "catalog" and present:
        return [v for v in known if v in present] + extra
    return known + extra


@dataclass
class Identification:
    """Per image: attribute probabilities and shoe rankings (indices into the catalog)."""
    attribute_probs: dict[str, np.ndarray]          # attr -> (N, C)
    name_scores: np.ndarray                         # (N, S) cosine, name prompts alone
    combined_scores: np.ndarray                     # (N, S) the 5-step method's scores
    filtered_best: np.ndarray | None = None         # (N,) step 3's best shoe; -1 where the filter kept none

    @classmethod
    def from_shoe_probabilities(cls, probs: np.ndarray, shoes: pd.DataFrame,
                                attributes: list[str]) -> "Identification":
        """Shoe probabilities (N, S) as an identification: each attribute value's probability is the sum of
        the probabilities of the shoes that carry it (values in shoe_values order)."""
        attribute_probs = {}
        for attr in attributes:
            classes = shoe_values(shoes, attr)
            index = {c: i for i, c in enumerate(classes)}
            member = np.zeros((len(shoes), len(classes)), np.float32)
            member[np.arange(len(shoes)), [index[v] for v in shoes[attr].astype(str)]] = 1.0
            attribute_probs[attr] = probs @ member
        return cls(attribute_probs, probs, probs.copy())


def shoe_values(shoes: pd.DataFrame, attribute: str) -> list[str]:
    """The values an attribute takes over the catalog's shoes, sorted."""
    return sorted(set(shoes[attribute].astype(str)))


@dataclass
class ZeroShotModel:
    """Class embeddings for one catalog, computed once and reused for every photo."""
    encoder: object
    shoes: pd.DataFrame
    classes: dict[str, list[str]] = field(default_factory=dict)
    class_embeddings: dict[str, np.ndarray] = field(default_factory=dict)
    options: ZeroShotOptions = field(default_factory=ZeroShotOptions)

    @classmethod
    def build(cls, encoder, shoes: pd.DataFrame, attributes: list[str] | None = None,
              options: ZeroShotOptions | None = None) -> "ZeroShotModel":
        options = options or ZeroShotOptions()
        prompts = options.prompt_set
        shoes = prompts.catalog(shoes)      # the seed's sets: the catalog's values word for word
        zs = cls(encoder, shoes.reset_index(drop=True), options=options)
        if attributes is None:
            attributes = [a for a in ATTRIBUTES if a in shoes and shoes[a].astype(str).str.len().gt(0).any()]
        for attr in attributes:
            zs.classes[attr] = attribute_classes(attr, shoes[attr], options.vocabulary, prompts.as_written)
            zs.class_embeddings[attr] = encoder.encode_ensemble(prompts.attribute_prompts(attr, zs.classes[attr]))
        names = zs.shoes["name"].tolist()
        zs.class_embeddings["name"] = encoder.encode_ensemble(prompts.name_prompts(names))
        if zs.filter_attributes:
            records = zs.shoes.to_dict("records")
            zs.class_embeddings["name+attributes"] = encoder.encode_ensemble(prompts.filtered_prompts(records))
        return zs

    @property
    def attributes(self) -> list[str]:
        return list(self.classes)

    @property
    def filter_attributes(self) -> list[str]:
        """The attributes step 2 filters on: the chosen ones the catalog has labels for."""
        return [a for a in self.options.filter_attributes if a in self.classes]

    def identify(self, image_embeddings: np.ndarray) -> Identification:
        x = np.asarray(image_embeddings, dtype=np.float32)
        scale = self.encoder.logit_scale
        probs = {a: softmax(scale * x @ self.class_embeddings[a].T) for a in self.attributes}
        name_scores = x @ self.class_embeddings["name"].T
        filtered_best = np.full(len(x), -1, dtype=int)
        if not self.filter_attributes:
            return Identification(probs, name_scores, name_scores.copy(), filtered_best)
        aware = x @ self.class_embeddings["name+attributes"].T
        combined = name_scores.copy()
        keep = self._matching_shoes(probs)
        for i in np.flatnonzero(keep.any(axis=1)):
            kept = np.flatnonzero(keep[i])
            # step 5: a kept shoe scores by the better of its two prompt families, so the top
            # answer is the better of step 3's best and step 4's best
            combined[i, kept] = np.maximum(aware[i, kept], name_scores[i, kept])
            filtered_best[i] = kept[int(np.argmax(aware[i, kept]))]
        return Identification(probs, name_scores, combined, filtered_best)

    def _shoe_class_index(self, attr: str) -> np.ndarray:
        """Each shoe's class number for attr (-1: not a class), worked out once per model."""
        memo = self.__dict__.setdefault("_class_index", {})
        if attr not in memo:
            index = {c: j for j, c in enumerate(self.classes[attr])}
            memo[attr] = self.shoes[attr].astype(str).map(lambda v: index.get(v, -1)).to_numpy(dtype=int)
        return memo[attr]

    def _matching_shoes(self, probs: dict[str, np.ndarray]) -> np.ndarray:
        """(N, S): the catalog shoes whose attributes match each photo's predicted ones (steps 1-2).

        A photo whose filter keeps nothing keeps nothing (the name match answers), or with
        fallback "relax", loses its least confident attribute until some shoe matches.
        """
        attrs = self.filter_attributes
        n = len(next(iter(probs.values())))
        shoe_idx = {a: self._shoe_class_index(a) for a in attrs}
        predicted = {a: probs[a].argmax(axis=1) for a in attrs}
        keep = np.ones((n, len(self.shoes)), dtype=bool)
        for a in attrs:
            keep &= shoe_idx[a][None, :] == predicted[a][:, None]
        if self.options.fallback != "relax":
            return keep
        for i in np.flatnonzero(~keep.any(axis=1)):
            order = sorted(attrs, key=lambda a: float(probs[a][i].max()), reverse=True)
            row = np.zeros(len(self.shoes), dtype=bool)
            while order and not row.any():
                order.pop()   # relax the least confident attribute
                row = np.ones(len(self.shoes), dtype=bool)
                for a in order:
                    row &= shoe_idx[a] == predicted[a][i]
            keep[i] = row if row.any() else True
        return keep


def oracle_correct(result: Identification, truth: np.ndarray) -> np.ndarray:
    """The seed's main.py scoring: a photo counts as correct when step 3 (the filtered shoes)
    or step 4 (every name) ranks its shoe first. An upper bound: no deployable rule knows which."""
    truth = np.asarray(truth)
    by_name = result.name_scores.argmax(axis=1) == truth
    if result.filtered_best is None:
        return by_name
    return by_name | (result.filtered_best == truth)


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k best classes per row, best first."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.take_along_axis(-scores, part, axis=1).argsort(axis=1)
    return np.take_along_axis(part, order, axis=1)
