"""The learn stage as the CLI and the flows both run it: embed the dataset, fit the learned
classifiers on a held-out k-shot split, compare them with zero-shot, and save them for inference;
or (method lit, finetune) train a model and write its checkpoint.

`LearnRequest` declares every option once: `shoefind learn`'s flags and the `learn` flow's parameters
are made from it (shoefind.cli.declared, flows/common.py), and `learn(request)` runs it, its
branches written here only.
"""
from __future__ import annotations

import os
from typing import Annotated, Callable, Literal, Optional

from pydantic import BeforeValidator, Field

from shoefind.errors import UserError
from shoefind.learn.hyperparameters import RANGES, field_bounds
from shoefind.stages.evaluate import RunReport, compare_table, methods_check
from shoefind.stages.request import (ImageLoading, METHOD_LIST, BatchSize, Catalog, Cli, Cluster, DataDir, Dataset, Device,
                                     Prompts, Request, Runtime, Shots, Text, Tta, Views, Vocabulary, direct,
                                     model_field, seed_field)


def _in_range(name: str):
    """The field's check against the hyperparameter table (shoefind.learn.hyperparameters)."""
    def check(value):
        if (problem := RANGES[name].problem(name.replace("_", "-"), value)) is not None:
            raise ValueError(problem.split(": ", 1)[1])
        return value
    return check


def _empty(value):
    return None if value in ("", 0) else value


class LearnRequest(Request):
    dataset: Dataset = None
    data_dir: DataDir = None
    model: model_field("the model to learn with (--method lit: efficientnet-lite0, a clip: model, or a LiT checkpoint "
                       "to train further; --method finetune: a clip: model)") = None
    catalog: Catalog = None
    method: Annotated[Text, Field(
        description=f"what to learn: a comma list of {METHOD_LIST}, fitted and compared on one held-out k-shot split "
                    "and saved for inference (default: zeroshot,fewshot,coop; fewshot for an image-only model); or, "
                    "alone, lit (train a text tower) or finetune (fine-tune a CLIP model): a new checkpoint"),
                      Cli(("--method",))] = None
    shots: Shots = "16"
    seed: seed_field("seed of the held-out split and of training (the split is saved with the run, or beside the "
                     "checkpoint)") = 0
    n_ctx: Annotated[Optional[Annotated[int, Field(ge=1, le=32)]], BeforeValidator(_empty), Field(
        description="CoOp/CoCoOp context tokens with --ctx-init random (default 16, the paper's); a phrase sets "
                    "them to its own tokens")] = None
    ctx_init: Annotated[str, Field(description="CoOp context start: a phrase (its word embeddings; CoCoOp's default) "
                                               "or 'random' (16 random tokens, CoOp's paper default)")] = "a photo of a"
    class_specific: Annotated[bool, Field(description="CoOp context per class (starts random), or shared by all"),
                              Cli(("--class-specific/--shared",))] = False
    schedule: Annotated[Optional[Literal["fast", "paper"]], BeforeValidator(_empty), Field(
        description="CoOp training: fast (full-batch Adam, a validation fold picks the epochs, then refit on every "
                    "photo) or paper (SGD 0.002, cosine, warm-up, batch 32, 200/100/50 epochs by shots; CoCoOp: "
                    "batch 1, 10 epochs). Default: fast for CoOp, paper for CoCoOp")] = None
    max_epochs: Annotated[Optional[Annotated[int, Field(**field_bounds("max_epochs"))]], BeforeValidator(_empty),
                          Field(description="CoOp epochs (default: the schedule's)")] = None
    views: Views = 0
    tta: Tta = None
    image_loading: ImageLoading = None
    blocks: Annotated[int, Field(**field_bounds("blocks"), description="finetune: last visual blocks trained"),
                      Cli(parse=_in_range("blocks"))] = 2
    alpha: Annotated[float, Field(**field_bounds("alpha"), description="finetune: WiSE-FT weight of the fine-tuned "
                                                                       "model (0 original, 1 tuned)"),
                     Cli(parse=_in_range("alpha"))] = 0.5
    epochs: Annotated[int, Field(**field_bounds("epochs"), description="finetune: epochs"),
                      Cli(parse=_in_range("epochs"))] = 5
    lr: Annotated[float, Field(**field_bounds("lr"), description="finetune: learning rate (AdamW), more than 0 and "
                                                                 "at most 1"), Cli(parse=_in_range("lr"))] = 1e-5
    out: Annotated[Text, Field(description="finetune / lit: where to write the checkpoint (default: in "
                                           "DATA_DIR/models, named after the dataset and the model)")] = None
    steps: Annotated[Optional[Annotated[int, Field(**field_bounds("steps"))]], BeforeValidator(_empty),
                     Field(description="lit: training steps (default 150)")] = None
    batch_size: BatchSize = 32
    cluster: Cluster = None
    runtime: Runtime = None
    device: Device = None
    prompts: Prompts = None
    vocabulary: Vocabulary = None
    force: Annotated[bool, Field(description="learn classifiers even when most shoes have no training photo (one "
                                             "photo each): they would answer from the few shoes they saw")] = False

    def methods(self) -> list[str]:
        return [m.strip() for m in (self.method or "").split(",") if m.strip()]

    def trains_a_model(self) -> str | None:
        """lit or finetune (they train a model and run alone), else None (classifiers for one)."""
        from shoefind.errors import UserError
        names = self.methods()
        for kind in ("lit", "finetune"):
            if kind in names:
                if len(names) > 1:
                    raise UserError(f"--method {kind} trains a model and runs alone: learn the classifiers (fewshot, "
                                    f"coop) afterwards with --model <the {kind} checkpoint>")
                return kind
        return None


