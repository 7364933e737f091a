"""The range of every training hyperparameter a person can set, in one table.

The command line (shoefind.cli.learn), the flow parameters (flows/learn.py) and the training
functions themselves all check against it, so `--lr inf`, `--alpha nan` or `--epochs 10**9` is
refused before any work, with one line. The bounds are wide: they exclude what can only diverge
or never end, not what is merely unusual.

Nothing here imports torch: the command line checks while parsing.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from shoefind.errors import UserError


@dataclass(frozen=True)
class Range:
    low: float
    high: float
    low_open: bool = False      # low itself is refused (a learning rate of 0 learns nothing)
    integer: bool = False
    why: str = ""

    def problem(self, name: str, value) -> str | None:
        """Why `value` is refused for `name`, or None."""
        try:
            number = float(value)
        except (TypeError, ValueError):
            return f"{name} {value!r}: give a number"
        if not math.isfinite(number):
            return f"{name} {value}: give a finite number ({self.describe()})"
        if self.integer and number != int(number):
            return f"{name} {value}: give a whole number ({self.describe()})"
        if number < self.low or (self.low_open and number == self.low) or number > self.high:
            return f"{name} {value}: out of range ({self.describe()}{'; ' + self.why if self.why else ''})"
        return None

    def describe(self) -> str:
        low = _fmt(self.low)
        return f"more than {low} and at most {_fmt(self.high)}" if self.low_open else \
            f"{low} to {_fmt(self.high)}"


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


RANGES: dict[str, Range] = {
    "lr": Range(0.0, 1.0, low_open=True, why="past 1 the weights diverge"),
    "scale_lr": Range(0.0, 1.0, low_open=True, why="past 1 the temperature diverges"),
    "weight_decay": Range(0.0, 10.0),
    "alpha": Range(0.0, 1.0, why="0 is the original model, 1 the fine-tuned one"),
    "epochs": Range(1, 1000, integer=True),
    "max_epochs": Range(1, 10_000, integer=True),
    "steps": Range(1, 1_000_000, integer=True),
    "blocks": Range(0, 64, integer=True),
    "batch_size": Range(1, 65_536, integer=True),
    "seed": Range(0, 2 ** 32 - 1, integer=True, why="numpy seeds are 32-bit"),
    "warmup": Range(0.0, 1.0, why="a fraction of the steps"),
    "width": Range(8, 4096, integer=True),
    "layers": Range(1, 64, integer=True),
    "heads": Range(1, 64, integer=True),
    "negatives": Range(0, 65_536, integer=True),
}


def check_hyperparameters(**values) -> None:
    """UserError naming the first value out of its range (None means 'the default': not checked)."""
    for name, value in values.items():
        if value is None or name not in RANGES:
            continue
        if problem := RANGES[name].problem(name.replace("_", "-"), value):
            raise UserError(problem)


def option_check(name: str):
    """A typer callback refusing a value out of RANGES[name] while the command line is parsed."""
    def check(value):
        if value is None:
            return value
        if problem := RANGES[name].problem(name.replace("_", "-"), value):
            import typer
            raise typer.BadParameter(problem.split(": ", 1)[1])
        return value
    return check


def field_bounds(name: str) -> dict:
    """pydantic Field bounds for a flow parameter (finite numbers only)."""
    r = RANGES[name]
    bounds = {"gt" if r.low_open else "ge": r.low, "le": r.high}
    if not r.integer:
        bounds["allow_inf_nan"] = False
    else:
        bounds = {k: int(v) for k, v in bounds.items()}
    return bounds
