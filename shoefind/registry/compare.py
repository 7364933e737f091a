"""Comparing two models on the same held-out photos, with the noise of that split.

Both models answer the same photos, so their difference is paired: only the discordant photos (one
right, the other wrong) move it. With b photos only the new model gets right and c only the old one
does, out of n: difference (b - c) / n, standard error sqrt(b + c - (b - c)^2 / n) / n (the paired
difference of proportions), and McNemar's exact test: the two-sided binomial probability of a split at
least as uneven as b:c if both models were equally good.

Promotion: a new model becomes current only if its held-out top-1 is not lower than the current
model's; the noise is reported beside every comparison so a reader can tell a real gain from luck.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass


@dataclass
class Paired:
    photos: int
    new_top1: float
    old_top1: float
    new_only: int          # right by the new model only (b)
    old_only: int          # right by the old model only (c)
    difference: float
    se: float
    p_value: float

    def as_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        return (f"held-out top-1 {self.new_top1:.3f} vs {self.old_top1:.3f} ({self.difference:+.3f}, SE "
                f"{self.se:.3f} from {self.new_only}+{self.old_only} discordant of {self.photos} photos; "
                f"McNemar p={self.p_value:.2f})")


def mcnemar_p(b: int, c: int) -> float:
    """Exact two-sided McNemar p-value (binomial, p = 1/2, over the b + c discordant photos)."""
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def paired(new_right: dict[str, bool], old_right: dict[str, bool]) -> Paired:
    """new_right / old_right: held-out photo (sha256) -> answered right; compared on the photos both have."""
    shared = sorted(set(new_right) & set(old_right))
    n = len(shared)
    b = sum(new_right[s] and not old_right[s] for s in shared)
    c = sum(old_right[s] and not new_right[s] for s in shared)
    new = sum(new_right[s] for s in shared) / n if n else 0.0
    old = sum(old_right[s] for s in shared) / n if n else 0.0
    se = math.sqrt(max(b + c - (b - c) ** 2 / n, 0.0)) / n if n else 0.0
    return Paired(n, round(new, 4), round(old, 4), b, c, round((b - c) / n if n else 0.0, 4), round(se, 4),
                  round(mcnemar_p(b, c), 4))


def should_promote(comparison: Paired | None) -> tuple[bool, str]:
    """(promote?, why): the first model always; later ones when held-out top-1 is not lower."""
    if comparison is None:
        return True, "the first model of this dataset"
    if comparison.new_top1 >= comparison.old_top1:
        return True, f"not worse: {comparison.describe()}"
    return False, f"worse, kept the current model: {comparison.describe()}"
