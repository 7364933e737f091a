"""Each stage's request, declared once: a pydantic model whose fields carry the name, type, choices,
default, bounds and help of every option the stage takes.

The CLI's options (shoefind.cli.declared) and the Prefect flows' parameters (flows/common.py) are made
from these models, and the stage runners take them, so a flag, its flow parameter and what the stage
does with it cannot drift apart. A field may carry a `Cli` mark for what only a command line has
(short flags, a `--on/--off` pair, a text form parsed by a callback). Validation is the model's: a
bad value is refused while the command line is parsed, and when a flow run starts, before any work.
"""
from __future__ import annotations

import re
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, Optional, Union

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from shoefind.errors import UserError

# A flow run's return value is also published as this artifact (JSON), so a command that triggered the
# deployment on another process's worker prints the very answer the in-process path prints.
RESULT_ARTIFACT = "shoefind-result"
RUNTIMES = ("auto", "torch", "bf16", "fp16", "onnx", "onnx-int8")
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class Cli:
    """How a field reads on the command line, where that differs from `--field-name TEXT`."""
    flags: tuple[str, ...] = ()           # e.g. ("--dataset", "-d"); for a bool, ("--a/--b",)
    parse: Callable[[Any], Any] | None = None   # text -> value, raising ValueError with the reason
    as_text: bool = False                 # read as text on the command line (a union such as shots)
    argument: bool = False                # a positional argument, not an option
    cli_type: Any = None                  # the command line's type, where it differs (e.g. list[str] for N paths)


@dataclass(frozen=True)
class Form:
    """How an optional number reads in a flow's run form when 0 is a value of its own (views: 0 = none):
    text, empty meaning not given."""
    empty: str = ""


def _empty_is_none(value):
    """A flow run form's empty text means 'not given', as an absent CLI option does."""
    return None if isinstance(value, str) and not value.strip() else value


def _auto_is_none(value):
    return None if value in ("", "auto") else value


def checked(parse: Callable[[Any], Any]) -> BeforeValidator:
    """A field validator from a CLI parser: ValueError -> the model's validation error. An empty value
    (None, blank text: a run form's 'not given') is None."""
    def run(value):
        return None if _empty_is_none(value) is None else parse(value)
    return BeforeValidator(run)


# --- text forms shared by the command line and the run form -----------------------------------------
def parse_shots(value) -> str:
    """Training photos per shoe: 16 (k = 1, 2, 4, 8, 16), or a comma list such as 1,4,16 (or 4, an int)."""
    text = str(value).strip()
    if isinstance(value, bool) or not re.fullmatch(r"\d+\s*(,\s*\d+\s*)*", text) or \
            any(int(v) < 1 for v in text.split(",")):
        raise ValueError(f"'{value}': give a number of photos per shoe (e.g. 16) or a comma list (e.g. 1,4,16), "
                         "each 1 or more")
    return text.replace(" ", "")


def parse_cluster(value) -> str:
    from shoefind.cluster import check_cluster
    try:
        return check_cluster(str(value))
    except UserError as exc:
        raise ValueError(str(exc)) from None


def parse_threads(value) -> int | None:
    from shoefind.cluster import check_threads
    if value in (0, "0"):
        return None          # a run form's 0: all cores
    try:
        return check_threads(int(value))
    except UserError as exc:
        raise ValueError(str(exc).removeprefix("--threads ")) from None


def parse_prompt_set(value) -> str:
    from shoefind.prompts import prompt_set_names
    if value not in prompt_set_names():
        raise ValueError(f"'{value}': choose a prompt set: {', '.join(prompt_set_names())} (rules/prompts_NAME.yaml)")
    return value


def parse_filter_attributes(value) -> str:
    from shoefind.vocab import ATTRIBUTES
    names = [v.strip().lower() for v in str(value).split(",") if v.strip()]
    if unknown := [v for v in names if v not in ATTRIBUTES]:
        raise ValueError(f"'{unknown[0]}': give a comma list of {', '.join(ATTRIBUTES)}")
    return ",".join(names)


def existing_file(value) -> str:
    path = Path(str(value)).expanduser()
    if not path.is_file():
        raise ValueError(f"file '{value}' does not exist" if not path.exists() else f"'{value}' is not a file")
    return str(path)


