"""`shoefind model ...`: checkpoints."""
from __future__ import annotations

from pathlib import Path

import typer

from shoefind.cli import options as o
from shoefind.cli.common import err, user_errors
from shoefind.errors import UserError

app = typer.Typer(help="CLIP checkpoints.", no_args_is_help=True)


@app.command("make-tiny")
@user_errors
def make_tiny(path: Path = typer.Argument(..., help="where to write the checkpoint (.pt)", dir_okay=False),
              seed: o.Seed = 0):
    """Write a tiny CLIP with RANDOM weights (for tests and dry runs; its answers mean nothing)."""
    folder = path.expanduser().resolve().parent
    if not folder.is_dir():
        raise UserError(f"cannot write {path}: the folder {folder} does not exist")
    from shoefind.encoders.tiny import make_tiny as _make
    try:
        out = _make(path, seed=seed)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None
    err.print(f"wrote {out} - a tiny CLIP with [bold]random[/] weights; load it with --model {out}")
    print(out)


@app.command("check")
@user_errors
def check(model: o.Model = None, runtime: o.RuntimeOpt = None, device: o.DeviceOpt = None):
    """Load the model and say where it came from."""
    from shoefind.encoders.load import load_encoder
    from shoefind.features.stage import model_options
    enc = load_encoder(model, **model_options(runtime, device))
    note = " (RANDOM weights: answers are meaningless)" if enc.is_random else ""
    print(f"{enc.model_id}: embed dim {enc.embed_dim}, input {enc.input_resolution}px{note}")
