"""`shoefind learn`: few-shot, CoOp and CoCoOp classifiers learned from the labeled photos, compared and
saved; or (`--method finetune`) the CLIP model itself fine-tuned into a new checkpoint; or (`--method lit`)
a text tower trained against the frozen image embeddings (locked-image tuning) into a new checkpoint.

Its options are shoefind.stages.learn.LearnRequest's fields (shoefind.cli.declared).
"""
from __future__ import annotations

from pathlib import Path

from shoefind.cli import options as o
from shoefind.cli.common import print_json, show_run
from shoefind.cli.declared import declared
from shoefind.cli.execution import run_stage
from shoefind.stages.learn import LearnRequest


@declared(LearnRequest, dataset_argument=True)
def learn(request: LearnRequest, json_out: o.Json = False, prefect: o.Prefect = False):
    """Learn few-shot, CoOp and CoCoOp classifiers from the labeled photos, compare them with zero-shot on a
    held-out split, and save them for inference (the best one is used). `--method finetune` fine-tunes
    the CLIP model (its text tower and last visual blocks, WiSE-FT weighted) into a checkpoint for --model.
    `--method lit` trains a text tower against the frozen image embeddings (a new one for an image backbone
    such as efficientnet-lite0, CLIP's own for a CLIP model) into a checkpoint every command takes as --model."""
    request.trains_a_model()                       # lit/finetune with other methods: refused before any work
    request.dataset_paths()
    result = run_stage("learn", prefect, request)
    if not isinstance(result, dict):               # classifiers: the run folder
        show_run(Path(result), json_out)
    elif json_out:
        print_json({k: result[k] for k in ("checkpoint", "heldout", "heldout_before", "manifest") if k in result})
    else:
        print(Path(result["manifest"]).with_suffix(".md").read_text())