# --- fields every stage shares -----------------------------------------------------------------------
Text = Annotated[Optional[str], BeforeValidator(_empty_is_none)]
Dataset = Annotated[Text, Field(description="labeled photo folder, one subfolder per shoe (default: DATA_DIR/images)"),
                    Cli(("--dataset", "-d"))]
DataDir = Annotated[Text, Field(description="working data folder (default: $SHOEFIND_DATA, else data/ of the "
                                            "checkout, else ~/.local/share/shoefind)")]
Catalog = Annotated[Text, checked(existing_file), Field(
    description="catalog CSV with the columns name, brand, color, hightop, sole (shoe labels when folder names "
                "lack them)")]
# What a model spec can be, the same everywhere; each request says what its stage does with the model.
MODEL_SPECS = ("clip:ViT-B/32 (the default), open_clip:ARCH/TAG, open_clip:hf-hub:ORG/REPO, hf:ORG/REPO, a model "
               "folder or checkpoint (a LiT or fine-tuned one too), or efficientnet-lite0 (image only); "
               "`shoefind model list` shows them")
TEXT_MODEL_SPECS = ("clip:ViT-B/32 (the default), open_clip:ARCH/TAG, open_clip:hf-hub:ORG/REPO, hf:ORG/REPO, or a "
                    "model folder or checkpoint (a LiT or fine-tuned one too); `shoefind model list` shows them")
METHOD_LIST = ("zeroshot, fewshot (the prototype, Tip-Adapter, Tip-Adapter-F and a linear probe), tip-adapter-f, "
               "linear-probe, coop, cocoop")


def model_field(purpose: str, specs: str = MODEL_SPECS):
    """The model field, its help saying what this stage does with the model (default $SHOEFIND_MODEL)."""
    return Annotated[Text, Field(description=f"{purpose}: {specs}")]


def seed_field(what: str):
    """The seed field, its help saying what it seeds in this stage (numpy and torch seeds are 32-bit)."""
    return Annotated[int, Field(ge=0, le=2**32 - 1, description=what)]


Model = model_field("the model that encodes the photos")
Runtime = Annotated[Optional[Literal["auto", "torch", "bf16", "fp16", "onnx", "onnx-int8"]],
                    BeforeValidator(_auto_is_none), Field(
    description="how the model runs (default: $SHOEFIND_RUNTIME, else auto = the fastest faithful path)")]
Device = Annotated[Optional[Literal["auto", "cpu", "cuda"]], BeforeValidator(_auto_is_none), Field(
    description="where the model runs (default: $SHOEFIND_DEVICE, else auto = a GPU when present)")]
BatchSize = Annotated[int, Field(ge=1, le=4096, description="images per forward pass")]
Cluster = Annotated[Text, checked(parse_cluster), Field(
    description="encode on Dask: local:N (N worker processes here) or a scheduler address tcp://host:8786"),
                    Cli(parse=parse_cluster)]
Threads = Annotated[Optional[int], checked(parse_threads), Field(
    description="CPU threads for the model (default: all cores; at most 4 per core)"), Cli(parse=parse_threads)]
Seed = seed_field("random seed")
Shots = Annotated[Optional[Union[int, str]], BeforeValidator(_empty_is_none), checked(parse_shots), Field(
    description="training photos per shoe: 16 = k 1,2,4,8,16; or a list 1,4,16"),
                  Cli(parse=parse_shots, as_text=True)]
Methods = Annotated[Text, Field(
    description=f"the methods to compare on one held-out k-shot split, a comma list of {METHOD_LIST} (default: "
                "zeroshot on every photo, no split; an image-only model compares fewshot)"), Cli(("--method",))]
Views = Annotated[Optional[Annotated[int, Field(ge=0, le=64)]], BeforeValidator(_empty_is_none), Form(), Field(
    description="augmented views (random crop + flip) per training photo, encoded once and cached: Tip-Adapter "
                "averages its keys over them, CoOp/CoCoOp/Tip-Adapter-F draw one per epoch (0: none; default: the "
                "official setting, 10 for Tip-Adapter(-F) and for CoOp/CoCoOp on the paper's schedule)")]
