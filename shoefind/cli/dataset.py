"""`shoefind table | embed | evaluate`: the dataset side of the pipeline."""
from __future__ import annotations

from pathlib import Path

import typer

from shoefind.cli import options as o
from shoefind.cli.common import dataset_folder, err, fail, print_json, progress_bar, show_run
from shoefind.cli.execution import run_stage


def table(dataset: o.DatasetArg = None, dataset_opt: o.DatasetOpt = None, catalog: o.Catalog = None,
          strict: bool = typer.Option(False, help="treat every listed problem as an error (exit 2)"),
          data_dir: o.DataDir = None, json_out: o.Json = False, prefect: o.Prefect = False):
    """Build the feature table (shoes.csv, images.csv, issues.csv) of a labeled photo folder."""
    root, d = dataset_folder(dataset, dataset_opt, data_dir)
    from shoefind.features.stage import save_table
    from shoefind.features.table import count_images, dataset_folder_problem
    if problem := dataset_folder_problem(root):   # an empty folder: nothing to make a table of
        fail(problem)
    with progress_bar("reading images", count_images(root)) as advance:
        saved = save_table(root, d, catalog, progress=advance)   # reused when nothing changed
    ft, out = saved.table, saved.folder
    for issue in ft.issues:
        err.print(str(issue), style="yellow", highlight=False, markup=False)
    summary = {"table": str(out), "layout": ft.layout, "shoes": len(ft.shoes), "images": len(ft.images),
               "issues": len(ft.issues)}
    if json_out:
        print_json(summary)
    else:
        print(f"{out}: {len(ft.shoes)} shoes, {len(ft.images)} images, {len(ft.issues)} issues")
    if strict and ft.issues:
        fail(f"{len(ft.issues)} problems listed above (--strict)")


def embed(dataset: o.DatasetArg = None, dataset_opt: o.DatasetOpt = None, model: o.Model = None,
          data_dir: o.DataDir = None, catalog: o.Catalog = None, batch_size: o.BatchSize = 32,
          threads: o.Threads = None, cluster: o.Cluster = None, runtime: o.RuntimeOpt = None,
          device: o.DeviceOpt = None, image_loading: o.ImageLoading = None, json_out: o.Json = False,
          prefect: o.Prefect = False):
    """Cache image embeddings of the dataset (only images not seen before are encoded)."""
    root, d = dataset_folder(dataset, dataset_opt, data_dir)
    model = o.with_image_loading(model, image_loading)
    result = run_stage("embed", prefect, dataset=str(root), data_dir=str(d), model=model,
                       catalog=str(catalog) if catalog else None, batch_size=batch_size, threads=threads,
                       cluster=cluster, runtime=runtime, device=device)
    if json_out:
        print_json(result)
    else:
        print(f"{result['total']} images: {result['cached']} cached, {result['encoded']} encoded, "
              f"{len(result['failed'])} unreadable -> {result['cache']}")


def evaluate(dataset: o.DatasetArg = None, dataset_opt: o.DatasetOpt = None, model: o.Model = None,
             data_dir: o.DataDir = None, catalog: o.Catalog = None, batch_size: o.BatchSize = 32,
             task: o.EvaluateTask = typer.Option("zeroshot", "--task",
                                                 help="zeroshot (top-1/top-5 per attribute and name) or change "
                                                      "(composed retrieval: Recall@k, MRR)"),
             method: o.Methods = None, shots: o.Shots = None, seed: o.Seed = 0,
             cluster: o.Cluster = None, runtime: o.RuntimeOpt = None, device: o.DeviceOpt = None,
             prompts: o.Prompts = None, vocabulary: o.Vocabulary = None, filter_attributes: o.FilterAttributes = None,
             fallback: o.Fallback = None, views: o.Views = None, tta: o.Tta = None,
             image_loading: o.ImageLoading = None, json_out: o.Json = False, prefect: o.Prefect = False):
    """Top-1/top-5 per attribute and shoe name (zero-shot, or --method/--shots to compare learned methods)."""
    from shoefind.encoders.names import is_image_backbone   # no torch: bad paths are refused first
    root, d = dataset_folder(dataset, dataset_opt, data_dir)
    model = o.with_image_loading(o.with_tta(model, tta), image_loading)
    comparing = bool(method and method != "zeroshot") or bool(shots) or is_image_backbone(model)
    if task == "change" and comparing:
        fail("--method and --shots apply to --task zeroshot (attribute and name classification)")
    common = dict(dataset=str(root), data_dir=str(d), model=model, catalog=str(catalog) if catalog else None,
                  batch_size=batch_size, cluster=cluster, runtime=runtime, device=device,
                  zeroshot=o.zeroshot(prompts, vocabulary, filter_attributes, fallback))
    if task == "change":
        run_dir = run_stage("evaluate-change", prefect, **common)
    else:
        run_dir = run_stage("evaluate", prefect, **common, method=method or "zeroshot", shots=shots, seed=seed,
                            **({"views": views} if views is not None else {}))
    show_run(Path(run_dir), json_out)


def prompts(dataset: o.DatasetArg = None, dataset_opt: o.DatasetOpt = None, catalog: o.Catalog = None,
            data_dir: o.DataDir = None, prompt_set: o.Prompts = None, vocabulary: o.Vocabulary = None,
            filter_attributes: o.FilterAttributes = None, json_out: o.Json = False):
    """Every prompt each task would send to the model for this dataset's shoes (no model needed)."""
    root, _d = dataset_folder(dataset, dataset_opt, data_dir)
    from shoefind.features.table import build_table
    from shoefind.retrieve.prompt_listing import listing_lines, prompt_listing
    from shoefind.retrieve.zeroshot import ZeroShotOptions
    options = ZeroShotOptions.parse(prompts=prompt_set, vocabulary=vocabulary, filter_attributes=filter_attributes)
    table = build_table(root, catalog=catalog)
    listing = prompt_listing(table.shoes, options, table.attributes) | {"dataset": str(root)}
    if json_out:
        print_json(listing)
    else:
        print("\n".join(listing_lines(listing)))
