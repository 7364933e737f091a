"""Commands whose options are a stage's declared request (shoefind.stages.request).

    @declared(LearnRequest)
    def learn(request: LearnRequest, json_out: o.Json = False, prefect: o.Prefect = False): ...

gives `shoefind learn` one option per field of LearnRequest (its flag, type, choices, bounds, default
and help read from the field) plus the command's own parameters (what only a command line has:
--json, --prefect); the function receives the validated request. With `dataset_argument=True` the
dataset may also be given as the first argument, as the dataset commands take it.
"""
from __future__ import annotations

import functools
import inspect
import typing
from pathlib import Path
from typing import Literal, Optional, Union

import typer

from shoefind.stages.request import Cli, Request, cli_mark, description, fields, unwrap as _unwrap

# value names of text fields that hold a path or a spec (the rest read TEXT, numbers INT / FLOAT)
METAVARS = {"image": "PHOTO", "dataset": "DIR", "data_dir": "DIR", "folder": "DIR", "catalog": "FILE", "out": "FILE", "model": "MODEL"}


def _bounds(hint) -> dict:
    """typer's min/max from the field's ge/le, also inside Optional[...] (gt/lt are left to the field's
    own check)."""
    from pydantic.fields import FieldInfo
    out = {}
    for meta in getattr(hint, "__metadata__", ()):
        for c in meta.metadata if isinstance(meta, FieldInfo) else [meta]:
            if getattr(c, "ge", None) is not None:
                out["min"] = c.ge
            if getattr(c, "le", None) is not None:
                out["max"] = c.le
    for arg in typing.get_args(hint):
        out = _bounds(arg) | out
    return out


def _callback(mark: Cli, request: type[Request], name: str):
    """A typer callback: the field's own parser, else pydantic's validation of this one field."""
    def check(value):
        if value is None:
            return value
        try:
            if mark.parse is not None:
                return mark.parse(value)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        from pydantic import TypeAdapter, ValidationError
        hints = typing.get_type_hints(request, include_extras=True)
        try:
            TypeAdapter(hints[name]).validate_python(value)
        except ValidationError as exc:
            raise typer.BadParameter("; ".join(str(e.get("msg", "")).removeprefix("Value error, ")
                                               for e in exc.errors())) from None
        return value
    return check


def option(request: type[Request], name: str) -> inspect.Parameter:
    """The typer parameter of one declared field."""
    hint, default, metadata = fields(request)[name]
    mark = cli_mark(metadata)
    base, optional = _unwrap(hint)
    if mark.as_text or typing.get_origin(base) is Union:
        base = str
    cli_type = mark.cli_type or (Optional[base] if optional or default is None else base)
    flags = mark.flags or (f"--{name.replace('_', '-')}",)
    show_default = default not in (None, "", ...)
    common = dict(help=description(metadata), show_default=show_default,
                  callback=_callback(mark, request, name))
    if base is str and (metavar := METAVARS.get(name)):
        common["metavar"] = metavar
    if mark.argument:
        info = typer.Argument(default if default is not None or optional else ..., **common)
    else:
        bounds = _bounds(hint) if base in (int, float) else {}
        info = typer.Option(default, *flags, **bounds, **common)
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=cli_type)


def declared(request: type[Request], dataset_argument: bool = False, skip: tuple[str, ...] = ()):
    """Decorator: a command taking `request` (built from its declared options) and its own parameters."""
    names = [n for n in fields(request) if n not in skip]

    def wrap(command):
        own = [p for n, p in inspect.signature(command, eval_str=True).parameters.items() if n != "request"]
        params = [option(request, n) for n in names]
        if dataset_argument:
            params.insert(0, inspect.Parameter(
                "dataset_argument", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[Path],
                default=typer.Argument(None, show_default=False, metavar="DATASET", help="labeled photo folder, "
                                       "one subfolder per shoe (default: DATA_DIR/images); same as --dataset")))
        own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own]

        @functools.wraps(command)
        def run(**kwargs):
            values = {n: kwargs.pop(n) for n in names}
            given_argument = kwargs.pop("dataset_argument", None)
            if given_argument is not None:
                if values.get("dataset") and Path(values["dataset"]).resolve() != given_argument.resolve():
                    from shoefind.errors import UserError
                    raise UserError(f"two datasets given ({given_argument} and --dataset {values['dataset']}): "
                                    "give one")
                values["dataset"] = str(given_argument)
            return command(request.of(**values), **kwargs)
        del run.__wrapped__          # typer reads this signature, not the command's
        run.__signature__ = inspect.Signature(params + own)
        run.__annotations__ = {p.name: p.annotation for p in params + own}
        return run
    return wrap


__all__ = ["declared", "Literal"]
