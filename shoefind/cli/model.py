"""`shoefind model ...`: checkpoints."""
from __future__ import annotations

from pathlib import Path

import typer

from shoefind.cli.common import clear_errors, err

app = typer.Typer(help="CLIP checkpoints.", no_args_is_help=True)


@app.command("make-tiny")
def make_tiny(path: Path = typer.Argument(..., help="where to write the checkpoint (.pt)"),
              seed: int = typer.Option(0, help="random seed")):
    """Write a tiny CLIP with RANDOM weights (for tests and dry runs; its answers mean nothing)."""
    from shoefind.encoders.tiny import make_tiny as _make
    out = _make(path, seed=seed)
    err.print(f"wrote {out} - a tiny CLIP with [bold]random[/] weights; load it with --model {out}")
    print(out)


@app.command("check")
def check(model: str = typer.Option(None, "--model", envvar="SHOEFIND_MODEL", help="model name or checkpoint path")):
    """Load the model and say where it came from."""
    from shoefind.encoders.load import load_model
    with clear_errors():
        enc = load_model(model)
    note = " (RANDOM weights: answers are meaningless)" if enc.is_random else ""
    print(f"{enc.model_id}: embed dim {enc.embed_dim}, input {enc.input_resolution}px{note}")
