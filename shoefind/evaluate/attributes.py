"""Zero-shot evaluation: top-1/top-5 per attribute and for shoe names, from cached embeddings."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from shoefind.features.cache import EmbeddingCache
from shoefind.evaluate.trained_on import ALL, HELD_OUT, SPLIT_ORDER, TRAINED_ON
from shoefind.features.table import FeatureTable
from shoefind.scoring.metrics import accuracy_at, confusion_matrix
from shoefind.scoring.zeroshot import ZeroShotModel, ZeroShotOptions, oracle_correct, top_k

FIVE_STEP = "name (5-step)"
FIVE_STEP_ORACLE = "name (5-step, seed's oracle rule)"
ORACLE_NOTE = (f"'{FIVE_STEP_ORACLE}' is an upper bound, scored as the seed's main.py scores it: a photo counts "
               f"when either the filtered-shoe prompts or the name prompts rank its shoe first; "
               f"'{FIVE_STEP}' is the rule you can deploy (the better of the two scores answers).")


@dataclass
class Evaluation:
    metrics: pd.DataFrame                 # task, split, classes, images, top1, top5
    predictions: pd.DataFrame             # one row per scored image (with its split)
    # task -> (classes, confusion matrix) of the photos the report leads with: the held-out ones of a
    # trained model, else every photo
    confusion: dict[str, tuple[list[str], np.ndarray]] = field(default_factory=dict)
    skipped: list[dict] = field(default_factory=list)   # images without an embedding
    model_id: str = ""
    random_weights: bool = False
    options: dict = field(default_factory=dict)         # the zero-shot options used (prompts, ...)
    notes: list[str] = field(default_factory=list)      # what a reader needs to read the table
    # split -> task -> (classes, matrix), for every split scored (held-out / trained-on, or all)
    confusion_by_split: dict[str, dict[str, tuple[list[str], np.ndarray]]] = field(default_factory=dict)

    @property
    def splits(self) -> list[str]:
        """The splits scored, in report order (["all"] for a model that trained on none of these photos)."""
        present = set(self.metrics["split"]) if "split" in self.metrics else {ALL}
        return [s for s in SPLIT_ORDER if s in present]

    @property
    def lead_split(self) -> str:
        """The split whose figures a reader should trust: held-out photos when a model trained on some."""
        return self.splits[0] if self.splits else ALL

    def split_metrics(self, split: str) -> pd.DataFrame:
        return self.metrics[self.metrics["split"] == split].reset_index(drop=True)


def with_published(metrics: pd.DataFrame, published: dict, prompts: str) -> tuple[pd.DataFrame, str]:
    """The metrics with the seed's own figure (`seed_top1`) beside the rows it published with these
    templates and the same rule, and the note that says what they were measured on. The deployable
    'name (5-step)' row gets none: the seed published only its oracle rule's figure."""
    figures = dict(published.get("tasks") or {})
    out = metrics.assign(seed_top1=[figures.get(t, float("nan")) for t in metrics["task"]])
    note = (f"'seed' column: the seed's published top-1 with the {prompts} templates, on {published.get('set', '?')}, "
            f"beside the row scored by the same rule only (its 5-step figure is the oracle rule's; it published "
            f"no deployable one); it compares with this run only on the seed's own photos.")
    return out, note


