"""Partial fine-tuning of CLIP on a catalog: the text tower and the last k visual blocks, then WiSE-FT.

Training is classification through prompts (as FLYP and zero-shot-initialised fine-tuning
do): each photo's embedding against the prompt embeddings of every shoe of the catalog,
cross-entropy on its own shoe, with both towers' trainable parts updated. Afterwards the
trained weights are interpolated with the original ones (WiSE-FT, Wortsman et al. 2022):
theta = (1 - alpha) * theta_0 + alpha * theta_ft, which keeps zero-shot robustness.

A held-out split (by photo; by shoe where shoes have colourways to spare is left to the
caller through `heldout_shoes`) never trains; its zero-shot top-1 before and after is in
the manifest. A non-finite loss stops training and non-finite weights are never written
(shoefind.learn.finite): the command ends with exit code 2. The checkpoint is a state dict that `clip.load(path)` reads (so every command
takes it through `--model PATH`), written to a temporary name and renamed: a killed run
leaves the previous checkpoint intact. The manifest (JSON and markdown) sits next to it.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from shoefind.encoders.base import stack_pixels
from shoefind.errors import UserError
from shoefind.images import sha256_file
from shoefind.learn.finite import require_finite_loss, require_finite_weights, require_sound_base
from shoefind.learn.hyperparameters import check_hyperparameters

MANIFEST_FORMAT = "shoefind-finetune"
MANIFEST_VERSION = 1


def caption(name: str) -> str:
    return f"a photo of a {name} shoe."


def fast_bf16_cpu() -> bool:
    """Whether this CPU runs bf16 matrix maths natively (AMX or AVX512-BF16), read at run time."""
    try:
        from shoefind.encoders.runtimes.capability import detect   # the runtime chooser's probe, when present
        return bool(detect().fast_bf16)
    except ImportError:
        pass
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="ignore")
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def choose_precision(precision: str, device: str) -> str:
    """fp32 | bf16: 'auto' is bf16 on CUDA and on CPUs with native bf16, else fp32."""
    if precision not in ("auto", "fp32", "bf16"):
        raise UserError(f"unknown precision '{precision}': choose auto, fp32 or bf16")
    if precision != "auto":
        return precision
    return "bf16" if device == "cuda" or fast_bf16_cpu() else "fp32"


def trainable_parameters(model, blocks: int) -> dict[str, nn.Parameter]:
    """The text tower (all of it) plus the last `blocks` visual transformer blocks and the visual head."""
    visual = model.visual
    if blocks and not hasattr(visual, "transformer"):
        raise UserError("--blocks applies to ViT CLIP models; this one has a ResNet image tower (use --blocks 0)")
    n_blocks = len(visual.transformer.resblocks) if hasattr(visual, "transformer") else 0
    if blocks < 0 or blocks > n_blocks:
        raise UserError(f"--blocks {blocks}: the image tower has {n_blocks} blocks (give 0 to {n_blocks})")
    names = {}
    for name, p in model.named_parameters():
        text = not name.startswith("visual.") and name != "logit_scale"
        tail = blocks and any(name.startswith(f"visual.transformer.resblocks.{i}.")
                              for i in range(n_blocks - blocks, n_blocks))
        head = blocks and name in ("visual.proj", "visual.ln_post.weight", "visual.ln_post.bias")
        if text or tail or head:
            names[name] = p
    return names


def wise_ft(original: dict[str, torch.Tensor], tuned: dict[str, torch.Tensor], alpha: float) -> dict:
    """WiSE-FT: (1 - alpha) * original + alpha * tuned, for every tensor of the state dict."""
    if not 0.0 <= alpha <= 1.0:
        raise UserError(f"--alpha {alpha}: give a weight between 0 (original) and 1 (fine-tuned)")
    return {k: ((1 - alpha) * original[k].float() + alpha * tuned[k].float()).to(original[k].dtype)
            if original[k].is_floating_point() else tuned[k] for k in tuned}


def heldout_split(images: pd.DataFrame, fraction: float = 0.2, seed: int = 0,
                  heldout_shoes: list[str] | None = None) -> np.ndarray:
    """A boolean held-out mask: about `fraction` of each shoe's photos (by content hash, so it is
    reproducible), never a shoe's only photo; plus every photo of `heldout_shoes`."""
    held = np.zeros(len(images), bool)
    for _shoe, group in images.groupby("shoe", sort=True):
        order = sorted(group.index, key=lambda i: hashlib.sha256(f"{seed}|{images.at[i, 'sha256']}".encode()).hexdigest())
        n = min(len(order) - 1, int(round(fraction * len(order))))
        held[[images.index.get_loc(i) for i in order[:max(0, n)]]] = True
    if heldout_shoes:
        held |= images["shoe"].isin(heldout_shoes).to_numpy()
    return held


