"""`shoefind learn`: few-shot, CoOp and CoCoOp classifiers learned from the labeled photos, compared and
saved; or (`--method finetune`) the CLIP model itself fine-tuned into a new checkpoint; or (`--method lit`)
a text tower trained against the frozen image embeddings (locked-image tuning) into a new checkpoint.

Its options are shoefind.stages.learn.LearnRequest's fields (shoefind.cli.declared).
"""
from __future__ import annotations

from pathlib import Path

from shoefind.cli import options as o
from shoefind.cli.common import err, print_json, show_run
from shoefind.cli.declared import declared
from shoefind.cli.execution import run_stage
from shoefind.stages.learn import LearnRequest


@declared(LearnRequest, dataset_argument=True)
def learn(request: LearnRequest, json_out: o.Json = False, prefect: o.Prefect = False):
    """Learn from the labeled photos: classifiers for inference, or a new model.

    By default, few-shot, CoOp and CoCoOp classifiers are fitted on a held-out k-shot split, compared
    with zero-shot, and saved for inference (the best one is used). `--method finetune` fine-tunes
    the CLIP model (its text tower and last visual blocks, WiSE-FT weighted) into a checkpoint for --model.
    `--method lit` trains a text tower against the frozen image embeddings (a new one for an image backbone
    such as efficientnet-lite0, CLIP's own for a CLIP model) into a checkpoint every command takes as --model.
    When fewer than 30 photos are held out, the scores come with a warning that they mean little."""
    request.trains_a_model()                       # lit/finetune with other methods: refused before any work
    request.dataset_paths()
    result = run_stage("learn", prefect, request)
    if not isinstance(result, dict):               # classifiers: the run folder
        show_run(Path(result), json_out)
    elif json_out:
        print_json({k: result[k] for k in ("checkpoint", "heldout", "heldout_before", "manifest", "baselines",
                                           "warnings") if k in result})
    else:   # the manifest's markdown leads with its warnings (too few held-out photos, ...)
        print(Path(result["manifest"]).with_suffix(".md").read_text())
        for warning in result.get("warnings", []) if "finetune" in (request.method or "") else []:
            err.print("[bold yellow]warning:[/] ", end="", highlight=False)
            err.print(warning, markup=False, highlight=False)
