"""Attribute vocabularies from rules/vocabularies.yaml, and reading a value against them."""
from __future__ import annotations

import difflib
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from shoefind.settings import load_rules

ATTRIBUTES = ("brand", "color", "hightop", "sole")


def _norm(text: str) -> str:
    # NFC first: a name typed on one system (NFC) must match a folder made on macOS (NFD)
    return re.sub(r"[\s_\-]+", " ", unicodedata.normalize("NFC", str(text))).strip().lower()


@dataclass(frozen=True)
class Reading:
    """How a raw value was read: `value` is what shoefind uses; `problem` is None when clean."""
    value: str
    problem: str | None = None   # "unknown" | "near-miss"
    suggestion: str | None = None


@dataclass(frozen=True)
class Vocabulary:
    attribute: str
    values: tuple[str, ...]
    aliases: tuple[tuple[str, str], ...] = ()

    def read(self, raw: str) -> Reading:
        key = _norm(raw)
        lookup = {_norm(v): v for v in self.values}
        lookup.update({_norm(a): v for a, v in self.aliases})
        if key in lookup:
            return Reading(lookup[key])
        close = difflib.get_close_matches(key, list(lookup), n=1, cutoff=0.75)
        if close:
            return Reading(lookup[close[0]], "near-miss", lookup[close[0]])
        return Reading(str(raw).strip(), "unknown")


@lru_cache(maxsize=1)
def vocabularies() -> dict[str, Vocabulary]:
    rules = load_rules("vocabularies")
    return {
        attr: Vocabulary(attr, tuple(spec["values"]), tuple((spec.get("aliases") or {}).items()))
        for attr, spec in rules.items()
    }


# The feature table keeps each attribute twice: the value shoefind reads it as (`color`: "Gray",
# a vocabulary value) and the value as the catalog wrote it (`color_as_written`: "Grey"). A prompt
# set that reads the catalog word for word (the seed's: rules/prompts_seed.yaml) uses the second.
WRITTEN_SUFFIX = "_as_written"


def written_column(attribute: str) -> str:
    return f"{attribute}{WRITTEN_SUFFIX}"


def as_written(shoes):
    """A shoes frame whose attribute columns hold the values as the catalog wrote them (no alias,
    no near-miss correction: Newbalance, Grey, Whte stay), where the frame records them; an
    attribute without a recorded spelling keeps its value. Applying it twice changes nothing."""
    out = shoes.copy()
    for attr in ATTRIBUTES:
        col = written_column(attr)
        if col in out and attr in out:
            written = out[col].fillna("").astype(str)
            out[attr] = written.where(written.str.len() > 0, out[attr].fillna("").astype(str))
    return out
