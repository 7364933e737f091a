"""`--help` that reads cleanly: value names a person recognises, no type tag on a flag.

typer tags every option with its Python type: `--json <bool>`, `--model <str>`, `--seed <int range>
[0<=x<=4294967295]`, `--runtime <auto|torch|bf16|fp16|onnx|onnx-int8>`. The tags say nothing to a
user, and in an 80-column terminal that column squeezes the help text until it is cut off mid-word.
Here a flag shows no value; a value shows what to type (TEXT, INT, FLOAT, DIR, FILE, PATH, or its
choices when they are short; a long list of choices goes into the help as "one of ..."); bounds go
into the help in words ("at least 1", "0 to 64"), without a bound that only mirrors the integer's
width (seeds); and a command's line in the command list is its first paragraph as one line.

Commands and groups made with these classes (`cls=ReadableCommand`, `typer.Typer(cls=ReadableGroup)`)
get it; nothing else changes (parsing and validation are typer's own).
"""
from __future__ import annotations

import inspect

import typer.core

# typer's label -> what the help shows (None: nothing, a flag takes no value)
VALUE_NAMES = {"str": "TEXT", "int": "INT", "float": "FLOAT", "int range": "INT", "float range": "FLOAT",
               "path": "PATH", "dir": "DIR", "file": "FILE", "bool": None, "list[str]": "TEXT",
               "list[path]": "PATH"}
WIDEST_SHOWN_BOUND = 2 ** 31 - 1    # a larger bound is the integer's width (a 32-bit seed), not advice
SHORTEST_CHOICES = 16               # choices longer than this (joined by |) are listed in the help instead


def _choices(param) -> list[str]:
    desc = param.type_descriptor
    return [str(getattr(c, "value", c)) for c in desc.choices or ()] if desc.is_choice else []


def value_name(param, ctx) -> str | None:
    """What a parameter's value is, for its help row (None for a flag)."""
    if getattr(param, "is_flag", False) or getattr(param, "count", False):
        return None
    if choices := _choices(param):
        joined = "|".join(choices)
        return joined if len(joined) <= SHORTEST_CHOICES else "CHOICE"
    label = param.display_type(ctx)
    label = label[1:-1] if label.startswith("<") and label.endswith(">") else label
    if label.lower().startswith("list[") and label.endswith("]"):     # several values: name one
        label = label[5:-1]
    return VALUE_NAMES.get(label.lower(), label.upper())


def bound_words(param) -> str | None:
    """A parameter's bounds in words, without one that only says how wide the integer is."""
    low, high = param.min, param.max
    if high is not None and high >= WIDEST_SHOWN_BOUND:
        high = None
    if low == 0 and high is None:
        low = None                   # "at least 0" of a count or a seed goes without saying
    if low is None and high is None:
        return None
    if low is None:
        return f"at most {high}"
    if high is None:
        return f"at least {low}"
    return f"{low} to {high}"


def _help_with(param, more: list[str]) -> None:
    """Add to a parameter's help what the value column no longer shows (its choices, its bounds)."""
    if not more:
        return
    # in parentheses (square brackets would be read as rich markup), inside the help's own closing ones
    text = (param.help or "").rstrip()
    added = "; ".join(more)
    param.help = f"{text[:-1]}; {added})" if text.endswith(")") else f"{text} ({added})".lstrip()


class _ReadableOption(typer.core.TyperOption):
    def display_type_rich(self, ctx) -> str | None:
        return self.metavar if self.metavar is not None else value_name(self, ctx)

    def _get_number_range_help_str(self) -> str | None:
        return None                      # in the help, in words (readable)


class _ReadableArgument(typer.core.TyperArgument):
    def display_type_rich(self, ctx) -> str | None:
        return self.metavar if self.metavar is not None else value_name(self, ctx)

    def _get_number_range_help_str(self) -> str | None:
        return None

    def _usage_display_name(self) -> str:
        """PHOTOS... for a required argument and [DATASET] for an optional one, as command lines are
        usually written (typer writes {photos}...)."""
        name = self.display_name_raw.upper()
        name = name if self.required else f"[{name}]"
        return name + ("..." if self.nargs != 1 else "")


def readable(param):
    """The same parameter, shown readably: its class swapped for a subclass that only formats help,
    its help given the choices and bounds the value column leaves out. Done once per parameter."""
    kind = {typer.core.TyperOption: _ReadableOption, typer.core.TyperArgument: _ReadableArgument}.get(type(param))
    if kind is None:
        return param
    param.__class__ = kind
    more = []
    choices = _choices(param)
    said = all(c in (param.help or "") for c in choices)       # the help names them already
    if choices and len("|".join(choices)) > SHORTEST_CHOICES and not said:
        more.append("one of: " + ", ".join(choices))
    if not getattr(param, "count", False) and (bounds := bound_words(param)):
        more.append(bounds)
    _help_with(param, more)
    return param


def unwrapped(help_text: str | None) -> str | None:
    """A docstring's paragraphs, each as one line: the terminal wraps them (typer keeps the source's line
    breaks after the first paragraph, so they break mid-sentence)."""
    if not help_text or "\b" in help_text:       # \b: a paragraph laid out by hand
        return help_text
    return "\n\n".join(" ".join(p.split()) for p in inspect.cleandoc(help_text).split("\n\n"))


def one_line(help_text: str | None) -> str | None:
    """A command's first paragraph as one line (the command list keeps a docstring's line breaks)."""
    if not help_text:
        return None
    first = inspect.cleandoc(help_text).partition("\f")[0].split("\n\n")[0]
    return " ".join(first.split())


class _ReadableHelp:
    """A command's or group's options, help text and one-line summary made readable (see `readable`)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for param in self.params:
            readable(param)
        self.help = unwrapped(self.help)
        self.short_help = self.short_help or one_line(self.help)

    def get_help_option(self, ctx):
        option = super().get_help_option(ctx)
        return readable(option) if option is not None else None


class ReadableCommand(_ReadableHelp, typer.core.TyperCommand):
    pass


class ReadableGroup(_ReadableHelp, typer.core.TyperGroup):
    pass