def learn(request: LearnRequest, step=direct, progress=None, log: Callable[[str], None] | None = None):
    """The learn stage: a LiT or finetuned checkpoint (a dict with its held-out figures), or the
    classifiers compared and saved (a RunReport). `step` runs each step (shoefind.stages.request.direct)."""
    from shoefind.checks import require_model
    from shoefind.errors import UserError
    from shoefind.stages.features import embed_dataset
    from shoefind.stages.lit import learn_lit_dataset
    kind = request.trains_a_model()
    dataset, data_dir = request.dataset_paths()
    model = request.model_text()
    require_model(model)
    if kind == "lit":
        if request.runtime not in (None, "torch"):
            raise UserError(f"--runtime {request.runtime}: LiT trains with torch (bf16 where the CPU has it and it "
                            "measures faster); leave --runtime out")
        return step("lit", learn_lit_dataset, dataset, data_dir, model, request.catalog, out=request.out,
                    steps=request.steps, seed=request.seed, batch_size=request.batch_size, device=request.device,
                    zeroshot=request.zeroshot(), progress=progress, log=log)
    if kind == "finetune":
        return step("finetune", finetune_dataset, dataset, data_dir, model, request.catalog, seed=request.seed,
                    blocks=request.blocks, alpha=request.alpha, epochs=request.epochs, lr=request.lr,
                    batch_size=request.batch_size, device=request.device, out=request.out, log=log)
    methods_check(model, request.method)
    from shoefind.scoring.zeroshot import ZeroShotOptions
    zeroshot = ZeroShotOptions.of(request.zeroshot()).describe()      # a bad option fails before any work
    if not request.force:      # the table is read (and kept) before any photo is embedded
        from shoefind.stages.features import save_table
        require_training_photos(save_table(dataset, data_dir, request.catalog).folder)
    embedded = step("embed", embed_dataset, dataset, data_dir, model, request.catalog, request.batch_size,
                    cluster=request.cluster, runtime=request.runtime, device=request.device, progress=progress,
                    log=log)
    coop = coop_options(request.n_ctx, request.class_specific, request.max_epochs, request.schedule,
                        request.ctx_init)
    return step("learn-classifiers", learn_table, embedded["table"], data_dir, model, request.method,
                str(request.shots or "16"), request.seed, coop, log=log, zeroshot=zeroshot, views=request.views,
                runtime=request.runtime, device=request.device)


def require_training_photos(table_dir) -> None:
    """UserError when most shoes have a single photo: the split tests on it, so the classifiers would
    learn from the few other shoes and answer those, with full confidence, for every photo."""
    from shoefind.features.table import load_table
    images = load_table(table_dir).labeled_images()
    per_shoe = images.groupby("shoe").size()
    trained = int((per_shoe >= 2).sum())
    if len(per_shoe) and not trained:
        raise UserError("no shoe has more than one photo: the split keeps each shoe's only photo for testing, so there "
                        "is nothing to learn from. Add photos (at least 2 per shoe)")
    if len(per_shoe) and trained <= len(per_shoe) / 2:
        others = f"the other {trained} shoe{'s' if trained != 1 else ''}"
        raise UserError(f"{len(per_shoe) - trained} of {len(per_shoe)} shoes have a single photo, which the split "
                        f"keeps for testing: the classifiers would learn from {others} only and name "
                        f"{'one of them' if trained != 1 else 'it'} for every photo. Add photos (at least 2 per "
                        "shoe), or pass --force to learn anyway")


