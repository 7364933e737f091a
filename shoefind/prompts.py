"""Prompt sets from rules/prompts_NAME.yaml: every text CLIP compares photos with.

A set holds the templates of each task: attributes (step 1 of the 5-step method), names
(step 4), filtered shoes (step 3), CoOp's class texts, and text search / change in words.
`shoefind` is the default; `seed` is the seed project's latest templates verbatim and `seed@96.3`
those of the seed commit that scored its published 96.3% (each file records its source commit).
A set may name a `base` set that supplies what it lacks.

`catalog_values: as-written` (the seed's sets) reads the catalog word for word: the attribute
values as the catalog writes them ("Newbalance", "Grey", "Whte"), not as shoefind's vocabulary
reads them ("New Balance", "Gray", "White"); see `PromptSet.catalog`.
"""
from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from functools import lru_cache

from shoefind.errors import UserError
from shoefind.settings import load_rules, rules_dir

DEFAULT_PROMPTS = "shoefind"
SET_PREFIX = "prompts_"
SECTIONS = ("attributes", "name", "filtered", "coop", "retrieval")
FILTER_SLOTS = ("brand", "color", "hightop", "sole")
CATALOG_VALUES = ("cleaned", "as-written")


def prompt_set_names() -> list[str]:
    return sorted(p.stem.removeprefix(SET_PREFIX) for p in rules_dir().glob(f"{SET_PREFIX}*.yaml"))


def _slots(template: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(template) if f}


def _tidy(text: str) -> str:
    """'a orange shoe' -> 'an orange shoe'; a word said twice in a row ('the Dunk Shoe shoe') once."""
    text = re.sub(r"\b([Aa]) (?=[aeiouAEIOU])", r"\1n ", text)
    return re.sub(r"\b([\w'-]+)( \1\b)+", r"\1", text, flags=re.IGNORECASE)


@dataclass(frozen=True)
class PromptSet:
    name: str
    description: str
    sections: dict                      # section -> its content (base set's where this set lacks it)
    sources: dict = field(default_factory=dict)   # section -> the set it came from
    verbatim: bool = False              # class texts are the values as written
    tidy: bool = False                  # fix articles and doubled words (not for a verbatim set)
    as_written: bool = False            # the catalog's values word for word (see `catalog`)
    source: dict = field(default_factory=dict)    # where verbatim templates come from (repository, commit)
    published: dict = field(default_factory=dict)  # {set, tasks: {report row: top-1}}: the seed's own figures

    def catalog(self, shoes):
        """The shoes frame whose attribute values this set's prompts receive, classify and filter on:
        as the catalog writes them for a word-for-word set, else as shoefind reads them."""
        from shoefind.vocab import as_written
        return as_written(shoes) if self.as_written else shoes

    def _finish(self, text: str) -> str:
        text = " ".join(text.split())
        return _tidy(text) if self.tidy else text

    def class_text(self, attribute: str, value: str) -> str:
        """How a value is written into prompts ('High' -> 'high-top'; the seed: as written)."""
        value = str(value)
        if self.verbatim:
            return value
        spec = self.sections["attributes"].get(attribute) or {}
        return (spec.get("class_text") or {}).get(value, value if attribute == "brand" else value.lower())

    def attribute_templates(self, attribute: str) -> list[str]:
        return list(self.sections["attributes"][attribute]["templates"])

    def attribute_prompts(self, attribute: str, values: list[str]) -> list[list[str]]:
        """One prompt list per class value of an attribute."""
        templates = self.attribute_templates(attribute)
        return [[self._finish(t.format(self.class_text(attribute, v))) for t in templates] for v in values]

    def name_prompts(self, names: list[str]) -> list[list[str]]:
        templates = self.sections["name"]["templates"]
        return [[self._finish(t.format(name=n)) for t in templates] for n in names]

    def filtered_prompts(self, shoes: list[dict]) -> list[list[str]]:
        """Step 3: prompts naming each shoe with its attributes. A template is left out for a shoe
        that lacks one of its slots; a shoe left with none gets its name prompts."""
        templates = self.sections["filtered"]["templates"]
        out = []
        for shoe in shoes:
            fields = {"name": str(shoe["name"]), "full_name": full_name(shoe)}
            fields |= {a: self.class_text(a, shoe[a]) for a in FILTER_SLOTS if str(shoe.get(a) or "").strip()}
            texts = [self._finish(t.format(**fields)) for t in templates if _slots(t) <= set(fields)]
            out.append(texts or self.name_prompts([shoe["name"]])[0])
        return out

    def coop_template(self, task: str) -> str:
        return (self.sections.get("coop") or {}).get(task, "{}.")

    def coop_texts(self, task: str, classes: list[str]) -> list[str]:
        """What follows CoOp's learned context, per class: the task's coop template filled with
        the shoe name as written, or the attribute value's class text."""
        template = self.coop_template(task)
        texts = [str(c) if task == "name" else self.class_text(task, c) for c in classes]
        return [self._finish(template.format(t)) for t in texts]

    @property
    def retrieval(self) -> dict:
        return self.sections["retrieval"]


