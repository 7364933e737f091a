"""The composed-retrieval benchmark: Recall@1/5/10 and MRR of each change method on a labeled catalog.

Every catalog photo is a query, as if unseen: its attributes and name come from
identification, not from its labels (only the query shoe itself is excluded from the
ranking, using its label). Changes come from rules/change_benchmark.yaml; the relevant set
of a (photo, change) is every other catalog shoe that satisfies the change.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from shoefind.features.catalog import Catalog
from shoefind.scoring.change_words import parse_change
from shoefind.settings import load_rules
from shoefind.scoring.zeroshot import ZeroShotOptions
from shoefind.retrieve.identify import classifier_for, describe_identification, reference_attributes
from shoefind.prompts import class_text
from shoefind.retrieve.compose import BASELINES, METHODS, ChangeQuery, retrieve

ALL_METHODS = METHODS + BASELINES
KS = (1, 5, 10)


@dataclass
class ChangeCase:
    photo: int                 # catalog photo index of the query
    template: str
    text: str
    relevant: np.ndarray       # catalog shoe indices


@dataclass
class ChangeBenchmark:
    metrics: pd.DataFrame          # method, queries, recall@1, recall@5, recall@10, mrr
    per_template: pd.DataFrame     # the same per (template, method)
    queries: pd.DataFrame          # one row per case: photo, template, text, relevant, rank_<method>
    model_id: str = ""
    random_weights: bool = False
    notes: list[str] = field(default_factory=list)


def _render(template: str, target: dict[str, str], query_shoe: dict) -> str:
    values = {a: class_text(a, v) for a, v in target.items()}
    values |= {f"query_{a}": class_text(a, v) for a, v in query_shoe.items() if a in ("brand", "color", "hightop", "sole")}
    return template.format(**values)


def make_cases(catalog: Catalog, rules: dict | None = None) -> list[ChangeCase]:
    """Every (query photo, templated change) with a non-empty relevant set."""
    rules = rules or load_rules("change_benchmark")
    rng = random.Random(rules.get("seed", 0))
    per_template = int(rules.get("values_per_template", 2))
    shoes = catalog.shoes.astype(str)
    labeled = set(catalog.attributes)
    cases = []
    for photo in range(len(catalog)):
        q = int(catalog.photo_shoe[photo])
        query_shoe = shoes.iloc[q].to_dict()
        for t in rules["templates"]:
            needed = set(t.get("keep", [])) | {t.get("set"), t.get("differ")} - {None}
            if not needed <= labeled:
                continue
            base = np.ones(len(shoes), dtype=bool)
            base[q] = False
            for a in t.get("keep", []):
                base &= (shoes[a] == query_shoe[a]).to_numpy()
            if t.get("differ"):
                base &= (shoes[t["differ"]] != query_shoe[t["differ"]]).to_numpy()
            targets = [{}]
            if t.get("set"):
                attr = t["set"]
                values = sorted(v for v in set(shoes.loc[base, attr]) if v and v != query_shoe[attr])
                targets = [{attr: v} for v in rng.sample(values, min(per_template, len(values)))]
            for target in targets:
                relevant = base.copy()
                for a, v in target.items():
                    relevant &= (shoes[a] == v).to_numpy()
                if relevant.any():
                    cases.append(ChangeCase(photo, t["id"], _render(t["text"], target, query_shoe),
                                            np.flatnonzero(relevant)))
    return cases


def first_relevant_rank(ranking: np.ndarray, relevant: np.ndarray) -> float:
    """1-based rank of the first relevant shoe in the ranking (inf when none is ranked)."""
    hits = np.flatnonzero(np.isin(ranking, relevant))
    return float(hits[0] + 1) if len(hits) else float("inf")


def summarise(ranks: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Recall@k and MRR from a long table of first-relevant ranks (column `rank`)."""
    g = ranks.groupby(by, sort=False)["rank"]
    out = g.size().rename("queries").to_frame()
    for k in KS:
        out[f"recall@{k}"] = g.apply(lambda r, k=k: float((r <= k).mean()))
    out["mrr"] = g.apply(lambda r: float((1.0 / r).mean()))
    return out.reset_index()


def evaluate_change(encoder, catalog: Catalog, method: str = "auto", text_weight: float | None = None,
                    rules: dict | None = None, progress=None, options: ZeroShotOptions | None = None
                    ) -> ChangeBenchmark:
    cases = make_cases(catalog, rules)
    options = options or ZeroShotOptions()
    name, classifier = classifier_for(encoder, catalog, method, options)
    ident = classifier.identify(catalog.embeddings)
    answers: dict[int, dict] = {}
    rows = []
    for case in cases:
        if case.photo not in answers:
            answers[case.photo] = describe_identification(catalog, classifier, ident, case.photo,
                                                          catalog.embeddings[case.photo], k=1, neighbours=0,
                                                          logit_scale=encoder.logit_scale)
        answer = answers[case.photo]
        query = ChangeQuery(photo=catalog.embeddings[case.photo], change=parse_change(case.text),
                            reference=reference_attributes(answer, catalog, case.photo, use_catalog_labels=False),
                            identified_name=answer["shoe"]["name"],
                            exclude_shoe=int(catalog.photo_shoe[case.photo]))
        row = {"photo": catalog.photos["path"].iat[case.photo], "template": case.template, "text": case.text,
               "relevant": len(case.relevant)}
        for m in ALL_METHODS:
            row[f"rank_{m}"] = first_relevant_rank(retrieve(encoder, catalog, query, m, text_weight,
                                                            prompts=options.prompts).ranking, case.relevant)
        rows.append(row)
        if progress:
            progress(1)
    queries = pd.DataFrame(rows, columns=["photo", "template", "text", "relevant"] + [f"rank_{m}" for m in ALL_METHODS])
    long = queries.melt(id_vars=["template"], value_vars=[f"rank_{m}" for m in ALL_METHODS],
                        var_name="method", value_name="rank")
    long["method"] = long["method"].str.removeprefix("rank_")
    columns = ["method", "queries"] + [f"recall@{k}" for k in KS] + ["mrr"]
    metrics = summarise(long, ["method"])[columns] if len(long) else pd.DataFrame(columns=columns)
    per_template = summarise(long, ["template", "method"]) if len(long) else pd.DataFrame(columns=["template"] + columns)
    notes = [f"identification: {name}; the query's attributes are predicted, not read from its label",
             f"prompts: {options.prompts}",
             f"{len(cases)} queries from {len(catalog)} photos and {len(catalog.shoes)} shoes"]
    if not cases:
        notes.append("no query had a relevant shoe: the catalog needs shoes that share some attributes "
                     "and differ in others (labeled brand/colour/top)")
    return ChangeBenchmark(metrics, per_template, queries, encoder.model_id,
                           bool(getattr(encoder, "is_random", False)), notes)
