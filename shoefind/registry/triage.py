"""Triage with the dataset's current model: which new photos it accepts, rejects or leaves to a person.

`load_triage(data_dir, dataset)` is the current model as the filter's Triage (see
shoefind.curate.model_verdicts); None, with why, when the dataset has no trained model yet (then
everything goes to review, as before there was one). Per photo crawled for shoe S:
- a photo less like any training photo than the catalog's own photos are (the novelty threshold):
  rejected, no shoe of the catalog;
- the model says S with at least the calibrated margin and the nearest training photo is of S:
  accepted under S;
- it says another shoe T with that margin and gives S less probability than all but 2% of right photos
  get (the calibrated other_shoe level): rejected, with T as the suggested label;
- otherwise, or when S is a shoe the model has no training photo of, or without a calibrated
  margin: review, with the model's top guesses.
A photo the model was trained on is never judged by it: its answer there repeats the label it learned, no
evidence (a photo a model filed under one shoe and a later crawl lists for another came back so, and its
trainer confirmed every such one, wrongly, on the nike-silhouettes benchmark); it waits for a person.
A photo dropped into the inbox by hand has no S: it always goes to review, with the guesses. A photo the
search listed for several shoes S1, S2... (a query's "other shoes" are another query's own) is accepted
under the one the model says with the calibrated margin when its nearest training photo is of that shoe
too, rejected when it is no shoe of the catalog, and otherwise waits for a person (the filter's
listed_for_several), with the model's pick as the suggestion.

`retriage_waiting(queue, triage, listed_for)` asks a newly promoted model about the photos still waiting
for a person, so what an older model was unsure of can be settled without them.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from shoefind.curate.model_verdicts import (AUTO_ACCEPT, LISTED_FOR_SEVERAL, NO_INTENDED, NOT_IN_CATALOG, OTHER_SHOE,
                                            SETTLED_BY_MODEL, UNSURE, TriageVerdict, listed_text, settle_waiting)
from shoefind.registry.calibrate import Thresholds, margins, nearest_photo
from shoefind.registry.store import ModelRegistry

GUESSES = 3


@dataclass
class ModelTriage:
    """The current model, ready to answer photos (see the module docstring)."""
    model: str                          # registry model id
    encoder: object
    head: object
    folders: list[str]                  # the head's classes, as shoe folders
    trained: set[str]                   # folders the model has training photos of
    thresholds: Thresholds
    support: np.ndarray                 # the training photos' embeddings (the novelty check)
    cache: object                       # the embedding cache (new photos are encoded once)
    support_folders: list[str] | None = None   # each training photo's shoe folder (the neighbour check)
    trained_as: dict[str, str] = field(default_factory=dict)   # sha256 -> the folder it was trained under

    def judge(self, paths: Sequence[str], intended: Sequence[str | Sequence[str] | None]) \
            -> list[TriageVerdict | None]:
        x, ok, shas = self.embed(paths)
        out: list[TriageVerdict | None] = [None] * len(paths)
        if not ok:
            return out
        probs = self.head.predict_proba(x[ok])
        margin = margins(probs)
        novel, nearest = nearest_photo(x[ok], self.support)
        for row, i in enumerate(ok):
            neighbour = self.support_folders[nearest[row]] if self.support_folders and nearest[row] >= 0 else None
            shoes = [intended[i]] if intended[i] is None or isinstance(intended[i], str) else list(intended[i])
            if shas[i] in self.trained_as:
                out[i] = self._trained_on(probs[row], float(margin[row]), self.trained_as[shas[i]], shoes)
            elif len(shoes) > 1:
                out[i] = self._listed_verdict(probs[row], float(margin[row]), float(novel[row]), shoes, neighbour)
            else:
                out[i] = self._verdict(probs[row], float(margin[row]), float(novel[row]), shoes[0] if shoes else None,
                                       neighbour)
        return out

    def embed(self, paths: Sequence[str]) -> tuple[np.ndarray, list[int], list[str | None]]:
        """Embeddings of the photos that can be read (their rows), through the embedding cache, and every
        photo's sha256 (None: unreadable)."""
        from shoefind.features.embed import embed_images
        from shoefind.images import sha256_file
        shas = []
        for p in paths:
            try:
                shas.append(sha256_file(p))
            except OSError:
                shas.append(None)
        items = [(str(p), s) for p, s in zip(paths, shas) if s]
        if items:
            embed_images(self.encoder, self.cache, items)
        ok = [i for i, s in enumerate(shas) if s and s in self.cache]
        x = np.zeros((len(paths), self.support.shape[1]), np.float32)
        if ok:
            x[ok] = self.cache.matrix([shas[i] for i in ok])
        return x, ok, shas

    def _answer(self, p: np.ndarray, margin: float) -> tuple[str, bool, dict, str]:
        """(its top shoe, whether the margin is calibrated sure, the verdict's common fields, a sentence)."""
        order = np.argsort(-p)[:GUESSES]
        guesses = [{"shoe": self.folders[j], "probability": round(float(p[j]), 4)} for j in order]
        top = self.folders[order[0]]
        t = self.thresholds.margin
        common = {"guesses": guesses, "margin": round(margin, 4), "model": self.model}
        return top, t is not None and margin >= t, common, \
            f"model {self.model} says {top} ({p[order[0]]:.2f}, margin {margin:.2f})"

    def _novel(self, similarity: float) -> bool:
        return self.thresholds.novelty is not None and similarity < self.thresholds.novelty

    def _not_in_catalog(self, similarity: float, common: dict) -> TriageVerdict:
        return TriageVerdict("reject", NOT_IN_CATALOG, f"no shoe of the catalog: less like any training photo "
                             f"(similarity {similarity:.2f}) than the catalog's own photos are "
                             f"(>= {self.thresholds.novelty:.2f})", **common)

    def _trained_on(self, p: np.ndarray, margin: float, learned: str, shoes: list) -> TriageVerdict:
        """A photo this model was trained on: a person decides, with its guesses shown."""
        _, _, common, says = self._answer(p, margin)
        return TriageVerdict("review", LISTED_FOR_SEVERAL if len(shoes) > 1 else UNSURE,
                             f"{says}, but it was trained on this photo as {learned}: its answer is no evidence, "
                             "a person decides", **common)

    def _listed_verdict(self, p: np.ndarray, margin: float, similarity: float, shoes: list[str],
                        neighbour: str | None) -> TriageVerdict:
        """A photo listed for several shoes: accepted under the one the model is sure of, as any photo is."""
        top, sure, common, says = self._answer(p, margin)
        if self._novel(similarity):
            return self._not_in_catalog(similarity, common)
        listed = listed_text(shoes)
        if sure and top in shoes and top in self.trained and (neighbour == top or self.support_folders is None):
            return TriageVerdict("accept", AUTO_ACCEPT, f"{listed}; {says}, as its nearest training photo is "
                                 f"(margin >= {self.thresholds.margin:.2f} is right "
                                 f"{self.thresholds.target_precision:.0%} of the time)",
                                 shoe=top if top != shoes[0] else None, **common)
        why = "not sure enough" if not sure else (f"its nearest training photo is of {neighbour}" if top in shoes
                                                  else "a shoe it was not listed for")
        return TriageVerdict("review", LISTED_FOR_SEVERAL, f"{listed}; {says}: {why}, a person decides",
                             suggested=top if top in shoes[1:] else None, **common)

    def _verdict(self, p: np.ndarray, margin: float, similarity: float, intended: str | None,
                 neighbour: str | None = None) -> TriageVerdict:
        top, sure, common, says = self._answer(p, margin)
        t = self.thresholds.margin
        if intended is None:
            return TriageVerdict("review", NO_INTENDED, f"{says}; the photo was not crawled for a shoe, so a "
                                 "person files it", suggested=top if sure else None, **common)
        if intended not in self.trained:
            return TriageVerdict("review", UNSURE, f"{says}; it has no training photo of {intended} yet",
                                 suggested=top if sure and top != intended else None, **common)
        if self._novel(similarity):
            return self._not_in_catalog(similarity, common)
        if t is None:
            return TriageVerdict("review", UNSURE, f"{says}; the model is not calibrated to decide alone yet "
                                 "(too few labeled photos)", **common)
        checked = self.support_folders is not None
        if sure and top == intended and (neighbour == intended or not checked):
            return TriageVerdict("accept", AUTO_ACCEPT, f"{says}: the shoe it was crawled for, as its nearest "
                                 f"training photo is (margin >= {t:.2f} is right "
                                 f"{self.thresholds.target_precision:.0%} of the time)", **common)
        level = self.thresholds.other_shoe
        mine = float(p[self.folders.index(intended)]) if intended in self.folders else 0.0
        if sure and top != intended and level is not None and mine < level:
            return TriageVerdict("reject", OTHER_SHOE, f"{says}, not {intended} it was crawled for ({mine:.3f}, "
                                 f"below {level:.3f}, what all but 2% of right photos get); suggested label: {top}",
                                 suggested=top, **common)
        if sure and top == intended:
            return TriageVerdict("review", UNSURE, f"{says}, but its nearest training photo is of {neighbour}",
                                 suggested=None, **common)
        return TriageVerdict("review", UNSURE, f"{says}: not sure enough (margin below {t:.2f})" if not sure else
                             f"{says}, not {intended} it was crawled for, which it does not rule out "
                             f"({mine:.3f})", suggested=top if sure and top != intended else None, **common)


