"""`shoefind model ...`: make tiny test models, list the known models, check one loads; and the dataset's
model registry: `shoefind models` (also `model history`) lists its trained models, `model promote ID` and
`model rollback` change the current one by hand."""
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


# --- the model registry: the dataset's trained models and which one is current ------------------------
def _registry(dataset: Path | None, data_dir: Path | None):
    """The registry of a dataset (default the working one); an error line when it has none."""
    from shoefind.cli.common import data_layout
    from shoefind.registry.store import ModelRegistry
    lay = data_layout(data_dir)
    root = lay.dataset(dataset)
    registry = ModelRegistry(lay.root, root)
    if not registry.registered:
        raise UserError(f"the dataset {root} has no trained model yet: an expansion run (`expand-dataset`) trains "
                        "and registers one")
    return registry


def models(dataset: o.DatasetOpt = None, data_dir: o.DataDir = None, json_out: o.Json = False):
    """Every model trained for the dataset, oldest first: held-out top-1/top-5, the comparison with the model
    current then (with its noise), whether it was promoted, and which one is current."""
    from shoefind.registry.history import history, history_markdown
    registry = _registry(dataset, data_dir)
    rows = history(registry)
    config = registry.config()
    if json_out:
        print_json({"registry": str(registry.root), "current": registry.current_id(), "learner": config["learner"],
                    "heldout": config["heldout"], "models": rows})
        return
    learner = config["learner"]
    print(f"{registry.dataset}: learner {learner['name']} over {learner['model']}; held-out split: "
          f"{config['heldout']['photos']} photos ({config['heldout']['source']}), fixed {config['registered']}")
    print(history_markdown(rows) if rows else "no model trained yet")
    print(f"current: {registry.current_id() or 'none'}  (registry {registry.root})")
    current = registry.current()
    if current is not None:
        from shoefind.learn.references import ANSWERED_BY, below_references
        below = below_references((current.get("heldout") or {}).get("top1"), current.get("references"))
        if below:
            print(f"note: `infer` and the other answers do not use {current['id']}, as {below[1]}; they use "
                  f"{ANSWERED_BY[below[0]]}")


@app.command("history")
@user_errors
def history_command(dataset: o.DatasetOpt = None, data_dir: o.DataDir = None, json_out: o.Json = False):
    """Every model trained for the dataset and which one is current (same as `shoefind models`)."""
    models(dataset, data_dir, json_out)


@app.command("promote")
@user_errors
def promote(model_id: str = typer.Argument(..., help="the model to make current (an id of `shoefind models`)"),
            dataset: o.DatasetOpt = None, data_dir: o.DataDir = None, json_out: o.Json = False):
    """Make a model of the dataset current by hand (it answers `infer`, `search`, the web page and triage)."""
    registry = _registry(dataset, data_dir)
    with registry.lock():
        before = registry._stack_for_change()
        registry.promote(model_id.strip(), "promoted by hand")
    _changed(registry, before[-1] if before else None, json_out)


@app.command("rollback")
@user_errors
def rollback(dataset: o.DatasetOpt = None, data_dir: o.DataDir = None, json_out: o.Json = False):
    """Go back to the model that was current before the current one."""
    registry = _registry(dataset, data_dir)
    with registry.lock():
        was, _now = registry.rollback()
    _changed(registry, was, json_out)


def _changed(registry, was: str | None, json_out: bool) -> None:
    manifest = registry.current()
    if json_out:
        print_json({"current": manifest["id"], "was": was, "heldout": manifest["heldout"]})
        return
    top1 = manifest["heldout"]["top1"]
    print(f"current model: {manifest['id']} (was {was or 'none'}); held-out top-1 "
          f"{'-' if top1 is None else f'{top1:.3f}'}")