ImageLoading = Annotated[Optional[Literal["shoefind", "seed"]], BeforeValidator(_empty_is_none), Field(
    description="how photos are decoded: shoefind (default: JPEG draft decoding, EXIF orientation, transparency on "
                "white) or seed (as the seed project: Image.open + convert(\"RGB\"), full size; for parity runs; "
                "same as --model SPEC+seed-loading)")]
Tta = Annotated[Optional[Literal["flip"]], BeforeValidator(_empty_is_none), Field(
    description="test-time augmentation of an image backbone: flip = mean of the photo's and its mirror's features "
                "(same as --model NAME+flip)")]
Prompts = Annotated[Text, checked(parse_prompt_set), Field(
    description="prompt set: shoefind (default), seed (the seed project's latest templates verbatim, the catalog's "
                "values word for word) or seed@96.3 (the seed commit that scored 96.3%); rules/prompts_NAME.yaml"),
                  Cli(parse=parse_prompt_set)]
Vocabulary = Annotated[Optional[Literal["catalog", "full"]], BeforeValidator(_empty_is_none), Field(
    description="attribute classes the 5-step method scores: catalog (the values the catalog's shoes have; "
                "default) or full (every vocabulary value)")]
FilterAttributes = Annotated[Text, checked(parse_filter_attributes), Field(
    description="attributes the 5-step filter matches, a comma list (default brand,color,hightop; add sole to "
                "use it)"), Cli(parse=parse_filter_attributes)]
Fallback = Annotated[Optional[Literal["name", "relax"]], BeforeValidator(_empty_is_none), Field(
    description="when the 5-step filter keeps no shoe: name (the best name match, as the seed; default) or relax "
                "(drop the least confident attribute until a shoe is left)")]


class Request(BaseModel):
    """A stage's request: the values of its declared fields."""
    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def of(cls, **values) -> "Request":
        """The request from keyword values; a bad value is one UserError line naming the field."""
        from pydantic import ValidationError
        try:
            return cls(**values)
        except ValidationError as exc:
            raise UserError(validation_message(exc)) from None

    def zeroshot(self) -> dict | None:
        """The zero-shot options as the library takes them (shoefind.scoring.zeroshot.ZeroShotOptions.of)."""
        given = {k: getattr(self, k, None) for k in ("prompts", "vocabulary", "filter_attributes", "fallback")}
        return {k: v for k, v in given.items() if v is not None} or None

    def model_text(self) -> str | None:
        """The model spec with its test-time augmentation and image-loading suffixes ('efficientnet-lite2' +
        flip -> 'efficientnet-lite2+flip'; + seed loading -> '...+seed-loading')."""
        from shoefind.encoders.spec import SEED_LOADING_SUFFIX, spec_text, split_image_loading
        model, tta = getattr(self, "model", None), getattr(self, "tta", None)
        loading = getattr(self, "image_loading", None)
        if not tta and loading in (None, "shoefind"):
            return model
        base, written = split_image_loading(spec_text(model))
        if tta and not base.endswith(f"+{tta}"):
            base = f"{base}+{tta}"
        return base + (SEED_LOADING_SUFFIX if "seed" in (loading, written) else "")

    def paths(self) -> tuple[str, str]:
        """(dataset, data folder) as absolute paths: the dataset given, else the working dataset."""
        from shoefind.settings import layout
        lay = layout(getattr(self, "data_dir", None))
        return str(lay.dataset(getattr(self, "dataset", None))), str(lay.root)

    def dataset_paths(self) -> tuple[str, str]:
        """paths(), the dataset refused unless it is a folder with photos (before anything heavy)."""
        return tuple(map(str, labeled_folder(getattr(self, "dataset", None), getattr(self, "data_dir", None))))

    def given(self) -> dict:
        """The fields that were given (not None): what a flow run or a deployment is called with."""
        return {k: v for k, v in self.model_dump().items() if v is not None}


def labeled_folder(dataset, data_dir) -> tuple[Path, Path]:
    """(dataset, data folder): the dataset given, else DATA_DIR/images, refused with one line unless it is
    a folder holding photos (missing, a file, empty or unreadable: said which)."""
    from shoefind.errors import PathNotFound
    from shoefind.features.table import dataset_folder_problem
    from shoefind.settings import layout
    lay = layout(data_dir)
    root = lay.dataset(dataset)
    if not root.exists():
        raise PathNotFound(f"dataset folder {root} does not exist: give a labeled photo folder "
                           "(Brand_Top_Color_Sole_Name/photo.jpg, see data/README.md)")
    if not root.is_dir():
        raise UserError(f"dataset {root} is a file: give a labeled photo folder (one subfolder per shoe)")
    if problem := dataset_folder_problem(root):
        raise UserError(problem)
    return root, lay.root


