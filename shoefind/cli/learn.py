"""`shoefind learn`: few-shot and CoOp classifiers learned from the labeled photos, compared and saved."""
from __future__ import annotations

from pathlib import Path

import typer

from shoefind.cli import options as o
from shoefind.cli.common import dataset_folder, show_run
from shoefind.cli.execution import run_stage


def learn(dataset: o.DatasetArg = None, dataset_opt: o.DatasetOpt = None, model: o.Model = None,
          data_dir: o.DataDir = None, catalog: o.Catalog = None, method: o.Methods = None,
          shots: o.Shots = "16", seed: o.Seed = 0,
          n_ctx: int = typer.Option(4, "--n-ctx", min=1, help="CoOp context tokens"),
          class_specific: bool = typer.Option(False, "--class-specific/--shared",
                                              help="CoOp context per class, or shared by all classes"),
          max_epochs: int = typer.Option(50, "--max-epochs", min=1,
                                         help="CoOp epochs at most (early stop on a validation fold)"),
          batch_size: o.BatchSize = 32, cluster: o.Cluster = None, runtime: o.RuntimeOpt = None,
          device: o.DeviceOpt = None, prompts: o.Prompts = None, vocabulary: o.Vocabulary = None,
          json_out: o.Json = False, prefect: o.Prefect = False):
    """Learn few-shot and CoOp classifiers from the labeled photos, compare them with zero-shot on a held-out
    split, and save them for inference (the best one is used)."""
    root, d = dataset_folder(dataset, dataset_opt, data_dir)
    run_dir = run_stage("learn", prefect, dataset=str(root), data_dir=str(d), model=model,
                        catalog=str(catalog) if catalog else None, method=method, shots=shots, seed=seed,
                        n_ctx=n_ctx, class_specific=class_specific, max_epochs=max_epochs, batch_size=batch_size,
                        cluster=cluster, runtime=runtime, device=device, zeroshot=o.zeroshot(prompts, vocabulary))
    show_run(Path(run_dir), json_out)
