"""Reading a change request in words ("same brand but red", "not Nike", "-red") into constraints.

The phrasing lives in rules/change_phrases.yaml, the values in rules/vocabularies.yaml. The
result says per attribute whether to keep it, change it, want given values or avoid them,
plus the words it could not read (matched as text) and the words to push away.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from shoefind.settings import load_rules
from shoefind.prompts import class_text
from shoefind.vocab import ATTRIBUTES, vocabularies

ATTRIBUTE_NAMES = {"brand": "brand", "color": "colour", "hightop": "top", "sole": "sole"}


@dataclass
class AttributeRule:
    keep: bool = False          # same value as the query shoe
    differ: bool = False        # any value but the query shoe's
    want: list[str] = field(default_factory=list)
    avoid: list[str] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return self.keep or self.differ or bool(self.want) or bool(self.avoid)

    def allows(self, value: str, reference: str | None) -> bool:
        """Whether a catalog shoe with `value` satisfies this rule (reference: the query shoe's value)."""
        if value in self.avoid:
            return False
        if self.want:
            return value in self.want
        if self.keep and reference is not None:
            return value == reference
        if self.differ and reference is not None:
            return value != reference
        return True


@dataclass
class ChangeRequest:
    text: str
    rules: dict[str, AttributeRule]
    free_text: str = ""                      # words not read as constraints, matched as text
    negative_terms: list[str] = field(default_factory=list)   # words to push away (not values)
    positive_text: str = ""                  # the request with its negated parts removed

    @property
    def parsed(self) -> bool:
        return any(r.active for r in self.rules.values())

    @property
    def needs_reference(self) -> list[str]:
        """Attributes whose rule depends on the query shoe's value (same / different)."""
        return [a for a, r in self.rules.items() if (r.keep or r.differ) and not r.want]

    def avoid_texts(self) -> list[str]:
        """Everything to push away, as words CLIP reads: avoided values and negated words."""
        out = [class_text(a, v) for a, r in self.rules.items() for v in r.avoid]
        return out + self.negative_terms

    def wanted_description(self) -> str:
        """The wanted values and free words as one phrase ('a red high-top Nike shoe, suede')."""
        want = {a: r.want[0] for a, r in self.rules.items() if r.want}
        parts = [class_text("color", want["color"])] if "color" in want else []
        if "hightop" in want:
            parts.append(class_text("hightop", want["hightop"]))
        if "brand" in want:
            parts.append(want["brand"])
        text = ""
        if parts or "sole" in want:
            noun = " ".join(parts + ["shoe"])
            text = ("an " if noun[0].lower() in "aeiou" else "a ") + noun
            if "sole" in want:
                sole = class_text("sole", want["sole"]).removesuffix(" sole")
                text += f" with a {sole} sole"
        if self.free_text:
            text = f"{text}, {self.free_text}" if text else self.free_text
        return text

    def understood(self, reference: dict[str, tuple[str, float]] | None = None) -> list[str]:
        """What was read, in words; reference: attribute -> (the query shoe's value, confidence)."""
        reference = reference or {}
        lines = []
        for attr, rule in self.rules.items():
            name = ATTRIBUTE_NAMES[attr]
            ref = reference.get(attr)
            ref_text = f" ({ref[0]}, {ref[1]:.0%} sure)" if ref and ref[1] < 1 else (f" ({ref[0]})" if ref else "")
            if rule.want:
                lines.append(f"{name}: {' or '.join(rule.want)}")
            elif rule.keep:
                lines.append(f"{name}: same as the photo{ref_text}")
            elif rule.differ:
                lines.append(f"{name}: different from the photo{ref_text}")
            if rule.avoid:
                lines.append(f"{name}: not {' or '.join(rule.avoid)}")
        if self.free_text:
            lines.append(f"matched as text: '{self.free_text}'")
        if self.negative_terms:
            lines.append(f"pushed away: {', '.join(repr(t) for t in self.negative_terms)}")
        return lines


@lru_cache(maxsize=1)
def change_rules() -> dict:
    return load_rules("change_phrases")


def normalise(text: str) -> str:
    """Lowercase words; hyphens inside words become spaces, a hyphen before a word stays (negation)."""
    s = str(text).lower()
    s = re.sub(r"(?<=\w)-(?=\w)", " ", s)
    s = re.sub(r"[^\w\s'-]", " ", s)
    s = re.sub(r"-+(?!\w)", " ", s)          # a dash not directly before a word is punctuation
    return " ".join(s.split())


def _alternation(phrases) -> str:
    return "|".join(re.escape(p) for p in sorted({normalise(p) for p in phrases}, key=len, reverse=True))


@lru_cache(maxsize=1)
def _value_phrases() -> list[tuple[str, str, str]]:
    """(phrase, attribute, value) for every spelling of every value, longest phrase first."""
    extra = change_rules().get("value_phrases") or {}
    found: dict[str, tuple[str, str]] = {}
    for attr in ATTRIBUTES:
        vocab = vocabularies()[attr]
        spellings = [(v, v) for v in vocab.values] + list(vocab.aliases)
        spellings += [(p, v) for v, phrases in (extra.get(attr) or {}).items() for p in phrases]
        if attr == "hightop":   # "high-top" is how people write it (the prompts' class text)
            spellings += [(class_text(attr, v), v) for v in vocab.values]
        for phrase, value in spellings:
            found.setdefault(normalise(phrase), (attr, value))
    return sorted(((p, a, v) for p, (a, v) in found.items()), key=lambda t: len(t[0]), reverse=True)


def _template_regex(template: str, names) -> str:
    """'same {attr}' -> 'same\\s+(?:brand|make|...)', words separated by any whitespace."""
    words = []
    for word in template.replace("{attr}", " {attr} ").split():
        words.append(f"(?:{_alternation(names)})" if word == "{attr}" else re.escape(normalise(word)))
    return r"\s+".join(words)


@lru_cache(maxsize=1)
def _patterns() -> tuple[list[tuple[re.Pattern, str | None, str]], re.Pattern]:
    """Keep/change phrase patterns (regex, attribute or None for the whole shoe, kind) and the negation."""
    rules = change_rules()
    words = {a: rules["attribute_words"][a] for a in ATTRIBUTES}
    words[None] = rules.get("shoe_words") or []
    out = []
    for kind, key in (("keep", "keep_patterns"), ("differ", "change_patterns")):
        for template in rules.get(key) or []:
            for attr, names in words.items():
                out.append((re.compile(rf"(?<![\w-]){_template_regex(template, names)}(?!\w)"), attr, kind))
    out.sort(key=lambda t: len(t[0].pattern), reverse=True)
    negation = re.compile(rf"(?:^|\s)(?:{_alternation(rules['negations'])})"
                          rf"(?:\s+(?:{_alternation(rules.get('negation_gap') or ['a'])}))?\s+$")
    return out, negation


class _Text:
    """The normalised request with the characters already read marked."""

    def __init__(self, text: str):
        self.s = normalise(text)
        self.used = [False] * len(self.s)
        self.negated_spans: list[tuple[int, int]] = []

    def free(self, start: int, end: int) -> bool:
        return not any(self.used[start:end])

    def take(self, start: int, end: int) -> None:
        for i in range(start, end):
            self.used[i] = True

    def negation_before(self, start: int) -> int | None:
        """Start of a negation ('not ', 'no ', '-') right before `start`, if there is one."""
        if start > 0 and self.s[start - 1] == "-":
            return start - 1
        m = _patterns()[1].search(self.s[:start])
        return m.start() if m and self.free(m.start(), start) else None

    def leftover(self) -> str:
        return "".join(" " if u else c for c, u in zip(self.s, self.used))


def parse_change(text: str) -> ChangeRequest:
    """Read `text` into per-attribute rules; what cannot be read stays as free text."""
    t = _Text(text)
    rules = {a: AttributeRule() for a in ATTRIBUTES}
    keep_all = False
    for pattern, attr, kind in _patterns()[0]:
        for m in pattern.finditer(t.s):
            if not t.free(*m.span()):
                continue
            t.take(*m.span())
            if attr is None:
                keep_all = keep_all or kind == "keep"
            else:
                setattr(rules[attr], kind, True)

    for phrase, attr, value in _value_phrases():
        for m in re.finditer(rf"(?<!\w){re.escape(phrase)}(?!\w)", t.s):
            if not t.free(*m.span()):
                continue
            neg = t.negation_before(m.start())
            if neg is not None:
                t.take(neg, m.end())
                t.negated_spans.append((neg, m.end()))
                if value not in rules[attr].avoid:
                    rules[attr].avoid.append(value)
            else:
                t.take(*m.span())
                if value not in rules[attr].want:
                    rules[attr].want.append(value)

    for rule in rules.values():
        rule.want = [v for v in rule.want if v not in rule.avoid]
        if rule.want:           # a named value wins over "same" / "different"
            rule.keep = rule.differ = False
        if rule.keep and rule.differ:
            rule.keep = rule.differ = False
    if keep_all:
        for rule in rules.values():
            if not rule.active:
                rule.keep = True

    free, negative = _leftover_words(t)
    positive = _without_spans(t.s, t.negated_spans)
    return ChangeRequest(text=text, rules=rules, free_text=" ".join(free), negative_terms=negative,
                         positive_text=positive)


def _leftover_words(t: _Text) -> tuple[list[str], list[str]]:
    fillers = {normalise(w) for w in change_rules().get("filler_words") or []}
    negations = {normalise(w) for w in change_rules()["negations"] if " " not in w}
    words = t.leftover().split()
    free, negative = [], []
    pos, previous = 0, None       # previous: (word, start) of the word before
    for word in words:
        pos = t.s.find(word, pos)
        if word.startswith("-") and len(word) > 1:
            negative.append(word[1:])
            t.negated_spans.append((pos, pos + len(word)))
        elif previous and previous[0] in negations and word not in fillers:
            negative.append(word)
            t.negated_spans.append((previous[1], pos + len(word)))
        elif word not in fillers and word not in negations:
            free.append(word)
        previous = (word, pos)
        pos += len(word)
    return free, negative


def _without_spans(s: str, spans: list[tuple[int, int]]) -> str:
    keep = [True] * len(s)
    for start, end in spans:
        for i in range(start, end):
            keep[i] = False
    return " ".join("".join(c for c, k in zip(s, keep) if k).split())
