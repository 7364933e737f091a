"""Evaluate stage: table -> embeddings -> scores -> a run folder (report.md, metrics CSV/JSON, plots).

evaluate: zero-shot top-1/top-5 per attribute and shoe name, or learned methods compared on one
held-out k-shot split (method/shots). evaluate-change: the composed-retrieval benchmark.
"""
from __future__ import annotations

from typing import Annotated

from prefect import flow
from pydantic import Field

from shoefind.checks import dataset_problem, model_problem
from shoefind.encoders.families.backbones import is_image_backbone
from shoefind.encoders.load import split_specs
from shoefind.learn.methods import methods_problem
from shoefind.stages.evaluate import comparing
from shoefind.encoders.spec import spec_text
from tasks.evaluate import compare_methods_task, compare_models_task, evaluate_change_task, evaluate_zero_shot_task

from .common import (BatchSize, Catalog, Cluster, DataDir, Dataset, Device, Model, Runtime, Seed, ZeroShot,
                     fails_clearly, given, paths, stop, subflow)
from .features import embed_flow

Methods = Annotated[str, Field(
    title="methods", description="zeroshot alone, or a comma list of zeroshot, fewshot, coop compared on one "
                                 "held-out k-shot split.")]
CompareShots = Annotated[str, Field(
    title="shots", description="With methods: training photos per shoe (16 means k = 1, 2, 4, 8, 16; or 1,4,16). "
                               "Empty: 16.")]


@flow(name="evaluate")
@fails_clearly
def evaluate_flow(dataset: Dataset = "", data_dir: DataDir = "", model: Model = "", catalog: Catalog = "",
                  batch_size: BatchSize = 32, method: Methods = "zeroshot", shots: CompareShots = "", seed: Seed = 0,
                  cluster: Cluster = "", runtime: Runtime = "auto", device: Device = "auto",
                  zeroshot: ZeroShot = {}) -> str:
    """Top-1/top-5 per attribute and shoe name of a labeled dataset; returns the run folder.
    Several models (model A,B,C) are each embedded, then compared side by side."""
    dataset, data_dir = paths(dataset, data_dir)
    model, shots = given(model), given(shots)
    if len(models := split_specs(model)) > 1:
        if problem := dataset_problem(dataset) or next(filter(None, map(model_problem, models)), None):
            return stop(problem)
        if comparing(method, shots):
            return stop("model A,B compares zero-shot figures; compare methods with one model at a time")
        for spec in models:
            embedded = subflow(embed_flow, dataset, data_dir, model=spec, catalog=catalog, batch_size=batch_size,
                               cluster=cluster, runtime=runtime, device=device)
        return compare_models_task(embedded["table"], data_dir, models=models, runtime=given(runtime),
                                   device=given(device), zeroshot=zeroshot or None)
    compare = comparing(method, shots) or is_image_backbone(spec_text(model))
    if problem := dataset_problem(dataset) or model_problem(model) or (compare and methods_problem(model, method)):
        return stop(problem)
    embedded = subflow(embed_flow, dataset, data_dir, model=model or "", catalog=catalog, batch_size=batch_size,
                          cluster=cluster, runtime=runtime, device=device)
    if compare:
        return compare_methods_task(embedded["table"], data_dir, model=model, method=method, shots=shots or "16",
                                    seed=seed, zeroshot=zeroshot or None)
    return evaluate_zero_shot_task(embedded["table"], data_dir, model=model, runtime=given(runtime),
                                   device=given(device), zeroshot=zeroshot or None)


@flow(name="evaluate-change")
@fails_clearly
def evaluate_change_flow(dataset: Dataset = "", data_dir: DataDir = "", model: Model = "", catalog: Catalog = "",
                         batch_size: BatchSize = 32, cluster: Cluster = "", runtime: Runtime = "auto",
                         device: Device = "auto", zeroshot: ZeroShot = {}) -> str:
    """Composed-retrieval benchmark (Recall@1/5/10 and MRR per method); returns the run folder."""
    dataset, data_dir = paths(dataset, data_dir)
    model = given(model)
    if problem := dataset_problem(dataset) or model_problem(model):
        return stop(problem)
    embedded = subflow(embed_flow, dataset, data_dir, model=model or "", catalog=catalog, batch_size=batch_size,
                          cluster=cluster, runtime=runtime, device=device)
    return evaluate_change_task(embedded["table"], data_dir, model=model, runtime=given(runtime),
                                device=given(device), zeroshot=zeroshot or None)


if __name__ == "__main__":
    evaluate_flow()
