"""Prompt ensembles from rules/prompts.yaml: the texts CLIP compares photos with."""
from __future__ import annotations

from functools import lru_cache

from shoefind.settings import load_rules


@lru_cache(maxsize=1)
def prompt_rules() -> dict:
    return load_rules("prompts")


def class_text(attribute: str, value: str) -> str:
    spec = prompt_rules()["attributes"][attribute]
    return (spec.get("class_text") or {}).get(value, value.lower() if attribute != "brand" else value)


def attribute_prompts(attribute: str, values: list[str]) -> list[list[str]]:
    """One prompt list per class value of an attribute."""
    templates = prompt_rules()["attributes"][attribute]["templates"]
    return [[t.format(class_text(attribute, v)) for t in templates] for v in values]


def name_prompts(names: list[str]) -> list[list[str]]:
    templates = prompt_rules()["name"]["templates"]
    return [[t.format(name=n) for t in templates] for n in names]


def attribute_aware_prompts(shoes: list[dict]) -> list[list[str]]:
    """Prompts that name the shoe together with its catalog attributes."""
    templates = prompt_rules()["name"]["attribute_templates"]
    out = []
    for s in shoes:
        fields = {k: (class_text(k, s[k]) if s.get(k) and k in ("color", "hightop", "sole") else s.get(k, ""))
                  for k in ("brand", "color", "hightop", "sole")}
        out.append([" ".join(t.format(name=s["name"], **fields).split()) for t in templates])
    return out
