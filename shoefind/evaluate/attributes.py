"""Zero-shot evaluation: top-1/top-5 per attribute and for shoe names, from cached embeddings."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from shoefind.features.cache import EmbeddingCache
from shoefind.features.table import FeatureTable
from shoefind.retrieve.zeroshot import ZeroShotModel, ZeroShotOptions, oracle_correct, top_k

FIVE_STEP = "name (5-step)"
FIVE_STEP_ORACLE = "name (5-step, seed's oracle rule)"
ORACLE_NOTE = (f"'{FIVE_STEP_ORACLE}' is an upper bound, scored as the seed's main.py scores it: a photo counts "
               f"when either the filtered-shoe prompts or the name prompts rank its shoe first; "
               f"'{FIVE_STEP}' is the rule you can deploy (the better of the two scores answers).")


@dataclass
class Evaluation:
    metrics: pd.DataFrame                 # task, classes, images, top1, top5
    predictions: pd.DataFrame             # one row per scored image
    confusion: dict[str, tuple[list[str], np.ndarray]] = field(default_factory=dict)
    skipped: list[dict] = field(default_factory=list)   # images without an embedding
    model_id: str = ""
    random_weights: bool = False
    options: dict = field(default_factory=dict)         # the zero-shot options used (prompts, ...)
    notes: list[str] = field(default_factory=list)      # what a reader needs to read the table


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


def accuracy_at(truth_idx: np.ndarray, ranked: np.ndarray, k: int) -> float:
    if len(truth_idx) == 0:
        return float("nan")
    return float((ranked[:, :k] == truth_idx[:, None]).any(axis=1).mean())


def confusion_matrix(truth: np.ndarray, pred: np.ndarray, n: int) -> np.ndarray:
    m = np.zeros((n, n), dtype=int)
    np.add.at(m, (truth, pred), 1)
    return m


def evaluate_zero_shot(encoder, table: FeatureTable, cache: EmbeddingCache,
                       options: ZeroShotOptions | None = None) -> Evaluation:
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

    rows, confusion = [], {}
    preds = labeled[["path", "shoe"]].copy()

    def score(task: str, classes: list[str], truth_labels: pd.Series, scores: np.ndarray):
        index = {c: i for i, c in enumerate(classes)}
        truth = truth_labels.map(index)
        ok = truth.notna().to_numpy()
        t = truth[ok].astype(int).to_numpy()
        ranked = top_k(scores[ok], 5) if ok.any() else np.zeros((0, 5), int)
        rows.append({"task": task, "classes": len(classes), "images": int(ok.sum()),
                     "top1": accuracy_at(t, ranked, 1), "top5": accuracy_at(t, ranked, 5)})
        best = np.array([classes[i] for i in scores.argmax(axis=1)]) if len(scores) else np.array([])
        preds[f"{task}_pred"] = best
        preds[f"{task}_score"] = scores.max(axis=1) if len(scores) else []
        if ok.any():
            confusion[task] = (classes, confusion_matrix(t, ranked[:, 0], len(classes)))

    if result is not None:
        for attr in zs.attributes:
            preds[f"{attr}_true"] = labeled[attr]
            score(attr, zs.classes[attr], labeled[attr].astype(str), result.attribute_probs[attr])
        shoe_ids = zs.shoes["shoe"].tolist()
        score("name", shoe_ids, labeled["shoe"], result.name_scores)
        notes = []
        if zs.attributes:
            score(FIVE_STEP, shoe_ids, labeled["shoe"], result.combined_scores)
        if zs.filter_attributes:
            truth = labeled["shoe"].map({s: i for i, s in enumerate(shoe_ids)})
            ok = truth.notna().to_numpy()
            correct = oracle_correct(result, truth.fillna(-1).astype(int).to_numpy())[ok]
            # top-5 has no meaning here: the oracle picks between two top-1 answers
            rows.append({"task": FIVE_STEP_ORACLE, "classes": len(shoe_ids), "images": int(ok.sum()),
                         "top1": float(correct.mean()) if ok.any() else float("nan"), "top5": float("nan")})
            notes.append(ORACLE_NOTE)
    else:
        notes = []
    metrics = pd.DataFrame(rows, columns=["task", "classes", "images", "top1", "top5"])
    if published := options.prompt_set.published:
        metrics, note = with_published(metrics, published, options.prompts)
        notes.append(note)
    return Evaluation(metrics, preds, confusion, skipped, encoder.model_id, getattr(encoder, "is_random", False),
                      options.describe(), notes)
