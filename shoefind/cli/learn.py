"""`shoefind learn`: few-shot, CoOp and CoCoOp classifiers learned from the labeled photos, compared and
saved; or (`--method finetune`) the CLIP model itself fine-tuned into a new checkpoint; or (`--method lit`)
a text tower trained against the frozen image embeddings (locked-image tuning) into a new checkpoint."""
from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

import typer

from shoefind.cli import options as o
from shoefind.cli.common import dataset_folder, print_json, show_run
from shoefind.cli.execution import run_stage
from shoefind.errors import UserError


def learn(dataset: o.DatasetArg = None, dataset_opt: o.DatasetOpt = None, model: o.Model = None,
          data_dir: o.DataDir = None, catalog: o.Catalog = None, method: o.Methods = None,
          shots: o.Shots = "16", seed: o.Seed = 0,
          n_ctx: Optional[int] = typer.Option(None, "--n-ctx", min=1, max=32, show_default=False,
                                              help="CoOp/CoCoOp context tokens with --ctx-init random (default 16, "
                                                   "the paper's); a phrase sets them to its own tokens"),
          ctx_init: str = typer.Option("a photo of a", "--ctx-init",
                                       help="CoOp context start: a phrase (its word embeddings; CoCoOp's "
                                            "default) or 'random' (16 random tokens, CoOp's paper default)"),
          class_specific: bool = typer.Option(False, "--class-specific/--shared",
                                              help="CoOp context per class (starts random), or shared by all"),
          schedule: Optional[Literal["fast", "paper"]] = typer.Option(
              None, "--schedule", show_default=False,
              help="CoOp training: fast (full-batch Adam, a validation fold picks the epochs, then refit on "
                   "every photo) or paper (SGD 0.002, cosine, warm-up, batch 32, 200/100/50 epochs by shots; "
                   "CoCoOp: batch 1, 10 epochs). Default: fast for CoOp, paper for CoCoOp"),
          max_epochs: Optional[int] = typer.Option(None, "--max-epochs", min=1, show_default=False,
                                                   help="CoOp epochs (default: the schedule's)"),
          views: o.Views = None, tta: o.Tta = None, image_loading: o.ImageLoading = None,
          blocks: int = typer.Option(2, "--blocks", min=0, help="finetune: last visual blocks trained"),
          alpha: float = typer.Option(0.5, "--alpha", min=0.0, max=1.0,
                                      help="finetune: WiSE-FT weight of the fine-tuned model (0 original, 1 tuned)"),
          epochs: int = typer.Option(5, "--epochs", min=1, help="finetune: epochs"),
          lr: float = typer.Option(1e-5, "--lr", min=0.0, help="finetune: learning rate (AdamW)"),
          out: Optional[Path] = typer.Option(None, "--out", show_default=False, dir_okay=False,
                                             help="finetune / lit: checkpoint path (default DATA_DIR/models/"
                                                  "<dataset>-finetune.pt, <dataset>-<model>-lit.lit.pt)"),
          steps: Optional[int] = typer.Option(None, "--steps", min=1, show_default=False,
                                              help="lit: training steps (default 150)"),
          batch_size: o.BatchSize = 32, cluster: o.Cluster = None, runtime: o.RuntimeOpt = None,
          device: o.DeviceOpt = None, prompts: o.Prompts = None, vocabulary: o.Vocabulary = None,
          json_out: o.Json = False, prefect: o.Prefect = False):
    """Learn few-shot, CoOp and CoCoOp classifiers from the labeled photos, compare them with zero-shot on a
    held-out split, and save them for inference (the best one is used). `--method finetune` fine-tunes
    the CLIP model (text tower + last --blocks visual blocks, WiSE-FT --alpha) into a checkpoint for --model.
    `--method lit` trains a text tower against the frozen image embeddings (a new one for an image backbone
    such as efficientnet-lite0, CLIP's own for a CLIP model) into a checkpoint every command takes as --model."""
    root, d = dataset_folder(dataset, dataset_opt, data_dir)
    model = o.with_image_loading(o.with_tta(model, tta), image_loading)
    if is_lit(method):
        if runtime not in (None, "auto", "torch"):
            raise UserError(f"--runtime {runtime}: LiT trains with torch (bf16 where the CPU has it and it "
                            "measures faster); leave --runtime out")
        result = run_stage("learn", prefect, dataset=str(root), data_dir=str(d), model=model,
                           catalog=str(catalog) if catalog else None, method="lit", seed=seed, steps=steps,
                           out=str(out) if out else None, batch_size=batch_size, device=device,
                           zeroshot=o.zeroshot(prompts, vocabulary))
        if json_out:
            print_json({"checkpoint": result["checkpoint"], "heldout": result["heldout"],
                        "heldout_before": result["heldout_before"], "manifest": result["manifest"]})
        else:
            print(Path(result["manifest"]).with_suffix(".md").read_text())
        return
    if method == "finetune":
        result = run_stage("learn", prefect, dataset=str(root), data_dir=str(d), model=model,
                           catalog=str(catalog) if catalog else None, method=method, seed=seed, blocks=blocks,
                           alpha=alpha, epochs=epochs, lr=lr, out=str(out) if out else None, batch_size=batch_size,
                           device=device)
        if json_out:
            print_json({"checkpoint": result["checkpoint"], "heldout": result["heldout"]})
        else:
            print(Path(result["manifest"]).with_suffix(".md").read_text())
        return
    run_dir = run_stage("learn", prefect, dataset=str(root), data_dir=str(d), model=model,
                        catalog=str(catalog) if catalog else None, method=method, shots=shots, seed=seed,
                        n_ctx=n_ctx, class_specific=class_specific, max_epochs=max_epochs, batch_size=batch_size,
                        cluster=cluster, runtime=runtime, device=device, zeroshot=o.zeroshot(prompts, vocabulary),
                        schedule=schedule, ctx_init=ctx_init, views=views)
    show_run(Path(run_dir), json_out)


def is_lit(method: str | None) -> bool:
    """`--method lit` (alone: it trains a model; the other methods learn classifiers for one)."""
    names = [m.strip() for m in (method or "").split(",") if m.strip()]
    if "lit" not in names:
        return False
    if len(names) > 1:
        raise UserError("--method lit trains a model and runs alone: learn the classifiers (fewshot, coop) "
                        "afterwards with --model <the LiT checkpoint>")
    return True
