"""`shoefind infer | search | web`: asking the catalog about a photo or in words.

In-process by default, so a query costs only the model; with a Prefect API configured `infer` runs
as the `infer` flow (same library call) so it shows in the UI. Photos and options are checked before
the model loads.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
import typer.core

from shoefind.cli import options as o
from shoefind.cli.common import (data_layout, err, existing_paths, fail, print_json, say_error, warn_random)
from shoefind.cli.declared import declared
from shoefind.cli.execution import run_stage
from shoefind.cli.help_format import ReadableCommand
from shoefind.stages.infer import InferRequest


def _open(model, dataset: Path, data_dir: Path, runtime=None, device=None):
    """The model and catalog, loaded in this process (search and web)."""
    from shoefind.stages.infer import open_model_and_catalog
    with err.status("loading the model and the catalog (photos not seen before are embedded)"):
        encoder, catalog = open_model_and_catalog(model, dataset, data_dir, runtime, device)
    if encoder.is_random:
        warn_random(encoder.model_id)
    return encoder, catalog


def _catalog_folder(dataset: Path | None, data_dir: Path | None) -> tuple[Path, Path]:
    root, d = InferRequest.of(image=[], dataset=str(dataset) if dataset else None,
                              data_dir=str(data_dir) if data_dir else None).catalog_paths()
    return Path(root), Path(d)


@declared(InferRequest)
def infer(request: InferRequest, json_out: o.Json = False, csv_out: Annotated[Optional[Path], typer.Option(
              "--csv", help="also write the answers to this CSV file (one row per photo and result)",
              show_default=False)] = None, prefect: o.Prefect = False):
    """Which shoe is this? Top shoes, brand/colour/top/sole with confidences, nearest catalog photos.
    A folder shows a progress bar and one summary line per photo."""
    from shoefind.retrieve.export import INFER_COLUMNS, answer_rows, check_csv_target, write_csv
    existing_paths([Path(p) for p in request.image])
    if csv_out is not None:
        check_csv_target(csv_out)
    request.catalog_paths()
    folder_given = any(Path(p).is_dir() for p in request.image)
    answer = run_stage("infer", prefect, request)
    if answer.get("random_weights"):
        warn_random(answer.get("model", ""))
    if csv_out is not None:
        written = write_csv(answer_rows(answer), INFER_COLUMNS, csv_out)
        err.print(f"answers written to {written}", highlight=False)
    if json_out:
        print_json(answer)
    elif folder_given:
        _print_summary(answer)
    else:
        _print_answers(answer)
    failed = [a for a in answer["answers"] if a["error"]]
    for a in failed:
        say_error(a["error"])
    if failed:
        raise typer.Exit(2)


def _print_answers(answer: dict) -> None:
    from rich.console import Console
    from rich.table import Table
    out = Console(highlight=False)
    for a in answer["answers"]:
        if a["error"]:
            continue
        if a.get("not_in_catalog"):
            out.print(f"[bold]{a['photo']}[/]: [bold yellow]{a['message']}[/] ({_closeness(a)}); "
                      f"nearest shoes: {', '.join(a['suggestions'])}")
        else:
            out.print(f"[bold]{a['photo']}[/]: {a['shoe']['shoe']} ({a['shoe']['probability']:.0%}, {a['method']})")
        out.print(f"  method: {a['method_description']}")
        if a.get("method_note"):
            out.print(f"  [yellow]{a['method_note']}[/]")
        if "open_set" in a and not a.get("not_in_catalog"):
            out.print(f"  {_closeness(a)}")
        if a.get("catalog_shoe"):
            own = a.get("method_shoe") or {}
            agrees = "agrees" if own.get("shoe") == a["catalog_shoe"]["shoe"] else \
                f"alone would say {own.get('shoe')} ({own.get('probability', 0):.0%})"
            out.print(f"  [cyan]this photo is in the catalog, labeled {a['catalog_shoe']['shoe']}: the answer is its "
                      f"label (the method {agrees})[/]")
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


def _closeness(a: dict) -> str:
    """How near the photo is to the catalog, against the threshold (shoefind.retrieve.open_set)."""
    o = a["open_set"]
    if o["threshold"] is None:
        return f"nearest catalog photo {o['nearest_similarity']:.2f}; {o['calibration']}"
    side = "below" if a.get("not_in_catalog") else "at or above"
    return f"nearest catalog photo {o['nearest_similarity']:.2f}, {side} the catalog's threshold {o['threshold']:.2f}"


def _print_summary(answer: dict) -> None:
    """One line per photo (a folder's answers), then the counts: what a long run needs."""
    from collections import Counter

    from rich.console import Console
    from rich.table import Table
    out = Console(highlight=False)
    answers = answer["answers"]
    table = Table("photo", "identified", "probability", "brand", "colour", "top", "in catalog",
                  title=f"{len(answers)} photos", title_justify="left")
    for a in answers:
        if a["error"]:
            continue
        shoe, attrs = a["shoe"], a["attributes"]
        named = f"not in catalog (nearest: {shoe['shoe']})" if a.get("not_in_catalog") else shoe["shoe"]
        table.add_row(Path(a["photo"]).name, named, f"{shoe['probability']:.0%}",
                      *[attrs[k]["value"] if k in attrs else "" for k in ("brand", "color", "hightop")],
                      (a.get("catalog_shoe") or {}).get("shoe", "") if a.get("in_catalog") else "")
    out.print(table)
    done = [a for a in answers if not a["error"]]
    methods = Counter(a["method"] for a in done)
    shoes = Counter(a["shoe"]["shoe"] for a in done if not a.get("not_in_catalog"))
    far = sum(bool(a.get("not_in_catalog")) for a in done)
    out.print(f"{len(done)} identified, {len(answers) - len(done)} failed"
              + (f" ({far} not like any shoe in this catalog)" if far else "")
              + "; method: " + ", ".join(f"{m} ({n})" for m, n in methods.items()))
    labeled = sum(bool(a.get("catalog_shoe")) for a in done)
    if labeled:
        out.print(f"{labeled} are catalog photos, answered by their catalog labels")
    if shoes:
        out.print("most frequent: " + ", ".join(f"{s} ({n})" for s, n in shoes.most_common(5)))
    for note in sorted({a["method_note"] for a in done if a.get("method_note")}):
        out.print(f"[yellow]{note}[/]")


def _labels(shoe: dict) -> str:
    labels = [shoe.get(a, "") for a in ("brand", "color", "hightop")]
    return "[" + ", ".join(v for v in labels if v) + "]" if any(labels) else ""


# Marks an argument that starts with '-' but is query text, past click's option parser.
_TEXT_MARK = "\x00text:"


class DashTextCommand(ReadableCommand):
    """A command whose text argument may start with '-': any argument that is not one of its
    options (`-red shoes`) is read as text, not refused as an unknown option."""

    def parse_args(self, ctx, args):
        options = {o for p in self.params for o in (*p.opts, *p.secondary_opts) if o.startswith("-")}
        options |= set(ctx.help_option_names)
        out, after_dashdash = [], False
        for arg in args:
            name = arg.split("=", 1)[0]
            is_option = name in options or (arg[:2] in options and not arg.startswith("--"))  # -k5
            if not after_dashdash and arg.startswith("-") and arg not in ("-", "--") and not is_option:
                arg = _TEXT_MARK + arg
            after_dashdash = after_dashdash or arg == "--"
            out.append(arg)
        return super().parse_args(ctx, out)


def search(text: str = typer.Argument(..., help='what to look for, e.g. "white high-top converse"; '
                                               '"-red shoes" pushes red away'),
           brand: str = typer.Option(None, help="only this brand"), color: str = typer.Option(None, help="only this colour"),
           top: str = typer.Option(None, "--top", help="only this top height (high, mid, low)"),
           sole: str = typer.Option(None, help="only this sole"),
           dataset: o.DatasetOpt = None, model: o.ModelSearch = None, data_dir: o.DataDir = None,
           k: Annotated[int, typer.Option("-k", min=1, help="how many shoes to list")] = 10,
           runtime: o.RuntimeOpt = None, device: o.DeviceOpt = None, prompts: o.Prompts = None,
           json_out: o.Json = False,
           csv_out: Annotated[Optional[Path], typer.Option(
               "--csv", help="also write the results to this CSV file (one row per result)",
               show_default=False)] = None):
    """Search the catalog by text (prompt ensemble against the catalog photos); '-red' pushes red away."""
    from shoefind.retrieve.export import SEARCH_COLUMNS, check_csv_target, search_rows, write_csv
    if csv_out is not None:
        check_csv_target(csv_out)
    root, d = _catalog_folder(dataset, data_dir)
    from shoefind.retrieve.text_search import read_filters, search_catalog
    text = text.removeprefix(_TEXT_MARK)
    filters = read_filters({"brand": brand, "color": color, "hightop": top, "sole": sole})
    encoder, catalog = _open(model, root, d, runtime, device)
    found = search_catalog(encoder, catalog, text, filters, k=k, prompts=prompts)
    if csv_out is not None:
        written = write_csv(search_rows(found, text), SEARCH_COLUMNS, csv_out)
        err.print(f"results written to {written}", highlight=False)
    if json_out:
        print_json(found)
        return
    for note in found["notes"]:
        err.print(f"[yellow]{note}[/]")
    for i, r in enumerate(found["results"], 1):
        print(f"{i:2d}. {r['shoe']} {_labels(r)} {r['score']:.3f}  {r['photo']}")


def web(port: o.WebPort = 8501, dataset: o.DatasetOpt = None, model: o.ModelWeb = None, data_dir: o.DataDir = None):
    """Start the web page (Streamlit) on 127.0.0.1: upload a photo, see the shoe, change it in words."""
    from shoefind.checks import model_problem
    from shoefind.cli.children import run_child
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
    raise typer.Exit(run_child(cmd, env=env))
