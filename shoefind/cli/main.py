"""`shoefind`: one small CLI whose commands read like what the user wants to do.

The command map below is the whole CLI; each command lives in the module named beside it and
only parses options (shoefind.cli.options), calls the library in this process (or, with a Prefect
API configured, runs the matching flow there) and prints. Command modules import torch, clip and
prefect only inside the commands that need them, so parsing and bad input are answered at once.
"""
from __future__ import annotations

import os
import sys

import typer

from shoefind.cli import crawl, dataset, demo, filter, infer, learn, model, preflight, serve
from shoefind.cli.common import say_error, user_errors
from shoefind.cli.help_format import ReadableCommand, ReadableGroup

COMMANDS = {
    # command      function                    what the user wants
    "crawl":    crawl.crawl,               # collect photos of shoes from an image search
    "filter":   filter.filter_images,      # sort the crawl into accepted / rejected / review
    "review":   filter.review,             # decide the review queue (page or flags)
    "table":    dataset.table,             # the feature table of a labeled photo folder
    "embed":    dataset.embed,             # cache image embeddings
    "evaluate": dataset.evaluate,          # top-1/top-5 per attribute, method comparisons
    "prompts":  dataset.prompts,           # every prompt each task sends to the model
    "learn":    learn.learn,               # few-shot, CoOp, LiT: learn from the labeled photos
    "demo":     demo.demo,                 # a demo catalog and a model that knows it (offline)
    "infer":    infer.infer,               # which shoe is this photo (and change it in words)
    "search":   infer.search,              # find shoes by words
    "web":      infer.web,                 # the web page
    "serve":    serve.serve,               # the HTTP API (JSON), model and catalog kept warm
    "doctor":   preflight.doctor,          # what this machine has, and what is missing
    "models":   model.models,              # the dataset's trained models, which one is current
}

app = typer.Typer(help="Find a shoe's name from a photo (CLIP + Prefect).", no_args_is_help=True, cls=ReadableGroup,
                  pretty_exceptions_enable=False, add_completion=False,
                  context_settings={"help_option_names": ["-h", "--help"]})
# A search may start with '-' ("-red shoes" pushes red away): there, a word that is not one of
# the command's options is query text.
COMMAND_CLASSES = {"search": infer.DashTextCommand}
for _name, _func in COMMANDS.items():
    app.command(_name, cls=COMMAND_CLASSES.get(_name, ReadableCommand))(user_errors(_func))
app.add_typer(model.app, name="model", help="models: list what is here, make a tiny test model, check one; "
                                            "the dataset's trained models: history, promote, rollback")


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
                                       help="print the version and exit"),
          download: bool = typer.Option(False, "--download",
                                        help="let model weights be fetched when missing (else local caches only; "
                                             "same as SHOEFIND_DOWNLOAD=1)")) -> None:
    """Find a shoe's name from a photo (CLIP + Prefect)."""
    # environment, so flows and worker processes started from here see the same choice
    if download:
        os.environ["SHOEFIND_DOWNLOAD"] = "1"
    from shoefind.settings import current
    current()   # a bad SHOEFIND_* (or PREFECT_API_URL) value: one line naming it, before any work


def quiet_libraries() -> None:
    """No telemetry, analytics or deprecation chatter from the libraries the commands use."""
    import warnings
    for key, value in (("PREFECT_SERVER_ANALYTICS_ENABLED", "false"), ("DO_NOT_TRACK", "1"),
                       ("PREFECT_CLI_PROMPT", "false")):
        os.environ.setdefault(key, value)
    # clip imports pkg_resources; torch warns about jit.load: neither is the user's business.
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
    warnings.filterwarnings("ignore", category=FutureWarning, module="torch")


def main(argv: list[str] | None = None) -> None:
    """The console script. Bad options and user errors: one red line, exit code 2. Ctrl-C: exit 130.
    Anything else is a bug: its traceback and a pointer to report it, exit code 1."""
    from shoefind.errors import REPORT_HINT, UserError
    try:
        from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError  # typer vendors click
    except ImportError:
        from click.exceptions import ClickException, NoArgsIsHelpError, UsageError
    quiet_libraries()
    try:
        code = app(args=argv, prog_name="shoefind", standalone_mode=False)
    except NoArgsIsHelpError as exc:         # `shoefind` alone: the help
        print(exc.ctx.get_help() if exc.ctx else exc.format_message())
        sys.exit(0)
    except UsageError as exc:                # bad option or value, caught while parsing
        hint = f"{exc.ctx.command_path} -h" if exc.ctx else "shoefind -h"
        say_error(f"{exc.format_message().replace('Value error, ', '')} (see {hint})")
        sys.exit(2)
    except ClickException as exc:
        say_error(exc.format_message())
        sys.exit(exc.exit_code)
    except UserError as exc:
        say_error(str(exc))
        sys.exit(2)
    except (KeyboardInterrupt, typer.Abort):
        say_error("interrupted")
        sys.exit(130)
    except Exception:
        import traceback
        traceback.print_exc()
        print(REPORT_HINT, file=sys.stderr)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