def validation_message(exc) -> str:
    """pydantic's errors as one line: 'shots: '4x': give a number ...; lr: ...'."""
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ()) if not isinstance(p, int) and p not in
                         ("function-before[run()]", "function-after[run()]")) or "request"
        message = str(error.get("msg", "")).removeprefix("Value error, ")
        parts.append(f"{where}: {message}")
    return "; ".join(dict.fromkeys(parts))


def fields(request: type[Request]) -> dict[str, tuple[Any, Any, list]]:
    """name -> (annotation with its metadata, default, metadata) of every declared field, in order."""
    import typing
    hints = typing.get_type_hints(request, include_extras=True)
    out = {}
    for name, info in request.model_fields.items():
        hint = hints[name]
        metadata = list(getattr(hint, "__metadata__", ()))
        out[name] = (hint, ... if info.is_required() else info.default, metadata)    # ...: required
    return out


def unwrap(hint):
    """(base type, optional) of a field annotation: Annotated and Optional taken off."""
    origin = typing.get_origin(hint)
    if origin is Annotated:
        return unwrap(typing.get_args(hint)[0])
    if origin is Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = len(args) < len(typing.get_args(hint))
        if len(args) == 1:
            base, _ = unwrap(args[0])
            return base, optional
        return Union[tuple(args)], optional
    return hint, False


def bounds(hint) -> dict:
    """ge/le of a field, also inside Optional[...]."""
    from pydantic.fields import FieldInfo
    out = {}
    for meta in getattr(hint, "__metadata__", ()):
        for c in meta.metadata if isinstance(meta, FieldInfo) else [meta]:
            for key in ("ge", "le", "gt", "lt"):
                if getattr(c, key, None) is not None:
                    out[key] = getattr(c, key)
    for arg in typing.get_args(hint):
        out = bounds(arg) | out
    return out


def form_field(hint, default):
    """(annotation, default) of a field as a run form shows it: no field typed None (the form would say
    'Property is type None'), so a field that may be absent takes its empty value instead: "" for text
    and choices ("auto" where it is a choice), 0 for a number; the request reads those as not given."""
    base, optional = unwrap(hint)
    if not optional and default is not None:
        return hint, default          # ... (required) stays required
    meta = [m for m in getattr(hint, "__metadata__", ()) if not isinstance(m, Cli)]
    form = next((m for m in meta if isinstance(m, Form)), None)
    from pydantic.fields import FieldInfo
    words = next((m.description for m in meta if isinstance(m, FieldInfo) and m.description), None)
    if typing.get_origin(base) is Literal:
        choices = typing.get_args(base)
        empty = "auto" if "auto" in choices else ""
        form = Literal[tuple(dict.fromkeys((empty, *choices)))]
    elif base in (int, float) and form is not None:     # 0 is a value: the form takes text, empty = not given
        return Annotated[Union[base, str], Field(description=words)], form.empty
    elif base in (int, float):
        limits = {k: v for k, v in bounds(hint).items() if k in ("le", "lt")}
        return Annotated[base, Field(ge=0, description=f"{words} (0: the default)", **limits)], 0
    else:
        form, empty = (base if typing.get_origin(base) is Union else str), ""
    return Annotated[form, Field(description=words)], empty


def cli_mark(metadata: list) -> Cli:
    return next((m for m in metadata if isinstance(m, Cli)), Cli())


def description(metadata: list) -> str:
    from pydantic.fields import FieldInfo
    return next((m.description for m in metadata if isinstance(m, FieldInfo) and m.description), "")


def direct(name: str, fn: Callable, *args, **kwargs):
    """Run one step of a stage in this process. A stage runner calls its steps through `step(name, fn,
    ...)`; the flows pass tasks.common.as_task instead, which runs the same step as a Prefect task
    named `name`, so the stage's branches are written once, in the stage."""
    return fn(*args, **kwargs)


__all__ = ["AfterValidator", "Cli", "Request", "direct", "fields"]
