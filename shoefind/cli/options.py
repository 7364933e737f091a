"""The options every command shares, declared once: the same name means the same thing everywhere,
choices are typer choices, and every number is checked when the command line is parsed (exit 2).

Conventions:
- the dataset (a labeled photo folder, one subfolder per shoe) is `--dataset DIR` in every command;
  the dataset commands (table, embed, evaluate, learn) also take it as their first argument;
- `--catalog CSV` is always a catalog file (name,brand,color,hightop,sole, optional queries);
- `--data-dir` is the working data folder ($SHOEFIND_DATA); `--model` the model ($SHOEFIND_MODEL).

Nothing here imports torch, clip or prefect: parsing must stay instant.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from shoefind.errors import UserError

# Runtimes and devices as choices; shoefind.encoders resolves `auto` (tests keep these lists in step).
RUNTIME_CHOICES = ("auto", "torch", "bf16", "fp16", "onnx", "onnx-int8")
DEVICE_CHOICES = ("auto", "cpu", "cuda")
Runtime = Literal["auto", "torch", "bf16", "fp16", "onnx", "onnx-int8"]
Device = Literal["auto", "cpu", "cuda"]
EvaluateTask = Literal["zeroshot", "change"]
ChangeMethod = Literal["constraints", "fusion", "baseline"]
VocabularyChoice = Literal["catalog", "full"]
FallbackChoice = Literal["name", "relax"]
ReviewStatus = Literal["review", "accepted", "rejected", "purged", "all"]


def _cluster(value: str | None) -> str | None:
    """Refuse a malformed --cluster while parsing (see shoefind.cluster for the forms)."""
    if value is None:
        return None
    from shoefind.cluster import check_cluster
    try:
        return check_cluster(value)
    except UserError as exc:
        raise typer.BadParameter(str(exc)) from None


def _threads(value: int | None) -> int | None:
    """Refuse more threads than this machine can use (a few per core) while parsing."""
    from shoefind.cluster import check_threads
    try:
        return check_threads(value)
    except UserError as exc:
        raise typer.BadParameter(str(exc).removeprefix(f"--threads {value}: ")) from None


def _shots(value: str | None) -> str | None:
    if value is None:
        return None
    if not re.fullmatch(r"\s*\d+\s*(,\s*\d+\s*)*", value) or any(int(v) < 1 for v in value.split(",")):
        raise typer.BadParameter(f"'{value}': give a number of photos per shoe (e.g. 16) or a comma list "
                                 "(e.g. 1,4,16), each 1 or more")
    return value.replace(" ", "")


# --- where the data is -------------------------------------------------------------------------
DatasetArg = Annotated[Optional[Path], typer.Argument(
    help="labeled photo folder, one subfolder per shoe (default: DATA_DIR/images); same as --dataset",
    show_default=False)]
DatasetOpt = Annotated[Optional[Path], typer.Option(
    "--dataset", "-d", help="labeled photo folder, one subfolder per shoe (default: DATA_DIR/images)",
    show_default=False)]
Catalog = Annotated[Optional[Path], typer.Option(
    "--catalog", help="catalog CSV with the columns name, brand, color, hightop, sole (shoe labels when folder "
                      "names lack them)",
    exists=True, dir_okay=False, readable=True, show_default=False)]
DataDir = Annotated[Optional[Path], typer.Option(
    "--data-dir", envvar="SHOEFIND_DATA", file_okay=False,
    help="working data folder (default: data/ of the checkout, else ~/.local/share/shoefind)", show_default=False)]

# --- the model and how it runs -----------------------------------------------------------------
from shoefind.stages.request import METHOD_LIST, MODEL_SPECS, TEXT_MODEL_SPECS  # noqa: E402  (one text each)


def model_option(purpose: str, specs: str = MODEL_SPECS):
    """--model with a help that says what this command does with the model."""
    return Annotated[Optional[str], typer.Option("--model", envvar="SHOEFIND_MODEL", help=f"{purpose}: {specs}",
                                                 show_default=False)]


Model = model_option("the model that encodes the photos")                               # embed
ModelEvaluate = model_option("the model to score, or A,B,C to score several side by side on the same photos")
ModelLearn = model_option(
    "the model to learn with (--method lit: efficientnet-lite0, a clip: model, or a LiT checkpoint to train "
    "further; --method finetune: a clip: model)")
ModelInfer = model_option("the model that identifies the photos (with its learned classifiers, if `learn` saved any)")
ModelSearch = model_option("the model that reads the words and ranks the catalog photos (one with a text side)",
                           TEXT_MODEL_SPECS)
ModelWeb = model_option("the model the page answers with")
ModelDoctor = model_option("the model whose files to look for")
ModelCheck = model_option("the model to load and describe")
RuntimeOpt = Annotated[Optional[Runtime], typer.Option(
    "--runtime", help="how the model runs (default: $SHOEFIND_RUNTIME, else auto = fastest faithful path)",
    show_default=False)]
DeviceOpt = Annotated[Optional[Device], typer.Option(
    "--device", help="where the model runs (default: $SHOEFIND_DEVICE, else auto = a GPU when present)",
    show_default=False)]
BatchSize = Annotated[int, typer.Option("--batch-size", min=1, help="images per forward pass")]
Threads = Annotated[Optional[int], typer.Option(
    "--threads", min=1, callback=_threads, show_default=False,
    help="CPU threads for the model (default: all cores; at most 4 per core)")]
Cluster = Annotated[Optional[str], typer.Option(
    "--cluster", callback=_cluster, show_default=False,
    help="encode on Dask: local:N (N worker processes here) or a scheduler address tcp://host:8786")]

# --- how the command runs and prints -----------------------------------------------------------
Json = Annotated[bool, typer.Option("--json", help="print the result as JSON on stdout (messages go to stderr)")]
Prefect = Annotated[bool, typer.Option(
    "--prefect", help="run as a Prefect flow run on the configured API (default when PREFECT_API_URL is set)")]

# --- numbers and choices used by several commands ----------------------------------------------
TopK = Annotated[int, typer.Option("-k", min=1, help="how many catalog shoes to list")]
Port = Annotated[int, typer.Option("--port", min=0, max=65535, help="port on 127.0.0.1 (0: any free port)")]
WebPort = Annotated[int, typer.Option("--port", min=1, max=65535, help="port of the page on 127.0.0.1")]
Shots = Annotated[Optional[str], typer.Option(
    "--shots", callback=_shots, show_default=False,
    help="training photos per shoe: 16 = k 1,2,4,8,16; or a list 1,4,16")]
Methods = Annotated[Optional[str], typer.Option(
    "--method", show_default=False,
    help=f"the methods to compare on one held-out k-shot split, a comma list of {METHOD_LIST} (default: zeroshot "
         "on every photo, no split; an image-only model compares fewshot)")]
LearnMethods = Annotated[Optional[str], typer.Option(
    "--method", show_default=False,
    help=f"what to learn: a comma list of {METHOD_LIST}, fitted and compared on one held-out k-shot split and saved "
         "for inference (default: zeroshot,fewshot,coop; fewshot for an image-only model); or, alone, lit (train a "
         "text tower) or finetune (fine-tune a CLIP model): a new checkpoint")]
Tta = Annotated[Optional[Literal["flip"]], typer.Option(
    "--tta", show_default=False,
    help="test-time augmentation of an image backbone: flip = mean of the photo's and its mirror's features "
         "(same as --model NAME+flip)")]
Views = Annotated[Optional[int], typer.Option(
    "--views", min=0, max=64, show_default=False,
    help="augmented views (random crop + flip) per training photo, encoded once and cached: Tip-Adapter "
         "averages its keys over them, CoOp/CoCoOp/Tip-Adapter-F draw one per epoch (0: none; default: the "
         "official setting, 10 for Tip-Adapter(-F) and for CoOp/CoCoOp on the paper's schedule)")]


def with_tta(model: str | None, tta: str | None) -> str | None:
    """The model spec with its test-time augmentation suffix ('efficientnet-lite2' + flip -> '...+flip')."""
    if not tta:
        return model
    from shoefind.encoders.spec import spec_text
    spec = spec_text(model)
    return spec if spec.endswith(f"+{tta}") else f"{spec}+{tta}"
def seed_option(what: str):
    """--seed with a help that says what it seeds in this command (numpy and torch seeds are 32-bit)."""
    return Annotated[int, typer.Option("--seed", min=0, max=2 ** 32 - 1, help=what)]


Seed = seed_option("random seed")
SeedEvaluate = seed_option("seed of the k-shot split of --method/--shots (saved in the run folder)")
SeedLearn = seed_option("seed of the held-out split and of training (the split is saved with the run, or beside "
                        "the checkpoint)")
SeedDemo = seed_option("seed of the drawings, the held-out split and training")
SeedTiny = seed_option("seed of the random weights")



# --- zero-shot identification (the 5-step method) and its prompts ------------------------------
def _prompt_set(value: str | None) -> str | None:
    if value is None:
        return None
    from shoefind.prompts import prompt_set_names
    if value not in prompt_set_names():
        raise typer.BadParameter(f"'{value}': choose a prompt set: {', '.join(prompt_set_names())} "
                                 "(rules/prompts_NAME.yaml)")
    return value


def _filter_attributes(value: str | None) -> str | None:
    if value is None:
        return None
    from shoefind.vocab import ATTRIBUTES
    names = [v.strip().lower() for v in value.split(",") if v.strip()]
    if unknown := [v for v in names if v not in ATTRIBUTES]:
        raise typer.BadParameter(f"'{unknown[0]}': give a comma list of {', '.join(ATTRIBUTES)}")
    return ",".join(names)


Prompts = Annotated[Optional[str], typer.Option(
    "--prompts", callback=_prompt_set, show_default=False,
    help="prompt set: shoefind (default), seed (the seed project's latest templates verbatim, the catalog's values "
         "word for word) or seed@96.3 (the seed commit that scored 96.3%); rules/prompts_NAME.yaml")]
Vocabulary = Annotated[Optional[VocabularyChoice], typer.Option(
    "--vocabulary", show_default=False,
    help="attribute classes the 5-step method scores: catalog (the values the catalog's shoes have; default) "
         "or full (every vocabulary value)")]
FilterAttributes = Annotated[Optional[str], typer.Option(
    "--filter-attributes", callback=_filter_attributes, show_default=False,
    help="attributes the 5-step filter matches, a comma list (default brand,color,hightop; add sole to use it)")]
Fallback = Annotated[Optional[FallbackChoice], typer.Option(
    "--fallback", show_default=False,
    help="when the 5-step filter keeps no shoe: name (the best name match, as the seed; default) or relax "
         "(drop the least confident attribute until a shoe is left)")]


def zeroshot(prompts: str | None = None, vocabulary: str | None = None, filter_attributes: str | None = None,
             fallback: str | None = None) -> dict | None:
    """The zero-shot options as stages and flows take them (None: every default)."""
    given = {"prompts": prompts, "vocabulary": vocabulary, "filter_attributes": filter_attributes,
             "fallback": fallback}
    return {k: v for k, v in given.items() if v is not None} or None


# --- the HTTP API (`shoefind serve`) -----------------------------------------------------------
Host = Annotated[str, typer.Option(
    "--host", help="address to listen on: 127.0.0.1 (this machine only) or e.g. 0.0.0.0 (every interface: "
                   "needs --token)")]
ServePort = Annotated[int, typer.Option("--port", min=0, max=65535, help="port to listen on (0: any free port)")]
Token = Annotated[Optional[str], typer.Option(
    "--token", envvar="SHOEFIND_SERVE_TOKEN", show_default=False,
    help="bearer token every request must send (Authorization: Bearer TOKEN), at least 16 characters; required "
         "with a --host beyond loopback. Prefer SHOEFIND_SERVE_TOKEN: a command line is visible to other users")]
MaxUploadMb = Annotated[float, typer.Option(
    "--max-upload-mb", min=0.01, max=1024, help="largest photo upload accepted, in MB (larger: 413)")]
MaxPixels = Annotated[int, typer.Option(
    "--max-pixels", min=1, max=64_000_000, help="most pixels an uploaded photo may have (more: 413, a "
                                                "decompression bomb guard)")]