def full_name(shoe: dict) -> str:
    """The shoe's name with its brand in front, unless the name already starts with the brand."""
    name, brand = str(shoe["name"]).strip(), str(shoe.get("brand") or "").strip()
    if not brand or name.lower().startswith(brand.lower()):
        return name
    return f"{brand} {name}"


@lru_cache(maxsize=None)
def _load(name: str) -> PromptSet:
    known = prompt_set_names()
    if name not in known:
        raise UserError(f"unknown prompt set '{name}' (known: {', '.join(known)}; they are rules/{SET_PREFIX}NAME.yaml)")
    raw = load_rules(f"{SET_PREFIX}{name}")
    sections = {s: raw[s] for s in SECTIONS if s in raw}
    sources = {s: name for s in sections}
    base_name = raw.get("base")
    if base_name:
        if base_name == name:
            raise UserError(f"prompt set '{name}' names itself as its base")
        base = _load(base_name)
        for s in SECTIONS:
            if s not in sections:
                sections[s], sources[s] = base.sections[s], base.sources[s]
            elif isinstance(sections[s], dict) and isinstance(base.sections.get(s), dict):
                # a section is completed key by key (e.g. the seed has no negative templates)
                merged = dict(base.sections[s]) | sections[s]
                if s == "attributes":   # an attribute's spec is taken whole, from one set
                    merged = {a: sections[s].get(a, base.sections[s].get(a)) for a in base.sections[s] | sections[s]}
                if set(base.sections[s]) - set(sections[s]):
                    sources[s] = f"{name} (the rest from {base_name})"
                sections[s] = merged
    missing = [s for s in SECTIONS if s not in sections]
    if missing:
        raise UserError(f"prompt set '{name}' lacks {', '.join(missing)} (rules/{SET_PREFIX}{name}.yaml)")
    values = raw.get("catalog_values", "cleaned")
    if values not in CATALOG_VALUES:
        raise UserError(f"prompt set '{name}': catalog_values '{values}' is not one of {', '.join(CATALOG_VALUES)} "
                        f"(rules/{SET_PREFIX}{name}.yaml)")
    return PromptSet(name, str(raw.get("description", "")), sections, sources,
                     verbatim=raw.get("class_text") == "verbatim", tidy=bool(raw.get("tidy")),
                     as_written=values == "as-written", source=dict(raw.get("source") or {}),
                     published=dict(raw.get("published") or {}))


def load_prompt_set(name: str | PromptSet | None = None) -> PromptSet:
    """The named prompt set (default: shoefind); a PromptSet passes through."""
    if isinstance(name, PromptSet):
        return name
    return _load(name or DEFAULT_PROMPTS)


# The default set's texts, for callers that do not choose a set.
def class_text(attribute: str, value: str, prompts: str | PromptSet | None = None) -> str:
    return load_prompt_set(prompts).class_text(attribute, value)


def attribute_prompts(attribute: str, values: list[str], prompts: str | PromptSet | None = None) -> list[list[str]]:
    return load_prompt_set(prompts).attribute_prompts(attribute, values)


def name_prompts(names: list[str], prompts: str | PromptSet | None = None) -> list[list[str]]:
    return load_prompt_set(prompts).name_prompts(names)


def attribute_aware_prompts(shoes: list[dict], prompts: str | PromptSet | None = None) -> list[list[str]]:
    return load_prompt_set(prompts).filtered_prompts(shoes)
