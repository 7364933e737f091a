"""The learn stage as the CLI and the flows both run it: embed the dataset, fit the learned
classifiers on a held-out k-shot split, compare them with zero-shot, and save them for inference."""
from __future__ import annotations

import os
from typing import Callable

from shoefind.evaluate.stage import RunReport, compare_table, methods_check


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
                views: int | None = None) -> RunReport:
    """Compare and save: the learned classifiers land in DATA_DIR/learned for `infer` to use."""
    return compare_table(table_dir, data_dir, model, method, shots, seed, coop_options=coop, save=True, log=log,
                         zeroshot=zeroshot, views=views)


def learn_dataset(dataset: str | os.PathLike, data_dir: str | os.PathLike, model: str | None = None,
                  catalog: str | os.PathLike | None = None, method: str | None = None, shots: str = "16",
                  seed: int = 0, n_ctx: int | None = None, class_specific: bool = False, max_epochs: int | None = None,
                  batch_size: int = 32, cluster: str | None = None, runtime: str | None = None,
                  device: str | None = None, zeroshot: dict | None = None, progress=None,
                  log: Callable[[str], None] | None = None,
                  schedule: str | None = None, ctx_init: str = "a photo of a", views: int | None = None, blocks: int = 2,
                  alpha: float = 0.5, epochs: int = 5, lr: float = 1e-5, out: str | None = None,
                  steps: int | None = None):
    """The whole learn stage in this process: table -> embeddings -> fit, compare, save.

    method "finetune" instead fine-tunes the CLIP model itself (shoefind.learn.finetune), and method
    "lit" trains a text tower against the frozen image embeddings (shoefind.learn.lit_stage); both
    return the checkpoint they wrote and the held-out figures."""
    from shoefind.features.stage import embed_dataset
    if method == "lit":
        from shoefind.learn.lit_stage import learn_lit_dataset
        return learn_lit_dataset(dataset, data_dir, model, catalog, out=out, steps=steps, seed=seed,
                                 batch_size=batch_size, device=device, zeroshot=zeroshot, progress=progress, log=log)
    if method == "finetune":
        return finetune_dataset(dataset, data_dir, model, catalog, seed=seed, blocks=blocks, alpha=alpha,
                                epochs=epochs, lr=lr, batch_size=batch_size, device=device, out=out, log=log)
    methods_check(model, method)
    from shoefind.retrieve.zeroshot import ZeroShotOptions
    zeroshot = ZeroShotOptions.of(zeroshot).describe()      # a bad option fails before any work
    embedded = embed_dataset(dataset, data_dir, model, catalog, batch_size, cluster=cluster, runtime=runtime,
                             device=device, progress=progress, log=log)
    return learn_table(embedded["table"], data_dir, model, method, shots, seed,
                       coop_options(n_ctx, class_specific, max_epochs, schedule, ctx_init), log=log, zeroshot=zeroshot,
                       views=views)


def finetune_dataset(dataset: str | os.PathLike, data_dir: str | os.PathLike, model: str | None = None,
                     catalog: str | os.PathLike | None = None, seed: int = 0, blocks: int = 2, alpha: float = 0.5,
                     epochs: int = 5, lr: float = 1e-5, batch_size: int = 32, device: str | None = None,
                     out: str | None = None, log: Callable[[str], None] | None = None) -> dict:
    """`learn --method finetune`: the checkpoint (default DATA_DIR/models/<dataset>-finetune.pt) and
    {"checkpoint": PATH, "heldout": {"zero_shot_top1": X, "zero_shot_top1_before": Y, ...}}."""
    from pathlib import Path

    from shoefind.encoders.load import load_encoder
    from shoefind.encoders.openai_clip import resolve_checkpoint
    from shoefind.features.stage import save_table
    from shoefind.learn.finetune import finetune_clip
    from shoefind.settings import model_spec
    spec = model_spec(model)
    encoder = load_encoder(spec, runtime="torch")
    table = save_table(dataset, data_dir, catalog).table
    target = Path(out) if out else Path(data_dir) / "models" / f"{Path(dataset).name}-finetune.pt"
    is_openai_clip = getattr(encoder, "family", "clip") == "clip" and getattr(encoder, "has_text", False)
    base = resolve_checkpoint(spec) if is_openai_clip else None   # finetune_clip refuses the others
    if log:
        log(f"fine-tuning {encoder.model_id}: text tower + last {blocks} visual blocks, WiSE-FT alpha {alpha}")
    result = finetune_clip(encoder, base, table, target, blocks=blocks, alpha=alpha, epochs=epochs, lr=lr,
                           batch_size=batch_size, seed=seed, device=None if device in (None, "auto") else device)
    if log:
        h = result.heldout
        log(f"checkpoint {result.checkpoint}: held-out zero-shot top-1 {h['zero_shot_top1_before']:.1%} -> "
            f"{h['zero_shot_top1']:.1%} (manifest {result.checkpoint}.json)")
    return {"checkpoint": str(result.checkpoint), "heldout": result.heldout, "manifest": f"{result.checkpoint}.json"}
