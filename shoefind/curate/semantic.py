"""The semantic crawl check: does CLIP see a whole shoe, or a heel, a face, something else?

Zero-shot over the classes in rules/filter_prompts.yaml (one `good` class, the rest failures).
A confident failure rejects, a confident pass accepts, anything in between goes to review.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from shoefind.encoders.base import stack_pixels

from shoefind.settings import load_rules
from shoefind.images import ImageError
from shoefind.errors import UserError


@dataclass(frozen=True)
class FilterPrompts:
    classes: tuple[str, ...]
    good: str
    prompts: tuple[tuple[str, ...], ...]


def load_filter_prompts(name: str = "filter_prompts") -> FilterPrompts:
    raw = load_rules(name).get("classes", {})
    good = [c for c, spec in raw.items() if spec.get("good")]
    if len(good) != 1 or len(raw) < 2:
        raise UserError(f"rules/{name}.yaml needs exactly one class marked `good: true` and at least one other")
    return FilterPrompts(tuple(raw), good[0], tuple(tuple(spec["prompts"]) for spec in raw.values()))


@dataclass(frozen=True)
class SemanticVerdict:
    outcome: str            # pass | reject | review
    rule: str | None        # semantic:<class> or semantic:uncertain
    reason: str


class SemanticChecker:
    def __init__(self, encoder, prompts: FilterPrompts):
        self.encoder = encoder
        self.prompts = prompts
        self.text = encoder.encode_ensemble(prompts.prompts)

    @property
    def model_id(self) -> str:
        return self.encoder.model_id

    def scores(self, paths) -> list[dict[str, float] | None]:
        """Class probabilities per image (None where the image cannot be decoded)."""
        tensors, rows = [], []
        for i, path in enumerate(paths):
            try:
                tensors.append(self.encoder.load_image(path))
                rows.append(i)
            except ImageError:
                continue
        out: list[dict[str, float] | None] = [None] * len(paths)
        if not tensors:
            return out
        bs = self.encoder.batch_size
        feats = np.concatenate([self.encoder.encode_tensors(stack_pixels(tensors[s:s + bs]))
                                for s in range(0, len(tensors), bs)])
        logits = self.encoder.logit_scale * feats @ self.text.T
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        for row, p in zip(rows, probs):
            out[row] = {c: round(float(v), 4) for c, v in zip(self.prompts.classes, p)}
        return out

    def judge(self, scores: dict[str, float], reject_confidence: float, accept_confidence: float) -> SemanticVerdict:
        return judge(scores, self.prompts.good, reject_confidence, accept_confidence)


def judge(scores: dict[str, float], good: str, reject_confidence: float, accept_confidence: float) -> SemanticVerdict:
    failures = {c: p for c, p in scores.items() if c != good}
    worst = max(failures, key=failures.get)
    if failures[worst] >= reject_confidence:
        return SemanticVerdict("reject", f"semantic:{worst}",
                               f"CLIP is sure it is {worst.replace('_', ' ')} ({failures[worst]:.2f})")
    if scores[good] >= accept_confidence:
        return SemanticVerdict("pass", None, f"CLIP sees {good.replace('_', ' ')} ({scores[good]:.2f})")
    return SemanticVerdict("review", "semantic:uncertain",
                           f"CLIP is unsure: {good.replace('_', ' ')} {scores[good]:.2f}, "
                           f"{worst.replace('_', ' ')} {failures[worst]:.2f}")


def load_checker(model: str | None, prompts_name: str = "filter_prompts") -> tuple[SemanticChecker | None, str, str]:
    """(checker, note, detail). Without a model named (the default one), no checker when it
    cannot be loaded: note says so in a line, detail says how to supply the model. A model
    named on purpose that cannot be loaded raises ModelUnavailable: going on without the
    check the user asked for would sort images by rules they did not choose."""
    from shoefind.encoders.spec import spec_text
    from shoefind.encoders.base import ModelUnavailable
    from shoefind.encoders.load import load_model
    if model is not None and str(model).lower() in ("", "none", "off"):
        return None, "semantic check off (--model none)", ""
    try:
        encoder = load_model(model)
    except ModelUnavailable as exc:
        if model is not None:
            raise ModelUnavailable(f"--model {model}: {exc} (or pass --model none to filter without "
                                   "the semantic check)") from None
        return None, f"semantic check skipped: CLIP model {spec_text(model)} is not available", str(exc)
    note = f"semantic check with {encoder.model_id}"
    if encoder.is_random:
        note += " (a tiny RANDOM test model: its verdicts mean nothing)"
    return SemanticChecker(encoder, load_filter_prompts(prompts_name)), note, ""
