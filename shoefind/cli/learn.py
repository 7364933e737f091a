"""`shoefind learn`: few-shot, CoOp and CoCoOp classifiers learned from the labeled photos, compared and
saved; or (`--method finetune`) the CLIP model itself fine-tuned into a new checkpoint; or (`--method lit`)
a text tower trained against the frozen image embeddings (locked-image tuning) into a new checkpoint."""
from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

import typer

from shoefind.cli import options as o
from shoefind.cli.common import dataset_folder, err, print_json, show_run
from shoefind.cli.execution import run_stage
from shoefind.errors import UserError
from shoefind.learn.hyperparameters import option_check


def learn(dataset: o.DatasetArg = None, dataset_opt: o.DatasetOpt = None, model: o.ModelLearn = None,
          data_dir: o.DataDir = None, catalog: o.Catalog = None, method: o.LearnMethods = None,
          shots: o.Shots = "16", seed: o.SeedLearn = 0,
          n_ctx: int = typer.Option(4, "--n-ctx", min=1, max=32, help="CoOp/CoCoOp context tokens (the paper: 16)"),
          ctx_init: str = typer.Option("a photo of a", "--ctx-init",
                                       help="CoOp context start: a phrase (fills the last tokens) or 'random'"),
          class_specific: bool = typer.Option(False, "--class-specific/--shared",
                                              help="CoOp context per class (starts random), or shared by all"),
          schedule: Optional[Literal["fast", "paper"]] = typer.Option(
              None, "--schedule", show_default=False,
              help="CoOp training: fast (full-batch Adam, a validation fold picks the epochs, then refit on "
                   "every photo) or paper (SGD 0.002, cosine, warm-up, batch 32, 200/100/50 epochs by shots; "
                   "CoCoOp: batch 1, 10 epochs). Default: fast for CoOp, paper for CoCoOp"),
          max_epochs: Optional[int] = typer.Option(None, "--max-epochs", min=1, show_default=False,
                                                   callback=option_check("max_epochs"),
                                                   help="CoOp epochs (default: the schedule's)"),
          views: o.Views = 0, tta: o.Tta = None,
          blocks: int = typer.Option(2, "--blocks", min=0, callback=option_check("blocks"),
                                     help="finetune: last visual blocks trained"),
          alpha: float = typer.Option(0.5, "--alpha", min=0.0, max=1.0, callback=option_check("alpha"),
                                      help="finetune: WiSE-FT weight of the fine-tuned model (0 original, 1 tuned)"),
          epochs: int = typer.Option(5, "--epochs", min=1, max=1000, callback=option_check("epochs"),
                                     help="finetune: epochs"),
          lr: float = typer.Option(1e-5, "--lr", callback=option_check("lr"),
                                   help="finetune: learning rate (AdamW), more than 0 and at most 1"),
          out: Optional[Path] = typer.Option(None, "--out", show_default=False, dir_okay=False,
                                             help="finetune / lit: where to write the checkpoint (default: in "
                                                  "DATA_DIR/models, named after the dataset and the model)"),
          steps: Optional[int] = typer.Option(None, "--steps", min=1, show_default=False,
                                              callback=option_check("steps"),
                                              help="lit: training steps (default 150)"),
          batch_size: o.BatchSize = 32, cluster: o.Cluster = None, runtime: o.RuntimeOpt = None,
          device: o.DeviceOpt = None, prompts: o.Prompts = None, vocabulary: o.Vocabulary = None,
          json_out: o.Json = False, prefect: o.Prefect = False):
    """Learn from the labeled photos: classifiers for inference, or a new model.

    By default, few-shot, CoOp and CoCoOp classifiers are fitted on a held-out k-shot split, compared
    with zero-shot, and saved for inference (the best one is used). `--method finetune` fine-tunes
    the CLIP model (text tower + last --blocks visual blocks, WiSE-FT --alpha) into a checkpoint for --model.
    `--method lit` trains a text tower against the frozen image embeddings (a new one for an image backbone
    such as efficientnet-lite0, CLIP's own for a CLIP model) into a checkpoint every command takes as --model.
    When fewer than 30 photos are held out, the scores come with a warning that they mean little."""
    root, d = dataset_folder(dataset, dataset_opt, data_dir)
    model = o.with_tta(model, tta)
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
                        "heldout_before": result["heldout_before"], "manifest": result["manifest"],
                        "baselines": result.get("baselines", {}), "warnings": result.get("warnings", [])})
        else:   # the manifest's markdown leads with its warnings (too few held-out photos, ...)
            print(Path(result["manifest"]).with_suffix(".md").read_text())
        return
    if method == "finetune":
        result = run_stage("learn", prefect, dataset=str(root), data_dir=str(d), model=model,
                           catalog=str(catalog) if catalog else None, method=method, seed=seed, blocks=blocks,
                           alpha=alpha, epochs=epochs, lr=lr, out=str(out) if out else None, batch_size=batch_size,
                           device=device)
        if json_out:
            print_json({"checkpoint": result["checkpoint"], "heldout": result["heldout"],
                        "warnings": result.get("warnings", [])})
        else:
            print(Path(result["manifest"]).with_suffix(".md").read_text())
            for warning in result.get("warnings", []):
                err.print("[bold yellow]warning:[/] ", end="", highlight=False)
                err.print(warning, markup=False, highlight=False)
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
