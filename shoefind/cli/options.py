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
    "--catalog", help="catalog CSV: name,brand,color,hightop,sole (shoe labels when folder names lack them)",
    exists=True, dir_okay=False, readable=True, show_default=False)]
DataDir = Annotated[Optional[Path], typer.Option(
    "--data-dir", envvar="SHOEFIND_DATA", file_okay=False,
    help="working data folder (default: data/ of the checkout, else ~/.local/share/shoefind)", show_default=False)]

# --- the model and how it runs -----------------------------------------------------------------
Model = Annotated[Optional[str], typer.Option(
    "--model", envvar="SHOEFIND_MODEL",
    help="model spec: clip:ViT-B/32, open_clip:ARCH/TAG, open_clip:hf-hub:ORG/REPO, hf:ORG/REPO, a model "
         "folder or checkpoint, or efficientnet-lite0 (image only); evaluate takes A,B,C to compare them "
         "(`shoefind model list`)", show_default=False)]
RuntimeOpt = Annotated[Optional[Runtime], typer.Option(
    "--runtime", help="how the model runs (default: $SHOEFIND_RUNTIME, else auto = fastest faithful path)",
    show_default=False)]
DeviceOpt = Annotated[Optional[Device], typer.Option(
    "--device", help="where the model runs (default: $SHOEFIND_DEVICE, else auto = a GPU when present)",
    show_default=False)]
BatchSize = Annotated[int, typer.Option("--batch-size", min=1, help="images per forward pass")]
Threads = Annotated[Optional[int], typer.Option(
    "--threads", min=1, help="CPU threads for the model (default: all cores)", show_default=False)]
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
Shots = Annotated[Optional[str], typer.Option(
    "--shots", callback=_shots, show_default=False,
    help="training photos per shoe: 16 = k 1,2,4,8,16; or a list 1,4,16")]
Methods = Annotated[Optional[str], typer.Option(
    "--method", show_default=False,
    help="comma list of zeroshot, fewshot (prototype, Tip-Adapter, Tip-Adapter-F, linear probe), tip-adapter-f, "
         "linear-probe, coop, cocoop "
         "(compared on one held-out k-shot split); learn also takes lit or finetune (alone): train a model, "
         "write its checkpoint")]
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
    from shoefind.settings import model_spec
    spec = model_spec(model)
    return spec if spec.endswith(f"+{tta}") else f"{spec}+{tta}"
ImageLoading = Annotated[Optional[Literal["shoefind", "seed"]], typer.Option(
    "--image-loading", show_default=False,
    help="how photos are decoded: shoefind (default: JPEG draft decoding, EXIF orientation, transparency on "
         "white) or seed (as the seed project: Image.open + convert(\"RGB\"), full size; for parity runs; "
         "same as --model SPEC+seed-loading)")]


def with_image_loading(model: str | None, loading: str | None) -> str | None:
    """The model spec with its image-loading suffix ('ViT-B/32' + seed -> 'ViT-B/32+seed-loading')."""
    if not loading or loading == "shoefind":
        return model
    from shoefind.encoders.names import SEED_LOADING_SUFFIX
    from shoefind.settings import model_spec
    spec = model_spec(model)
    return spec if spec.endswith(SEED_LOADING_SUFFIX) else f"{spec}{SEED_LOADING_SUFFIX}"


Seed = Annotated[int, typer.Option("--seed", min=0, help="random seed (the split is saved with the run)")]


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
