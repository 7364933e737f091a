"""LiT captions: what each training photo is called, from its labels through the prompt templates in rules/.

A caption carries a condition on labels ({"color": "Red", "hightop": "High"}, {"name": ...});
a photo fits it when its shoe has those labels. Captions come from the prompt set (attribute,
name and filtered-shoe prompts: exactly what zero-shot sends) and from rules/lit_captions.yaml's
phrases put into the prompt set's text-search query templates, over subsets of the labels and
in every spelling the vocabularies know. A photo whose label for a slot is unknown is neither a
match nor a non-match for captions about that slot (`match` = -1): partial labels teach what
they say and nothing more.

Classes-layout datasets (one folder per class, no attribute columns) get the labels their class
names state ("j1_high" -> top High), read like a change request (shoefind.scoring.change_words).
"""
from __future__ import annotations

import random
import re
import string
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pandas as pd

from shoefind.errors import UserError
from shoefind.prompts import PromptSet, load_prompt_set
from shoefind.settings import load_rules
from shoefind.vocab import ATTRIBUTES, vocabularies

# Bump when the captions made from the same labels change (a LiT model trained on them changes).
CAPTIONS_VERSION = 1

SLOTS = ATTRIBUTES + ("name",)
KINDS = ("attribute", "name", "filtered", "phrase")
SPELLINGS_PER_PHRASE = 2


class NoLabels(UserError):
    """A dataset without the labels LiT learns words from."""


@lru_cache(maxsize=1)
def caption_rules() -> dict:
    return load_rules("lit_captions")


@lru_cache(maxsize=1)
def _value_phrases() -> dict:
    return load_rules("change_phrases").get("value_phrases") or {}


def _slots(template: str) -> list[str]:
    return [f for _, f, _, _ in string.Formatter().parse(template) if f]


def readable_name(name: str) -> str:
    """A name with folder punctuation and rules' shorthand written out: 'j1_high' -> 'jordan 1 high'."""
    words = re.sub(r"[_\-]+", " ", str(name)).split()
    table = {k.lower(): v for k, v in (caption_rules().get("name_words") or {}).items()}
    return " ".join(table.get(w.lower(), w) for w in words)


def shoe_labels(shoes: pd.DataFrame) -> pd.DataFrame:
    """shoe, name and attribute labels per shoe; "" is unknown. Attributes no shoe has a column
    value for are read from the shoe names where they state one (classes layout)."""
    out = shoes[["shoe", "name"]].copy()
    for attr in ATTRIBUTES:
        out[attr] = shoes[attr].fillna("").astype(str) if attr in shoes else ""
    if not any(out[a].str.len().gt(0).any() for a in ATTRIBUTES):
        from shoefind.scoring.change_words import parse_change
        for i, name in enumerate(out["name"]):
            rules = parse_change(readable_name(name)).rules
            for attr in ATTRIBUTES:
                if len(rules[attr].want) == 1:
                    out.loc[out.index[i], attr] = rules[attr].want[0]
    return out


def labeled_attributes(labels: pd.DataFrame) -> list[str]:
    return [a for a in ATTRIBUTES if labels[a].str.len().gt(0).any()]


def require_labels(labels: pd.DataFrame, dataset: str) -> None:
    """LiT learns words from attribute labels: refuse a dataset that has none (in its folder
    names, catalog or class names), saying how to give them."""
    if not labeled_attributes(labels):
        raise NoLabels(
            f"{dataset} has no attribute labels (brand, colour, top or sole): LiT learns what words mean from "
            "them, so it cannot train here. Name the shoe folders Brand_Top_Color_Sole_Name (e.g. "
            "Nike_High_Red_Plain Sole_Air Jordan 1), give a catalog CSV with --catalog, or use class folder "
            "names that say the top (e.g. dunk_high); for name-only classes use --method fewshot.")


def spellings(attribute: str, value: str, prompts: PromptSet) -> list[str]:
    """How a value is written: the prompt set's class text first, then the other known spellings."""
    out = [prompts.class_text(attribute, value)]
    if attribute == "brand":
        return out
    if attribute == "hightop":
        out.append(str(value).lower())
    extra = _value_phrases().get(attribute) or {}
    out += [str(p) for p in extra.get(value, [])]
    vocab = vocabularies().get(attribute)
    if vocab is not None:
        out += [a.lower() for a, v in vocab.aliases if v == value]
    return list(dict.fromkeys(" ".join(s.split()) for s in out if str(s).strip()))


@dataclass
class Captions:
    """Captions and which photos fit them: `match[c, i]` is 1 (photo i fits caption c), 0 (it
    does not) or -1 (unknown: the photo lacks the label the caption is about). A row without a
    1 is a negative caption: it fits no training photo."""
    texts: list[str]
    match: np.ndarray                   # (captions, photos) int8
    kinds: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def negatives(self) -> int:
        return int((~(self.match == 1).any(axis=1)).sum())


