"""`shoefind infer | search | web`: asking the catalog about a photo or in words.

These call the library directly (no Prefect run per query) so a query costs only the model;
the `infer` flow wraps the same `answer_photos` for deployments.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import typer

from shoefind.cli.common import clear_errors, err, fail, print_json

MODEL = typer.Option(None, "--model", envvar="SHOEFIND_MODEL", help="CLIP name (ViT-B/32) or checkpoint path")
DATA_DIR = typer.Option(None, "--data-dir", envvar="SHOEFIND_DATA", help="working data folder (default ./data)")
CATALOG = typer.Option(None, "--dataset", help="catalog: a labeled photo folder (default DATA_DIR/images)")
JSON = typer.Option(False, "--json", help="print the answer as JSON on stdout")


def _open(model, dataset, data_dir):
    """The warm model and catalog (expected failures become one red line and exit code 2)."""
    from shoefind.features.catalog import open_catalog
    from shoefind.settings import data_dir as _data_dir
    from shoefind.encoders.load import load_model
    d = _data_dir(data_dir)
    with clear_errors():   # EmptyCatalog is a ValueError
        encoder = load_model(model)
        with err.status("opening the catalog (photos not seen before are embedded)"):
            catalog = open_catalog(encoder, Path(dataset) if dataset else d / "images", d)
    if encoder.is_random:
        err.print(f"[yellow]model {encoder.model_id} has RANDOM weights: its answers mean nothing[/]")
    return encoder, catalog


def infer(photos: list[Path] = typer.Argument(..., help="photos, or folders of photos"),
          change: str = typer.Option(None, "--change", help='a change in words, e.g. "same brand but red"'),
          dataset: Path = CATALOG, model: str = MODEL, data_dir: Path = DATA_DIR,
          method: str = typer.Option("auto", help="identification: auto (best available), zeroshot, or a learned one"),
          change_method: str = typer.Option("constraints", help="constraints | fusion | baseline"),
          text_weight: float = typer.Option(None, help="weight of the text against the photo (0-1; rules default)"),
          k: int = typer.Option(5, "-k", help="how many catalog shoes to list"),
          results: int = typer.Option(10, help="how many changed shoes to list"),
          json_out: bool = JSON):
    """Which shoe is this? Top shoes, brand/colour/top/sole with confidences, nearest catalog photos."""
    from shoefind.retrieve.answer import answer_photos, expand_photos
    from shoefind.retrieve.compose import BASELINES, METHODS
    if change_method not in METHODS + BASELINES:
        fail(f"unknown --change-method '{change_method}' (known: {', '.join(METHODS + BASELINES)})")
    with clear_errors():
        paths = expand_photos(photos)
    encoder, catalog = _open(model, dataset, data_dir)
    with clear_errors():
        answer = answer_photos(encoder, catalog, paths, change=change, method=method, change_method=change_method,
                               k=k, results=results, text_weight=text_weight)
    if json_out:
        print_json(answer)
    else:
        _print_answers(answer)
    failed = [a for a in answer["answers"] if a["error"]]
    for a in failed:
        err.print(f"[bold red]error:[/] {a['error']}", highlight=False)
    if failed:
        raise typer.Exit(2)


def _print_answers(answer: dict) -> None:
    from rich.console import Console
    from rich.table import Table
    out = Console(highlight=False)
    for a in answer["answers"]:
        if a["error"]:
            continue
        out.print(f"[bold]{a['photo']}[/]: {a['shoe']['shoe']} ({a['shoe']['probability']:.0%}, {a['method']})")
        out.print(f"  method: {a['method_description']}")
        if a.get("catalog_shoe"):
            out.print(f"  [cyan]this photo is in the catalog, labeled {a['catalog_shoe']['shoe']}[/]")
        table = Table("shoe", "brand", "colour", "top", "sole", "probability", "score")
        for s in a["top_shoes"]:
            table.add_row(s["shoe"], s.get("brand", ""), s.get("color", ""), s.get("hightop", ""), s.get("sole", ""),
                          f"{s['probability']:.1%}", f"{s['score']:.3f}")
        out.print(table)
        out.print("  " + ", ".join(f"{k}: {v['value']} ({v['confidence']:.0%})" for k, v in a["attributes"].items()))
        out.print("  nearest catalog photos: " + "; ".join(f"{p['shoe']} ({p['similarity']:.2f})"
                                                          for p in a["nearest_photos"]))
        if "change" in a:
            c = a["change"]
            out.print(f"  change '{c['text']}' ({c['method']}), understood: " + "; ".join(c["understood"]))
            for note in c["notes"]:
                out.print(f"  [yellow]{note}[/]")
            out.print(f"  (never the photo's own shoe: {c['excluded']})")
            for i, r in enumerate(c["results"], 1):
                out.print(f"  {i:2d}. {r['shoe']} {_labels(r)} {r['score']:.3f}")
        out.print()


def _labels(shoe: dict) -> str:
    labels = [shoe.get(a, "") for a in ("brand", "color", "hightop")]
    return "[" + ", ".join(v for v in labels if v) + "]" if any(labels) else ""


def search(text: str = typer.Argument(..., help='what to look for, e.g. "white high-top converse"'),
           brand: str = typer.Option(None, help="only this brand"), color: str = typer.Option(None, help="only this colour"),
           top: str = typer.Option(None, "--top", help="only this top height (high, mid, low)"),
           sole: str = typer.Option(None, help="only this sole"),
           dataset: Path = CATALOG, model: str = MODEL, data_dir: Path = DATA_DIR,
           k: int = typer.Option(10, "-k", help="how many shoes to list"), json_out: bool = JSON):
    """Search the catalog by text (prompt ensemble against the catalog photos); '-red' pushes red away."""
    from shoefind.retrieve.text_search import read_filters, search_catalog
    with clear_errors():
        filters = read_filters({"brand": brand, "color": color, "hightop": top, "sole": sole})
    encoder, catalog = _open(model, dataset, data_dir)
    with clear_errors():
        found = search_catalog(encoder, catalog, text, filters, k=k)
    if json_out:
        print_json(found)
        return
    for note in found["notes"]:
        err.print(f"[yellow]{note}[/]")
    for i, r in enumerate(found["results"], 1):
        print(f"{i:2d}. {r['shoe']} {_labels(r)} {r['score']:.3f}  {r['photo']}")


def web(port: int = typer.Option(8501, help="port on 127.0.0.1"), dataset: Path = CATALOG, model: str = MODEL,
        data_dir: Path = DATA_DIR):
    """Start the web page (Streamlit) on 127.0.0.1: upload a photo, see the shoe, change it in words."""
    from shoefind.checks import model_problem
    from shoefind.web import APP_PATH
    if problem := model_problem(model):
        fail(problem)
    env = dict(os.environ)
    for key, value in (("SHOEFIND_MODEL", model), ("SHOEFIND_DATA", data_dir),
                       ("SHOEFIND_WEB_DATASET", dataset)):
        if value:
            env[key] = str(Path(value).expanduser().resolve()) if key != "SHOEFIND_MODEL" or Path(value).exists() \
                else str(value)
    err.print(f"shoefind web page on http://127.0.0.1:{port} (Ctrl-C stops it)")
    cmd = [sys.executable, "-m", "streamlit", "run", str(APP_PATH),
           "--server.address", "127.0.0.1", "--server.port", str(port), "--server.headless", "true",
           "--browser.gatherUsageStats", "false", "--client.toolbarMode", "minimal",
           # expected failures are shown as messages by the page; anything else without a traceback
           "--client.showErrorDetails", "none", "--server.maxUploadSize", "50"]
    try:
        raise typer.Exit(subprocess.call(cmd, env=env))
    except KeyboardInterrupt:
        raise typer.Exit(0)
