"""`shoefind table | embed | evaluate`: the dataset side of the pipeline."""
from __future__ import annotations

from pathlib import Path

from shoefind.cli import options as o
from shoefind.cli.common import dataset_folder, err, fail, print_json, show_run
from shoefind.cli.declared import declared
from shoefind.cli.execution import run_stage, stage_progress
from shoefind.stages.evaluate import EvaluateRequest
from shoefind.stages.features import EmbedRequest, TableRequest
from shoefind.stages.features import table as table_stage


@declared(TableRequest, dataset_argument=True)
def table(request: TableRequest, json_out: o.Json = False):
    """Build the feature table (shoes.csv, images.csv, issues.csv) of a labeled photo folder."""
    request.dataset_paths()                      # an empty folder: nothing to make a table of
    strict = request.strict
    with stage_progress() as progress:           # --strict is judged here, after the issues are listed
        saved = table_stage(request.model_copy(update={"strict": False}), progress=progress)
    ft, out = saved.table, saved.folder
    for issue in ft.issues:
        err.print(str(issue), style="yellow", highlight=False, markup=False)
    if json_out:
        print_json(saved.summary())
    else:
        print(f"{out}: {len(ft.shoes)} shoes, {len(ft.images)} images, {len(ft.issues)} issues")
    if strict and ft.issues:
        fail(f"{len(ft.issues)} problems listed above (--strict)")


@declared(EmbedRequest, dataset_argument=True)
def embed(request: EmbedRequest, json_out: o.Json = False, prefect: o.Prefect = False):
    """Cache image embeddings of the dataset (only images not seen before are encoded)."""
    request.dataset_paths()
    result = run_stage("embed", prefect, request)
    if json_out:
        print_json(result)
    else:
        print(f"{result['total']} images: {result['cached']} cached, {result['encoded']} encoded, "
              f"{len(result['failed'])} unreadable -> {result['cache']}")


@declared(EvaluateRequest, dataset_argument=True)
def evaluate(request: EvaluateRequest, json_out: o.Json = False, prefect: o.Prefect = False):
    """Top-1/top-5 per attribute and shoe name (zero-shot, or --method/--shots to compare learned methods).

    A model `learn` trained (LiT, finetune) is scored on the photos it never trained on, its training
    photos apart. Every task shows chance and the majority-class baseline beside top-1."""
    request.dataset_paths()
    if request.task == "change" and request.comparing():
        fail("--method and --shots apply to --task zeroshot (attribute and name classification)")
    show_run(Path(run_stage("evaluate", prefect, request)), json_out)


def prompts(dataset: o.DatasetArg = None, dataset_opt: o.DatasetOpt = None, catalog: o.Catalog = None,
            data_dir: o.DataDir = None, prompt_set: o.Prompts = None, vocabulary: o.Vocabulary = None,
            filter_attributes: o.FilterAttributes = None, json_out: o.Json = False):
    """Every prompt each task would send to the model for this dataset's shoes (no model needed)."""
    root, _d = dataset_folder(dataset, dataset_opt, data_dir)
    from shoefind.features.table import build_table
    from shoefind.retrieve.prompt_listing import listing_lines, prompt_listing
    from shoefind.scoring.zeroshot import ZeroShotOptions
    options = ZeroShotOptions.parse(prompts=prompt_set, vocabulary=vocabulary, filter_attributes=filter_attributes)
    table = build_table(root, catalog=catalog)
    listing = prompt_listing(table.shoes, options, table.attributes) | {"dataset": str(root)}
    if json_out:
        print_json(listing)
    else:
        print("\n".join(listing_lines(listing)))
