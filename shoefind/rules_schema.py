"""The shape of every rules/*.yaml file, checked when it is read: a mistake is one line
naming the file, the key and the line (RulesError), never a traceback deep in a stage.

Files owned by fast-moving stages (prompts, retrieval prompts, change phrases) are checked
for the keys this code reads and may carry more; the others must hold only known keys.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, RootModel, ValidationError, field_validator, model_validator

from shoefind.errors import UserError

ATTRIBUTE_NAMES = ("brand", "hightop", "color", "sole")


class RulesError(UserError):
    """A rules file that cannot be used; str() names the file, the key and the line."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False)


class Open(BaseModel):
    model_config = ConfigDict(extra="allow", strict=False)


# --- vocabularies.yaml ------------------------------------------------------------------
class Vocabulary(Strict):
    values: list[str] = Field(min_length=1)
    aliases: dict[str, str] = Field(default_factory=dict)

    @field_validator("aliases", mode="before")
    @classmethod
    def _none_is_empty(cls, v):
        return {} if v is None else v

    @model_validator(mode="after")
    def _aliases_name_values(self):
        bad = [f"{a} -> {t}" for a, t in self.aliases.items() if t not in self.values]
        if bad:
            raise ValueError(f"alias target not among the values: {', '.join(bad)}")
        return self


class Vocabularies(RootModel[dict[Literal["brand", "hightop", "color", "sole"], Vocabulary]]):
    pass


# --- crawl_rules.yaml -------------------------------------------------------------------
class Automatic(Strict):
    min_file_bytes: int = Field(5120, ge=0)
    max_aspect_ratio: float = Field(3.0, ge=1.0)
    min_short_side: int = Field(200, ge=0)
    allowed_formats: list[str] = Field(default_factory=lambda: ["JPEG", "PNG", "WEBP"], min_length=1)
    reject_animated: bool = True
    loose_images: Literal["review", "reject"] = "review"


class Duplicates(Strict):
    phash_max_distance: int = Field(6, ge=0, le=64)
    dhash_max_distance: int = Field(10, ge=0, le=64)
    review_dhash_max_distance: int = Field(20, ge=0, le=64)
    color_max_difference: float = Field(0.5, ge=0.0, le=2.0)
    keep: Literal["largest_resolution"] = "largest_resolution"


class Semantic(Strict):
    prompts: str = "filter_prompts"
    reject_confidence: float = Field(0.8, ge=0.0, le=1.01)
    accept_confidence: float = Field(0.6, ge=0.0, le=1.01)
    without_model: Literal["accept", "review"] = "review"


class CrawlRulesFile(Strict):
    automatic: Automatic = Field(default_factory=Automatic)
    duplicates: Duplicates = Field(default_factory=Duplicates)
    semantic: Semantic = Field(default_factory=Semantic)
    human_rules: list[str] = Field(default_factory=list)


# --- filter_prompts.yaml ----------------------------------------------------------------
class FilterClass(Strict):
    good: bool = False
    prompts: list[str] = Field(min_length=1)


class FilterPromptsFile(Strict):
    classes: dict[str, FilterClass] = Field(min_length=2)

    @field_validator("classes", mode="after")
    @classmethod
    def _one_good(cls, classes):
        good = [c for c, spec in classes.items() if spec.good]
        if len(good) != 1:
            raise ValueError(f"exactly one class needs `good: true` (found {len(good)})")
        return classes


# --- crawl_shoes.yaml (a shoe list) -----------------------------------------------------
class ShoeEntry(Strict):
    name: str
    brand: str
    color: str
    hightop: str
    sole: str
    queries: list[str] = Field(default_factory=list)


class ShoeListFile(Strict):
    shoes: list[ShoeEntry]


# --- search_engines.yaml ----------------------------------------------------------------
class Engine(Strict):
    base_url: str
    search_url: str
    consent_buttons: list[str] = Field(default_factory=list)
    thumbnails: list[str] = Field(min_length=1)
    preview_image: list[str] = Field(min_length=1)
    source_link: list[str] = Field(default_factory=list)
    more_results: list[str] = Field(default_factory=list)
    thumbnail_url_patterns: list[str] = Field(default_factory=list)


class SearchEngines(RootModel[dict[str, Engine]]):
    pass


# --- change_benchmark.yaml --------------------------------------------------------------
class ChangeTemplate(Strict):
    id: str
    text: str
    keep: list[Literal["brand", "hightop", "color", "sole"]] = Field(default_factory=list)
    set: Literal["brand", "hightop", "color", "sole"] | None = None
    differ: Literal["brand", "hightop", "color", "sole"] | None = None


