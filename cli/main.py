"""`shoefind`: one small CLI whose commands read like what the user wants to do."""
from __future__ import annotations

import warnings

import typer

# clip imports pkg_resources; torch warns about jit.load: neither is the user's business.
warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
warnings.filterwarnings("ignore", category=FutureWarning, module="torch")

from . import dataset, model  # noqa: E402

app = typer.Typer(help="Find a shoe's name from a photo (CLIP + Prefect).", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
app.add_typer(model.app, name="model")
dataset.register(app)

# Each area registers its commands here (one line each).
for _area in ("preflight", "crawl", "filter", "infer", "learn"):
    try:
        _mod = __import__(f"cli.{_area}", fromlist=["register"])
    except ModuleNotFoundError as _exc:
        if _exc.name != f"cli.{_area}":
            raise
        continue
    _mod.register(app)

if __name__ == "__main__":
    app()
