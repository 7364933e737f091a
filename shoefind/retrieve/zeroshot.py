"""Zero-shot CLIP: attribute classification and the 5-step shoe identification.

The 5-step method:
 1. classify the attributes (brand, colour, top, sole) of the photo;
 2. keep the catalog shoes whose attributes match (relaxing the least confident
    attribute until some shoe is left);
 3. score those shoes with attribute-aware prompts;
 4. score every shoe with name prompts;
 5. keep the higher-scoring answer.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from shoefind.prompts import attribute_aware_prompts, attribute_prompts, name_prompts
from shoefind.vocab import ATTRIBUTES, vocabularies


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def attribute_classes(attribute: str, labels: pd.Series | None = None) -> list[str]:
    """The vocabulary's values, plus any label the catalog uses that the vocabulary lacks."""
    values = list(vocabularies()[attribute].values)
    if labels is not None:
        values += sorted(v for v in set(labels.dropna().astype(str)) if v and v not in values)
    return values


@dataclass
class Identification:
    """Per image: attribute probabilities and shoe rankings (indices into the catalog)."""
    attribute_probs: dict[str, np.ndarray]          # attr -> (N, C)
    name_scores: np.ndarray                         # (N, S) cosine, name prompts alone
    combined_scores: np.ndarray                     # (N, S) the 5-step method's scores


@dataclass
class ZeroShotModel:
    """Class embeddings for one catalog, computed once and reused for every photo."""
    encoder: object
    shoes: pd.DataFrame
    classes: dict[str, list[str]] = field(default_factory=dict)
    class_embeddings: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def build(cls, encoder, shoes: pd.DataFrame, attributes: list[str] | None = None) -> "ZeroShotModel":
        zs = cls(encoder, shoes.reset_index(drop=True))
        if attributes is None:
            attributes = [a for a in ATTRIBUTES if a in shoes and shoes[a].astype(str).str.len().gt(0).any()]
        for attr in attributes:
            zs.classes[attr] = attribute_classes(attr, shoes[attr])
            zs.class_embeddings[attr] = encoder.encode_ensemble(attribute_prompts(attr, zs.classes[attr]))
        names = zs.shoes["name"].tolist()
        zs.class_embeddings["name"] = encoder.encode_ensemble(name_prompts(names))
        if attributes:
            records = zs.shoes.to_dict("records")
            zs.class_embeddings["name+attributes"] = encoder.encode_ensemble(attribute_aware_prompts(records))
        return zs

    @property
    def attributes(self) -> list[str]:
        return list(self.classes)

    def identify(self, image_embeddings: np.ndarray) -> Identification:
        x = np.asarray(image_embeddings, dtype=np.float32)
        scale = self.encoder.logit_scale
        probs = {a: softmax(scale * x @ self.class_embeddings[a].T) for a in self.attributes}
        name_scores = x @ self.class_embeddings["name"].T
        if not self.attributes:
            return Identification(probs, name_scores, name_scores.copy())
        aware = x @ self.class_embeddings["name+attributes"].T
        combined = name_scores.copy()
        for i in range(len(x)):
            keep = self._matching_shoes(probs, i)
            # step 5: a shoe scores by the better of its two prompt families
            combined[i, keep] = np.maximum(aware[i, keep], name_scores[i, keep])
        return Identification(probs, name_scores, combined)

    def _matching_shoes(self, probs: dict[str, np.ndarray], i: int) -> np.ndarray:
        """Indices of catalog shoes that match the predicted attributes (steps 1-2)."""
        predicted = {a: self.classes[a][int(probs[a][i].argmax())] for a in self.attributes}
        confidence = {a: float(probs[a][i].max()) for a in self.attributes}
        order = sorted(self.attributes, key=lambda a: confidence[a], reverse=True)
        while order:
            mask = np.ones(len(self.shoes), dtype=bool)
            for a in order:
                mask &= (self.shoes[a].astype(str) == predicted[a]).to_numpy()
            if mask.any():
                return np.flatnonzero(mask)
            order.pop()  # relax the least confident attribute
        return np.arange(len(self.shoes))


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k best classes per row, best first."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.take_along_axis(-scores, part, axis=1).argsort(axis=1)
    return np.take_along_axis(part, order, axis=1)