def evaluate_zero_shot(encoder, table: FeatureTable, cache: EmbeddingCache,
                       options: ZeroShotOptions | None = None, trained: frozenset[str] | None = None) -> Evaluation:
    """Zero-shot scores of every labeled, embedded photo.

    trained: the hashes of the photos the model trained on (shoefind.evaluate.trained_on); given,
    those photos are scored apart from the rest (split trained-on / held-out), since a model's score
    on photos it learned says nothing about photos it has not seen."""
    options = options or ZeroShotOptions()
    if options.prompt_set.as_written:   # the seed's sets classify and score the catalog's own words
        table = table.in_catalog_words()
    labeled = table.labeled_images()
    have = labeled["sha256"].map(lambda s: s in cache)
    skipped = labeled.loc[~have, ["path", "shoe"]].to_dict("records")
    labeled = labeled.loc[have].reset_index(drop=True)
    zs = ZeroShotModel.build(encoder, table.shoes, attributes=table.attributes, options=options)
    x = cache.matrix(labeled["sha256"].tolist()) if len(labeled) else np.zeros((0, encoder.embed_dim), np.float32)
    result = zs.identify(x) if len(labeled) else None
    if trained is None:
        group = np.array([ALL] * len(labeled), dtype=object)
    else:
        group = np.array([TRAINED_ON if s in trained else HELD_OUT for s in labeled["sha256"]], dtype=object)
    splits = [s for s in SPLIT_ORDER if (group == s).any()] or [ALL]

    rows, by_split = [], {s: {} for s in splits}
    preds = labeled[["path", "sha256", "shoe"]].copy()
    preds["split"] = group

    def add_row(task: str, split: str, classes: int, images: int, top1: float, top5: float):
        rows.append({"task": task, "split": split, "classes": classes, "images": images, "top1": top1, "top5": top5})

    def score(task: str, classes: list[str], truth_labels: pd.Series, scores: np.ndarray):
        index = {c: i for i, c in enumerate(classes)}
        truth = truth_labels.map(index)
        ok = truth.notna().to_numpy()
        t_all = truth.fillna(-1).astype(int).to_numpy()
        ranked = top_k(scores, 5) if len(scores) else np.zeros((0, 5), int)
        for split in splits:
            keep = ok & (group == split)
            t = t_all[keep]
            add_row(task, split, len(classes), int(keep.sum()), accuracy_at(t, ranked[keep], 1),
                    accuracy_at(t, ranked[keep], 5))
            if keep.any():
                by_split[split][task] = (classes, confusion_matrix(t, ranked[keep][:, 0], len(classes)))
        best = np.array([classes[i] for i in scores.argmax(axis=1)]) if len(scores) else np.array([])
        preds[f"{task}_pred"] = best
        preds[f"{task}_score"] = scores.max(axis=1) if len(scores) else []

    notes = []
    if result is not None:
        for attr in zs.attributes:
            preds[f"{attr}_true"] = labeled[attr]
            score(attr, zs.classes[attr], labeled[attr].astype(str), result.attribute_probs[attr])
        shoe_ids = zs.shoes["shoe"].tolist()
        score("name", shoe_ids, labeled["shoe"], result.name_scores)
        if zs.attributes:
            score(FIVE_STEP, shoe_ids, labeled["shoe"], result.combined_scores)
        if zs.filter_attributes:
            truth = labeled["shoe"].map({s: i for i, s in enumerate(shoe_ids)})
            ok = truth.notna().to_numpy()
            correct = oracle_correct(result, truth.fillna(-1).astype(int).to_numpy())
            for split in splits:
                keep = ok & (group == split)
                # top-5 has no meaning here: the oracle picks between two top-1 answers
                add_row(FIVE_STEP_ORACLE, split, len(shoe_ids), int(keep.sum()),
                        float(correct[keep].mean()) if keep.any() else float("nan"), float("nan"))
            notes.append(ORACLE_NOTE)
    metrics = pd.DataFrame(rows, columns=["task", "split", "classes", "images", "top1", "top5"])
    # one split after the other, the held-out photos first (the figures to read)
    metrics = metrics.sort_values("split", key=lambda c: c.map(SPLIT_ORDER.index), kind="stable").reset_index(drop=True)
    if published := options.prompt_set.published:
        metrics, note = with_published(metrics, published, options.prompts)
        notes.append(note)
    return Evaluation(metrics, preds, by_split.get(splits[0], {}), skipped, encoder.model_id,
                      getattr(encoder, "is_random", False), options.describe(), notes, by_split)
