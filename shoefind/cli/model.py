"""`shoefind model ...`: make tiny test models, list the known models, check one loads."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import typer

from shoefind.cli import options as o
from shoefind.cli.common import err, print_json, user_errors
from shoefind.cli.help_format import ReadableCommand, ReadableGroup
from shoefind.errors import UserError

app = typer.Typer(help="Models: tiny test models, what is on this machine, check one.", no_args_is_help=True,
                  cls=ReadableGroup)

TinyFamily = Literal["clip", "open_clip", "hf", "siglip"]


@app.command("make-tiny", cls=ReadableCommand)
@user_errors
def make_tiny(path: Path = typer.Argument(..., help="where to write it: a .pt file for clip, a folder for the others"),
              family: TinyFamily = typer.Option("clip", "--family", help="whose format: clip | open_clip | hf | siglip"),
              seed: o.SeedTiny = 0):
    """Write a tiny model with RANDOM weights in a family's own format (for tests and dry runs)."""
    folder = path.expanduser().resolve().parent
    if not folder.is_dir():
        raise UserError(f"cannot write {path}: the folder {folder} does not exist")
    if family == "clip" and path.is_dir():
        raise UserError(f"cannot write {path}: it is a folder (a clip model is one .pt file)")
    from shoefind.encoders.families.tiny import make_tiny_model
    try:
        out = make_tiny_model(path, family=family, seed=seed)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None
    err.print(f"wrote {out} - a tiny {family} model with [bold]random[/] weights; load it with --model {out}")
    print(out)


@app.command("list", cls=ReadableCommand)
@user_errors
def list_models(json_out: o.Json = False):
    """The known model specs (and local model folders), and whether each one's files are on this machine."""
    from shoefind.encoders.known import KNOWN_MODELS, local_models, where
    from shoefind.settings import layout
    rows = [{"spec": m.spec, "what": m.what} for m in KNOWN_MODELS]
    rows += [{"spec": p, "what": "local model"} for p in local_models(layout().models)]
    for row in rows:
        row["available"], row["location"] = where(row["spec"])
    if json_out:
        print_json(rows)
        return
    from rich.console import Console
    from rich.table import Table
    table = Table("spec", "here", "what", "files", title="Models (`--model SPEC`; nothing downloads without --download)")
    for row in rows:
        table.add_row(row["spec"], "[green]yes[/]" if row["available"] else "[red]no[/]", row["what"], row["location"])
    Console(width=200).print(table)


@app.command("check", cls=ReadableCommand)
@user_errors
def check(model: o.ModelCheck = None, runtime: o.RuntimeOpt = None, device: o.DeviceOpt = None):
    """Load the model and say where it came from."""
    from shoefind.encoders.load import load_encoder
    from shoefind.stages.features import model_options
    enc = load_encoder(model, **model_options(runtime, device))
    note = " (RANDOM weights: answers are meaningless)" if enc.is_random else ""
    family = getattr(enc, "family", "clip")
    text = "text+image" if enc.has_text else "image only"
    print(f"{enc.model_id} [{family}, {text}, {enc.device}]: embed dim {enc.embed_dim}, "
          f"input {enc.input_resolution}px{note}")