def _text_features(model, captions: list[str]) -> torch.Tensor:
    from shoefind.encoders.families.clip_parts import tokenize
    tokens = tokenize(captions, truncate=True).to(model.text_projection.device)
    return nn.functional.normalize(model.encode_text(tokens).float(), dim=-1)


def _image_features(model, pixels: torch.Tensor) -> torch.Tensor:
    return nn.functional.normalize(model.encode_image(pixels).float(), dim=-1)


@torch.no_grad()
def zero_shot_top1(model, pixels: torch.Tensor, labels: torch.Tensor, captions: list[str], batch: int = 64) -> float:
    """Top-1 of the catalog's prompts on these photos (nan without photos)."""
    if not len(labels):
        return float("nan")
    text = _text_features(model, captions)
    hits = 0
    for i in range(0, len(labels), batch):
        pred = (_image_features(model, pixels[i:i + batch]) @ text.T).argmax(1)
        hits += int((pred.cpu() == labels[i:i + batch]).sum())
    return hits / len(labels)


def table_hash(images: pd.DataFrame) -> str:
    """What the training data was: every (photo hash, shoe) pair, order-free."""
    rows = sorted(f"{s}\t{shoe}" for s, shoe in zip(images["sha256"], images["shoe"]))
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()


@dataclass
class FinetuneResult:
    checkpoint: Path
    manifest: dict

    @property
    def heldout(self) -> dict:
        return self.manifest["heldout"]


