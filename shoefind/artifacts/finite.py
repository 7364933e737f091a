"""A model holding NaN or infinities is refused when it is loaded for inference.

Training never writes one any more (shoefind.learn.finite, which finds them with `non_finite_names` too),
but a file from an older shoefind, or one edited by hand, may hold them: a NaN LiT text tower answered
"no catalog shoe matches" to every photo, a NaN classifier gives NaN probabilities. Loading says so in
one line instead.
"""
from __future__ import annotations

import os
from typing import Iterable, Mapping

import numpy as np

from shoefind.errors import UserError


def non_finite_names(named: Mapping | Iterable) -> list[str]:
    """Names of the tensors or arrays (name -> value) holding a NaN or an infinity."""
    items = named.items() if isinstance(named, Mapping) else named
    bad = []
    for name, value in items:
        if value is None:
            continue
        if hasattr(value, "detach"):       # a torch tensor: checked where it is
            import torch
            if value.is_floating_point() and not bool(torch.isfinite(value.detach()).all()):
                bad.append(str(name))
            continue
        array = np.asarray(value)
        if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
            bad.append(str(name))
    return bad


class BrokenModel(UserError):
    """A stored model whose numbers are not finite: it cannot answer."""


def non_finite_summary(named: Mapping | Iterable) -> tuple[int, int, str] | None:
    """(tensors that hold NaN or infinities, tensors, the first names) of name -> value pairs; None when
    every value is finite."""
    items = list(named.items() if isinstance(named, Mapping) else named)
    bad = non_finite_names(items)
    if not bad:
        return None
    return len(bad), len(items), ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")


def require_finite_model(named: Mapping | Iterable, path: str | os.PathLike, what: str, hint: str) -> None:
    """Refuse the model stored in `path` when any of its tensors or arrays (name -> value) holds a NaN or
    an infinity; `hint` says what to do instead."""
    if found := non_finite_summary(named):
        bad, items, shown = found
        raise BrokenModel(f"{path}: this {what} holds NaN or infinite values in {bad} of {items} "
                          f"tensors ({shown}), so it cannot answer; {hint}")
