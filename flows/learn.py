"""Learn stage: table -> embeddings -> k-shot split -> few-shot and CoOp classifiers, compared with
zero-shot and saved for inference."""
from __future__ import annotations

from typing import Annotated, Literal, Optional

from prefect import flow
from pydantic import Field

from shoefind.checks import dataset_problem, model_problem
from shoefind.evaluate.methods import methods_problem
from shoefind.learn.stage import coop_options
from tasks.learn import finetune_task, learn_task, lit_task

from .common import (BatchSize, Catalog, Cluster, DataDir, Dataset, Device, Model, Runtime, Seed, Shots, ZeroShot,
                     fails_clearly, given, paths, stop, subflow)
from .features import embed_flow

LearnMethods = Annotated[str, Field(
    title="methods", description="Comma list of zeroshot, fewshot, tip-adapter-f, linear-probe, coop, cocoop. Empty: every "
                                 "method the model can run (fewshot only for an image-only model). finetune: "
                                 "fine-tune the CLIP model itself (returns its checkpoint). lit: train a text "
                                 "tower against the frozen image embeddings (returns its checkpoint).")]


@flow(name="learn")
@fails_clearly
def learn_flow(dataset: Dataset = "", data_dir: DataDir = "", model: Model = "", catalog: Catalog = "",
               method: LearnMethods = "", shots: Shots = "16", seed: Seed = 0,
               n_ctx: Annotated[Optional[int], Field(ge=1, title="CoOp context tokens", description="Learned "
                                                     "context tokens per prompt. Empty: as CoOp's code, the init "
                                                     "phrase's tokens, or 16 with a random start.")] = None,
               class_specific: Annotated[bool, Field(title="class-specific context", description="CoOp: one "
                                                     "context per class instead of one shared by all.")] = False,
               max_epochs: Annotated[int, Field(ge=0, title="CoOp epochs", description="At most this many; "
                                                "0: the schedule's.")] = 0,
               batch_size: BatchSize = 32, cluster: Cluster = "", runtime: Runtime = "auto",
               device: Device = "auto", zeroshot: ZeroShot = {},
               schedule: Annotated[Literal["", "fast", "paper"], Field(
                   title="CoOp schedule", description="fast, or as in the paper; empty: fast for CoOp, "
                                                      "the paper's for CoCoOp.")] = "",
               ctx_init: Annotated[str, Field(title="CoOp context init",
                                              description="Words the context starts from.")] = "a photo of a",
               views: Annotated[Optional[int], Field(ge=0, title="augmented views",
                                                     description="Augmented views per training photo (0: none). "
                                                     "Empty: each method's official setting (10 for Tip-Adapter "
                                                     "and CoOp/CoCoOp on the paper's schedule).")] = None,
               blocks: Annotated[int, Field(ge=1, title="finetune: visual blocks",
                                            description="Last visual blocks trained by finetune.")] = 2,
               alpha: Annotated[float, Field(ge=0, le=1, title="finetune: WiSE-FT alpha",
                                             description="Weight of the fine-tuned weights.")] = 0.5,
               epochs: Annotated[int, Field(ge=1, title="finetune: epochs", description="Epochs of finetune.")] = 5,
               lr: Annotated[float, Field(gt=0, title="finetune: learning rate", description="Of finetune.")] = 1e-5,
               out: Annotated[str, Field(title="finetune / lit: checkpoint", description="Where finetune or lit "
                                         "writes the checkpoint. Empty: DATA_DIR/models/<dataset>-finetune.pt, "
                                         "<dataset>-<model>-lit.lit.pt.")] = "",
               steps: Annotated[int, Field(ge=0, title="lit: steps", description="LiT training steps; "
                                           "0: the default (150).")] = 0,
               ) -> str | dict:
    """Learn classifiers from the labeled photos, compare them with zero-shot, save them for `infer`;
    returns the run folder (finetune: the checkpoint and held-out figures)."""
    dataset, data_dir = paths(dataset, data_dir)
    model, method = given(model), given(method)
    if method == "lit":
        if problem := dataset_problem(dataset) or model_problem(model):
            return stop(problem)
        return lit_task(dataset, data_dir, model, given(catalog), out=given(out), steps=steps or None, seed=seed,
                        batch_size=batch_size, device=given(device), zeroshot=zeroshot or None)
    if method == "finetune":
        if problem := dataset_problem(dataset) or model_problem(model):
            return stop(problem)
        return finetune_task(dataset, data_dir, model, given(catalog), seed=seed, blocks=blocks, alpha=alpha,
                             epochs=epochs, lr=lr, batch_size=batch_size, device=given(device), out=given(out))
    if problem := dataset_problem(dataset) or model_problem(model) or (method and methods_problem(model, method)):
        return stop(problem)
    embedded = subflow(embed_flow, dataset, data_dir, model=model or "", catalog=catalog, batch_size=batch_size,
                          cluster=cluster, runtime=runtime, device=device)
    return learn_task(embedded["table"], data_dir, model=model, method=method, shots=shots, seed=seed,
                      coop=coop_options(n_ctx, class_specific, max_epochs or None, schedule or None, ctx_init),
                      zeroshot=zeroshot or None, views=views)


if __name__ == "__main__":
    learn_flow()