def load_triage(data_dir: str | os.PathLike, dataset: str | os.PathLike) -> tuple[ModelTriage | None, str]:
    """(the current model as a Triage, a note); (None, why) when the dataset has none yet."""
    from shoefind.registry.current import load_current
    registry = ModelRegistry(data_dir, dataset)
    if not registry.registered:
        return None, "no triage: the dataset has no trained model yet (the expansion run trains one)"
    loaded = load_current(registry)
    if loaded is None:
        return None, "no triage: no model of the dataset has been promoted yet"
    from shoefind.features.cache import EmbeddingCache
    folder = registry.model_dir(loaded.manifest["id"])
    with np.load(folder / "support.npz") as z:
        support = z["embeddings"].astype(np.float32)
    import pandas as pd
    trained_on = pd.read_csv(folder / "train.csv", dtype=str, keep_default_na=False)
    support_folders = trained_on["folder"].tolist() if len(trained_on) == len(support) else None
    trained_as = dict(zip(trained_on["sha256"], trained_on["folder"])) if "sha256" in trained_on else {}
    classes = list(loaded.head.classes)
    folder_of = dict(zip(loaded.table.shoes["shoe"], loaded.table.shoes["folder"]))
    triage = ModelTriage(loaded.manifest["id"], loaded.encoder, loaded.head, [folder_of.get(c, c) for c in classes],
                         set(loaded.manifest["data"]["per_shoe"]), Thresholds.from_dict(loaded.manifest["thresholds"]),
                         support, EmbeddingCache.for_encoder(data_dir, loaded.encoder), support_folders, trained_as)
    return triage, f"triage with model {triage.model}: {triage.thresholds.describe()}"


def retriage_waiting(queue, triage: ModelTriage, listed_for: dict[str, list[str]] | None = None) -> dict:
    """Ask the model about the photos waiting for a person that only a model's doubt kept there (and
    that this model has not answered yet), each about every shoe the search listed it for (listed_for:
    sha256 -> shoes, see intended_shoes); counts of what it settled."""
    waiting = [i for i in queue.items("review") if i.triaged_by != triage.model
               and (i.rule in SETTLED_BY_MODEL or i.rule in (UNSURE, NO_INTENDED, LISTED_FOR_SEVERAL))]
    return settle_waiting(queue, waiting, triage, listed_for)