class ChangeBenchmarkFile(Strict):
    values_per_template: int = Field(2, ge=1)
    seed: int = 0
    templates: list[ChangeTemplate] = Field(min_length=1)


# --- files other stages own: the keys read here, more allowed -----------------------------
class AttributePrompts(Open):
    templates: list[str] = Field(default_factory=list)
    class_text: dict[str, str] = Field(default_factory=dict)


class PromptsFile(Open):
    attributes: dict[str, AttributePrompts] = Field(default_factory=dict)


class RetrievalPromptsFile(Open):
    query_templates: list[str] = Field(default_factory=list)
    negative_templates: list[str] = Field(default_factory=list)
    baseline_template: str = ""
    text_weight: float = Field(0.5, ge=0.0)
    negative_weight: float = Field(0.5, ge=0.0)


class ChangePhrasesFile(Open):
    attribute_words: dict[str, list[str]] = Field(default_factory=dict)
    shoe_words: list[str] = Field(default_factory=list)
    keep_patterns: list[str] = Field(default_factory=list)
    change_patterns: list[str] = Field(default_factory=list)
    negations: list[str] = Field(default_factory=list)
    negation_gap: list[str] = Field(default_factory=list)
    value_phrases: dict[str, dict[str, list[str]]] = Field(default_factory=dict)


class LitCaptionsFile(Strict):
    phrases: list[str] = Field(min_length=1)
    name_words: dict[str, str] = Field(default_factory=dict)
    random_word_captions: int = Field(2000, ge=0)

    @field_validator("phrases")
    @classmethod
    def _known_slots(cls, phrases):
        import string
        known = {"brand", "color", "hightop", "sole", "name"}
        for phrase in phrases:
            slots = {f for _, f, _, _ in string.Formatter().parse(phrase) if f}
            if not slots or slots - known:
                raise ValueError(f"phrase '{phrase}': slots must be some of {sorted(known)}")
        return phrases


SCHEMAS: dict[str, type[BaseModel]] = {
    "vocabularies": Vocabularies,
    "crawl_rules": CrawlRulesFile,
    "filter_prompts": FilterPromptsFile,
    "crawl_shoes": ShoeListFile,
    "search_engines": SearchEngines,
    "change_benchmark": ChangeBenchmarkFile,
    "prompts": PromptsFile,
    "retrieval_prompts": RetrievalPromptsFile,
    "change_phrases": ChangePhrasesFile,
    "lit_captions": LitCaptionsFile,
}


def schema_for(name: str) -> type[BaseModel] | None:
    """The schema of rules/<name>.yaml; variants (crawl_rules_X.yaml, prompts_X.yaml) share one."""
    if name in SCHEMAS:
        return SCHEMAS[name]
    for prefix in ("crawl_rules", "filter_prompts", "vocabularies", "prompts"):
        if name.startswith(prefix + "_"):
            return SCHEMAS[prefix]
    return None


def _line_of(node: yaml.Node | None, loc: tuple) -> int | None:
    """1-based line of the YAML node at loc (or of the nearest parent that exists)."""
    line = node.start_mark.line + 1 if node is not None else None
    for i, part in enumerate(loc):
        if isinstance(node, yaml.MappingNode):
            pair = next(((k, v) for k, v in node.value if k.value == str(part)), None)
            if pair is None:  # a missing key: the line of the mapping that lacks it
                return line
            line = pair[0].start_mark.line + 1   # the key's line: where a reader looks
            if loc[i + 1:i + 2] == ("[key]",):
                return line
            node = pair[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def parse_rules(path: Path, text: str, name: str | None = None) -> dict:
    """The checked content of a rules file; RulesError names file, key and line."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise RulesError(f"{path}{where}: not valid YAML ({problem})") from None
    data = {} if data is None else data
    schema = schema_for(name or path.stem)
    if schema is None:
        return data
    try:
        schema.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = tuple(first["loc"])
        key = ".".join(str(p) for p in loc if p != "[key]") or "(top level)"
        line = _line_of(root, loc)
        msg = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            msg = "unknown key (a typo?)"
        elif first["type"] == "missing":
            msg = "required key missing"
        more = f" (and {exc.error_count() - 1} more problems)" if exc.error_count() > 1 else ""
        raise RulesError(f"{path}{f' line {line}' if line else ''}: {key}: {msg}{more}") from None
    return data
