"""Training never writes a broken model: a non-finite loss stops it, non-finite weights are never saved.

A learning rate that makes the weights diverge (inf, or merely far too high) turns them into
NaN within a step or two; saved, such a model crashes the ONNX quantiser or answers "no catalog
shoe matches" to every photo. `DivergedTraining` is a UserError: the command ends with one line
and exit code 2, and whatever model was there before stays.
"""
from __future__ import annotations

import math
from typing import Iterable, Mapping

from shoefind.artifacts.finite import non_finite_names, non_finite_summary  # noqa: F401  (this module's API)
from shoefind.errors import UserError


class DivergedTraining(UserError):
    """Training produced non-finite numbers; str() says where, and that nothing was saved."""


class BrokenBaseModel(UserError):
    """The model training starts from already holds non-finite weights (nothing can be learned)."""


def require_finite_loss(loss, at: str, what: str, hint: str = "") -> None:
    """Stop training at the first non-finite loss (a float or a one-element tensor); `at` says
    where ("step 3", "epoch 2")."""
    value = float(loss.detach()) if hasattr(loss, "detach") else float(loss)
    if not math.isfinite(value):
        raise DivergedTraining(f"{what} diverged: the loss is {value} at {at}"
                               f"{' (' + hint + ')' if hint else ''}; nothing was saved")


def require_finite_weights(named: Mapping | Iterable, what: str, hint: str = "") -> None:
    """Refuse to save weights holding a NaN or an infinity."""
    if found := non_finite_summary(named):
        bad, items, shown = found
        raise DivergedTraining(f"{what} diverged: {bad} of {items} tensors hold NaN or infinite "
                               f"values ({shown}){' (' + hint + ')' if hint else ''}; nothing was saved")


def require_sound_base(named: Mapping | Iterable, model_id: str) -> None:
    """Refuse to train from weights that already hold NaN or infinities (a model an older
    version saved after diverging): the loss would be NaN from the first step."""
    items = list(named.items() if isinstance(named, Mapping) else named)
    bad = non_finite_names(items)
    if bad:
        raise BrokenBaseModel(f"the model {model_id} holds NaN or infinite values in {len(bad)} of {len(items)} "
                              f"tensors ({', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''}): train from a sound "
                              "checkpoint; nothing was saved")