class _Builder:
    def __init__(self, labels: pd.DataFrame, prompts: PromptSet):
        self.labels = labels.reset_index(drop=True)
        self.prompts = prompts
        self.conditions: dict[str, tuple[str, dict]] = {}   # text -> (kind, condition)

    def add(self, kind: str, text: str, condition: dict) -> None:
        text = self.prompts._finish(text)
        if text and text not in self.conditions:
            self.conditions[text] = (kind, dict(condition))

    def shoe_matches(self, condition: dict) -> np.ndarray:
        """(shoes,) 1 / 0 / -1 for one condition."""
        result = np.ones(len(self.labels), np.int8)
        for slot, value in condition.items():
            column = self.labels[slot].astype(str)
            known = column.str.len().gt(0).to_numpy()
            equal = (column == value).to_numpy()
            result = np.where(known & ~equal, 0, np.where(~known & (result != 0), -1, result)).astype(np.int8)
        return result


def build_captions(labels: pd.DataFrame, photo_shoe: np.ndarray, prompts: str | PromptSet | None = None,
                   seed: int = 0) -> Captions:
    """Captions for training photos; `labels` from `shoe_labels`, `photo_shoe` the row in `labels` of
    each photo's shoe. Only labels some training photo has are captioned positively; vocabulary
    values none has, and random words, make the negative captions."""
    prompts = load_prompt_set(prompts)
    rules = caption_rules()
    b = _Builder(labels, prompts)
    used = labels.iloc[np.unique(photo_shoe)]
    attrs = labeled_attributes(used)
    present = {a: sorted(v for v in set(used[a]) if v) for a in attrs}
    for a in attrs:                                   # the prompt set's attribute prompts
        for v, texts in zip(present[a], prompts.attribute_prompts(a, present[a])):
            for t in texts:
                b.add("attribute", t, {a: v})
    records = used.to_dict("records")
    names = list(dict.fromkeys(r["name"] for r in records))
    for n, texts in zip(names, prompts.name_prompts(names)):      # step 4's name prompts
        for t in texts:
            b.add("name", t, {"name": n})
    for r, texts in zip(records, prompts.filtered_prompts(records)):   # step 3's prompts
        for t in texts:
            b.add("filtered", t, {"name": r["name"]})
    query_templates = prompts.retrieval.get("query_templates") or ["{}"]
    rng = random.Random(seed)
    for phrase in rules["phrases"]:
        slots = list(dict.fromkeys(_slots(phrase)))
        if any(s != "name" and s not in attrs for s in slots):
            continue
        tuples = {tuple(r[s] for s in slots) for r in records if all(r[s] for s in slots)}
        for values in sorted(tuples):
            written = [[v, readable_name(v)] if s == "name" else spellings(s, v, prompts)
                       for s, v in zip(slots, values)]
            # the first spelling of every slot (the prompt set's class text), and SPELLINGS_PER_PHRASE
            # other combinations drawn at random: every spelling is seen, without a product of them all
            combos = {tuple(w[0] for w in written)}
            combos |= {tuple(rng.choice(w) for w in written) for _ in range(SPELLINGS_PER_PHRASE)}
            condition = dict(zip(slots, values))
            for combo in sorted(combos):
                filled = phrase.format(**dict(zip(slots, combo)))
                for template in query_templates:
                    b.add("phrase", template.format(filled), condition)
    _negatives(b, attrs, present, prompts, int(rules.get("random_word_captions", 0)), seed)
    texts = list(b.conditions)
    by_condition: dict[tuple, np.ndarray] = {}
    match = np.zeros((len(texts), len(photo_shoe)), np.int8)
    for i, t in enumerate(texts):
        kind, condition = b.conditions[t]
        if kind == "negative":
            continue
        key = tuple(sorted(condition.items()))
        if key not in by_condition:
            by_condition[key] = b.shoe_matches(condition)
        match[i] = by_condition[key][photo_shoe]
    return Captions(texts, match, [b.conditions[t][0] for t in texts])


def _negatives(b: _Builder, attrs: list[str], present: dict, prompts: PromptSet, n_random: int, seed: int) -> None:
    """Captions no training photo fits: absent vocabulary values, random words in a slot."""
    for a in attrs:
        absent = [v for v in vocabularies()[a].values if v not in present[a]]
        for texts in prompts.attribute_prompts(a, absent):
            for t in texts:
                b.add("negative", t, {})
    if n_random <= 0:
        return
    rng = random.Random(seed)
    words = _random_words()
    phrases = [p for p in caption_rules()["phrases"] if "name" not in _slots(p)
               and all(s in attrs for s in _slots(p))]
    templates = prompts.retrieval.get("query_templates") or ["{}"]
    known = {w.lower() for a in attrs for v in present[a] for w in spellings(a, v, prompts)}
    for _ in range(n_random if phrases else 0):
        phrase = rng.choice(phrases)
        slots = list(dict.fromkeys(_slots(phrase)))
        odd = rng.choice(slots)
        word = rng.choice(words)
        if word in known:
            continue
        filled = {s: rng.choice(spellings(s, rng.choice(present[s]), prompts)) for s in slots if s != odd}
        b.add("negative", rng.choice(templates).format(phrase.format(**filled, **{odd: word})), {})


@lru_cache(maxsize=1)
def _random_words() -> list[str]:
    """Whole words of CLIP's BPE vocabulary (letters only, common ones first)."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")        # clip imports pkg_resources
        from clip.simple_tokenizer import SimpleTokenizer
    vocab = list(SimpleTokenizer().encoder)
    return [w[:-4] for w in vocab[256:20000] if w.endswith("</w>") and w[:-4].isalpha() and len(w) > 6]