def finetune_clip(encoder, base_checkpoint: str | os.PathLike | None, table, out: str | os.PathLike,
                  blocks: int = 2, alpha: float = 0.5, epochs: int = 5, lr: float = 1e-5,
                  weight_decay: float = 0.1, batch_size: int = 32, seed: int = 0, precision: str = "auto",
                  device: str | None = None, heldout_fraction: float = 0.2, heldout_shoes: list[str] | None = None,
                  progress=None, after_step=None) -> FinetuneResult:
    """Fine-tune `encoder` (a torch ClipEncoder) on the labeled photos of `table`, write the WiSE-FT
    checkpoint to `out` (atomically) and its manifest next to it (out + .json / .md).

    after_step(step) is called after every optimiser step (progress; tests stop a run with it).
    """
    check_hyperparameters(blocks=blocks, alpha=alpha, epochs=epochs, lr=lr, weight_decay=weight_decay,
                          batch_size=batch_size, seed=seed)
    if not getattr(encoder, "has_text", False) or getattr(encoder, "family", "clip") != "clip" \
            or not hasattr(encoder, "model") or not hasattr(encoder.model, "encode_text"):
        raise UserError(f"--method finetune fine-tunes a CLIP model; {encoder.model_id} is not one "
                        "(an OpenAI CLIP model or checkpoint; for an image-only backbone use --method lit)")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    precision = choose_precision(precision, device)
    started = time.perf_counter()
    labeled = table.labeled_images().reset_index(drop=True)
    shoes = sorted(labeled["shoe"].unique())
    if len(shoes) < 2:
        raise UserError("fine-tuning needs photos of at least 2 shoes (it learns to tell them apart)")
    held = heldout_split(labeled, heldout_fraction, seed, heldout_shoes)
    if held.all() or not held.any():
        raise UserError(f"too few photos to keep a held-out split ({len(labeled)} photos of {len(shoes)} shoes); "
                        "add photos (a shoe needs 2 or more)")
    index = {s: i for i, s in enumerate(shoes)}
    captions = [caption(s) for s in shoes]
    labels = torch.tensor([index[s] for s in labeled["shoe"]])
    pixels = torch.as_tensor(stack_pixels([encoder.load_image(table.root / p) for p in labeled["path"]]))

    import copy
    model = copy.deepcopy(encoder.model).float().to(device)
    original = {k: v.detach().clone() for k, v in model.state_dict().items()}
    require_sound_base(original, encoder.model_id)
    params = trainable_parameters(model, blocks)
    for name, p in model.named_parameters():
        p.requires_grad_(name in params)
    train_idx, held_idx = np.flatnonzero(~held), np.flatnonzero(held)
    hx, hy = pixels[held_idx].to(device), labels[held_idx]
    model.eval()
    before = zero_shot_top1(model, hx, hy, captions)
    opt = torch.optim.AdamW(list(params.values()), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = -(-len(train_idx) // batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, epochs * steps_per_epoch))
    autocast = (torch.autocast(device_type=device, dtype=torch.bfloat16) if precision == "bf16" else nullcontext())
    gen = torch.Generator().manual_seed(seed)
    scale = float(encoder.logit_scale)
    step, losses = 0, []
    model.train()
    for _epoch in range(epochs):
        order = train_idx[torch.randperm(len(train_idx), generator=gen).numpy()]
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            x, y = pixels[idx].to(device), labels[idx].to(device)
            with autocast:
                logits = scale * _image_features(model, x) @ _text_features(model, captions).T
                loss = nn.functional.cross_entropy(logits.float(), y)
            require_finite_loss(loss, f"step {step + 1}", "fine-tuning", f"--lr {lr}: try a smaller one")
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            losses.append(float(loss.detach()))
            if progress:
                progress(1)
            if after_step:
                after_step(step)
    model.eval()
    model.load_state_dict(wise_ft(original, model.state_dict(), alpha))
    after = zero_shot_top1(model, hx, hy, captions)
    train_seconds = time.perf_counter() - started

    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    require_finite_weights(state, "fine-tuning", f"--lr {lr}: try a smaller one")   # before anything is written
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.part")
    torch.save(state, tmp)
    base_path = Path(base_checkpoint) if base_checkpoint else None
    manifest = {
        "format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "method": "finetune",
        "checkpoint": str(out), "created": datetime.now(timezone.utc).isoformat(),
        # what loading compares the checkpoint with (shoefind.encoders.checkpoint_manifest)
        "checkpoint_sha256": sha256_file(tmp),
        "base_model": {"id": encoder.model_id, "path": str(base_path) if base_path else None,
                       "sha256": sha256_file(base_path) if base_path and base_path.is_file() else None},
        "dataset": str(table.root), "table_sha256": table_hash(labeled),
        "split": {"seed": seed, "heldout_fraction": heldout_fraction, "heldout_shoes": heldout_shoes or [],
                  "train_photos": int(len(train_idx)), "heldout_photos": int(len(held_idx)),
                  "heldout_sha256": sorted(labeled.loc[held, "sha256"].tolist())},
        "hyperparameters": {"blocks": blocks, "alpha": alpha, "epochs": epochs, "lr": lr,
                            "weight_decay": weight_decay, "batch_size": batch_size, "optimizer": "AdamW",
                            "schedule": "cosine", "precision": precision, "device": device,
                            "trainable_parameters": int(sum(p.numel() for p in params.values()))},
        "training": {"seconds": round(train_seconds, 2), "steps": step,
                     "first_loss": round(losses[0], 4) if losses else None,
                     "last_loss": round(losses[-1], 4) if losses else None},
        "heldout": {"zero_shot_top1": after, "zero_shot_top1_before": before, "classes": len(shoes)},
    }
    write_manifest(out, manifest)
    os.replace(tmp, out)   # both fully written before the checkpoint is renamed into place
    return FinetuneResult(out, manifest)


def write_manifest(checkpoint: Path, manifest: dict) -> tuple[Path, Path]:
    """<checkpoint>.json and <checkpoint>.md, each written atomically."""
    json_path = checkpoint.with_name(checkpoint.name + ".json")
    md_path = checkpoint.with_name(checkpoint.name + ".md")
    h, hp, sp = manifest["heldout"], manifest["hyperparameters"], manifest["split"]
    fmt = lambda v: "n/a" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.1%}"  # noqa: E731
    md = "\n".join([
        f"# Fine-tuned {manifest['base_model']['id']}",
        "",
        f"- checkpoint: `{manifest['checkpoint']}` (use it with `--model`)",
        f"- base model sha256: `{manifest['base_model']['sha256']}`",
        f"- dataset: `{manifest['dataset']}` (table sha256 `{manifest['table_sha256'][:16]}`)",
        f"- split: {sp['train_photos']} training photos, {sp['heldout_photos']} held out (seed {sp['seed']})",
        f"- text tower + last {hp['blocks']} visual blocks, WiSE-FT alpha {hp['alpha']}, {hp['epochs']} epochs, "
        f"AdamW lr {hp['lr']}, {hp['precision']} on {hp['device']}, {manifest['training']['seconds']} s",
        "",
        "| held-out zero-shot top-1 | before | after |",
        "| --- | --- | --- |",
        f"| {h['classes']} shoes | {fmt(h['zero_shot_top1_before'])} | {fmt(h['zero_shot_top1'])} |",
        "",
    ])
    for path, text in ((json_path, json.dumps(manifest, indent=2, default=float)), (md_path, md)):
        tmp = path.with_name(f".{path.name}.part")
        tmp.write_text(text)
        os.replace(tmp, path)
    return json_path, md_path
