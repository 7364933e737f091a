"""`shoefind`: one small CLI whose commands read like what the user wants to do.

The command map below is the whole CLI; each command lives in the module named beside it and
only parses options, calls the library (or a flow) and prints.
"""
from __future__ import annotations

import sys
import warnings

import typer

from shoefind.cli import crawl, dataset, filter, infer, learn, model, preflight

# clip imports pkg_resources; torch warns about jit.load: neither is the user's business.
warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
warnings.filterwarnings("ignore", category=FutureWarning, module="torch")

COMMANDS = {
    # command      function                    what the user wants
    "crawl":    crawl.crawl,               # collect photos of shoes from an image search
    "filter":   filter.filter_images,      # sort the crawl into accepted / rejected / review
    "review":   filter.review,             # decide the review queue (page or flags)
    "table":    dataset.table,             # the feature table of a labeled photo folder
    "embed":    dataset.embed,             # cache image embeddings
    "evaluate": dataset.evaluate,          # top-1/top-5 per attribute, method comparisons
    "learn":    learn.learn,               # few-shot, CoOp: learn from the labeled photos
    "infer":    infer.infer,               # which shoe is this photo (and change it in words)
    "search":   infer.search,              # find shoes by words
    "web":      infer.web,                 # the web page
    "doctor":   preflight.doctor,          # what this machine has, and what is missing
}

app = typer.Typer(help="Find a shoe's name from a photo (CLIP + Prefect).", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False,
                  context_settings={"help_option_names": ["-h", "--help"]})
for _name, _func in COMMANDS.items():
    app.command(_name)(_func)
app.add_typer(model.app, name="model", help="model checkpoints: make a tiny test model, check one")


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version
        try:
            print(f"shoefind {version('shoefind')}")
        except PackageNotFoundError:
            print("shoefind (not installed)")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="print the version and exit")) -> None:
    """Find a shoe's name from a photo (CLIP + Prefect)."""


def main() -> None:
    """The console script: user errors are one red line and exit code 2; bugs keep their traceback."""
    from shoefind.errors import REPORT_HINT, UserError
    try:
        app(standalone_mode=True)
    except UserError as exc:
        from shoefind.cli.common import err
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(2)
    except Exception:
        import traceback
        traceback.print_exc()
        print(REPORT_HINT, file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