def coop_options(n_ctx: int | None = None, class_specific: bool = False, max_epochs: int | None = None,
                 schedule: str | None = None, ctx_init: str = "a photo of a") -> dict:
    """CoOp / CoCoOp settings (see shoefind.learn.coop.train_coop); max_epochs None: the schedule's;
    schedule None: each method's default (fast for CoOp, the paper's recipe for CoCoOp); n_ctx None:
    as CoOp's code, the phrase's tokens, or 16 with a random start."""
    return {"n_ctx": n_ctx, "class_specific": class_specific, "max_epochs": max_epochs, "schedule": schedule,
            "ctx_init": ctx_init}


def learn_table(table_dir: str | os.PathLike, data_dir: str | os.PathLike, model: str | None = None,
                method: str | None = None, shots: str = "16", seed: int = 0, coop: dict | None = None,
                log: Callable[[str], None] | None = None, zeroshot: dict | None = None,
                views: int | None = None, runtime: str | None = None, device: str | None = None) -> RunReport:
    """Compare and save: the learned classifiers land in DATA_DIR/learned for `infer` to use."""
    return compare_table(table_dir, data_dir, model, method, shots, seed, coop_options=coop, save=True, log=log,
                         zeroshot=zeroshot, views=views, runtime=runtime, device=device)


def finetune_dataset(dataset: str | os.PathLike, data_dir: str | os.PathLike, model: str | None = None,
                     catalog: str | os.PathLike | None = None, seed: int = 0, blocks: int = 2, alpha: float = 0.5,
                     epochs: int = 5, lr: float = 1e-5, batch_size: int = 32, device: str | None = None,
                     out: str | None = None, log: Callable[[str], None] | None = None) -> dict:
    """`learn --method finetune`: the checkpoint (default DATA_DIR/models/<dataset>-finetune.pt) and
    {"checkpoint": PATH, "heldout": {"zero_shot_top1": X, "zero_shot_top1_before": Y, ...}}."""
    from pathlib import Path

    from shoefind.encoders.load import load_encoder
    from shoefind.encoders.families.openai_clip import resolve_checkpoint
    from shoefind.stages.features import save_table
    from shoefind.learn.finetune import finetune_clip
    from shoefind.encoders.spec import spec_text
    spec = spec_text(model)
    encoder = load_encoder(spec, runtime="torch")
    table = save_table(dataset, data_dir, catalog).table
    from shoefind.settings import DataLayout
    target = Path(out) if out else DataLayout(Path(data_dir)).models / f"{Path(dataset).name}-finetune.pt"
    is_openai_clip = getattr(encoder, "family", "clip") == "clip" and getattr(encoder, "has_text", False)
    base = resolve_checkpoint(spec) if is_openai_clip else None   # finetune_clip refuses the others
    if log:
        log(f"fine-tuning {encoder.model_id}: text tower + last {blocks} visual blocks, WiSE-FT alpha {alpha}")
    result = finetune_clip(encoder, base, table, target, blocks=blocks, alpha=alpha, epochs=epochs, lr=lr,
                           batch_size=batch_size, seed=seed, device=None if device in (None, "auto") else device)
    h, split = result.heldout, result.manifest["split"]
    if log:
        log(f"checkpoint {result.checkpoint}: held-out zero-shot top-1 {h['zero_shot_top1_before']:.1%} -> "
            f"{h['zero_shot_top1']:.1%} (manifest {result.checkpoint}.json)")
    from shoefind.evaluate.baselines import small_test_warning
    small = small_test_warning(split["heldout_photos"], "held out",
                               total=split["train_photos"] + split["heldout_photos"], top1=h["zero_shot_top1"])
    warnings = [small] if small else []
    for warning in warnings:
        if log:
            log(f"warning: {warning}")
    return {"checkpoint": str(result.checkpoint), "heldout": result.heldout, "manifest": f"{result.checkpoint}.json",
            "warnings": warnings}
