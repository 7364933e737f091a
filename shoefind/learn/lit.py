"""Locked-image tuning (LiT, Zhai et al. 2022): train a text tower against frozen image embeddings.

The image tower never runs here: training reads the cached image embeddings of the training
photos and captions of them (shoefind.learn.captions), and trains only the text side, with a
symmetric InfoNCE loss and a learnable temperature, as CLIP does. Captions about a subset of
labels ("a red shoe") fit many photos of a batch: every photo that fits a caption counts as a
positive for it (the targets are spread over them), photos whose label is unknown are left out
of that caption's terms, and captions that fit no photo (unknown words, absent values) are
negatives only.

`train_text_tower(tower, image_embeddings, captions, settings)` is the reusable part: the tower
is any module with CLIP's text parts (a `TextTower` from scratch, or a CLIP model, whose
visual parameters stay frozen).
"""
from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

# clip_parts: clip's tokenizer without torchvision's import time
from shoefind.encoders.families import clip_parts as clip

from shoefind.encoders.families.openai_clip import text_features
from shoefind.encoders.families.text_tower import text_parameters
from shoefind.learn.captions import Captions
from shoefind.learn.finite import require_finite_loss
from shoefind.learn.hyperparameters import check_hyperparameters

MAX_LOGIT_SCALE = 100.0
# Bump when training gives another model for the same captions, images and settings.
TRAINING_VERSION = 1


@dataclass(frozen=True)
class LitSettings:
    """LiT hyperparameters (saved in the manifest)."""
    steps: int = 150
    batch_size: int = 256           # photos per step (each with one caption that fits it)
    negatives: int = 64             # captions per step that fit no photo
    lr: float = 2e-3
    scale_lr: float = 2e-2          # the temperature learns faster: it starts far from where it ends
    weight_decay: float = 0.01
    warmup: float = 0.1             # fraction of steps the learning rate ramps up (one-cycle schedule)
    width: int = 128                # a tower from scratch: CLIP's text architecture at this width
    layers: int = 3
    heads: int = 2
    precision: str = "auto"         # auto | fp32 | bf16 (autocast while training)
    seed: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainReport:
    steps: int
    seconds: float
    precision: str
    losses: list[float] = field(default_factory=list)     # every 10th step
    final_loss: float = float("nan")
    logit_scale: float = float("nan")
    captions: int = 0
    negative_captions: int = 0
    photos: int = 0

    def as_dict(self) -> dict:
        return {"steps": self.steps, "seconds": round(self.seconds, 2), "precision": self.precision,
                "final_loss": round(self.final_loss, 4), "logit_scale": round(self.logit_scale, 2),
                "captions": self.captions, "negative_captions": self.negative_captions, "photos": self.photos,
                "loss_every_10_steps": [round(x, 4) for x in self.losses]}


def training_precision(settings: LitSettings, tower, device: str = "cpu") -> str:
    """fp32 or bf16: as asked, or (auto) bf16 autocast on a CPU with native bf16 for a tower at least
    256 wide (CLIP's). A 128-wide tower gains little (measured: 0.20 s against 0.21 s a step on
    AVX512-BF16, with length buckets), so it keeps fp32's exact sums."""
    if settings.precision in ("fp32", "bf16"):
        return settings.precision
    from shoefind.encoders.runtimes.precision import bf16_is_fast
    width = int(tower.positional_embedding.shape[-1])
    return "bf16" if width >= 256 and bf16_is_fast(device) else "fp32"


def _text_in_buckets(tower, tokens: torch.Tensor, autocast) -> torch.Tensor:
    """Text features of `tokens` (sorted by length) in two passes, each cut at its own longest
    caption: short captions are not padded to the longest one (about half the work)."""
    cut = len(tokens) // 2
    parts = [slice(0, cut), slice(cut, len(tokens))] if len(tokens) >= 64 else [slice(0, len(tokens))]
    out = []
    for part in parts:
        with autocast():
            out.append(text_features(tower, tokens[part], normalise=False).float())
    return torch.cat(out)


def multi_positive_infonce(logits: torch.Tensor, match: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE where a photo may fit several captions and a caption several photos.

    logits (photos, captions); match 1 fit / 0 no fit / -1 unknown (left out). Photo -> caption:
    softmax over the captions known for the photo, target spread over those that fit. Caption
    -> photo: the same over photos, for captions that fit some photo of the batch.
    """
    known = match >= 0
    fit = (match == 1).float()
    masked = logits.masked_fill(~known, float("-inf"))
    rows = fit.sum(1) > 0
    loss_i = -(F.log_softmax(masked[rows], dim=1).masked_fill(~known[rows], 0) * fit[rows]).sum(1) / fit[rows].sum(1)
    cols = fit.sum(0) > 0
    loss_t = -(F.log_softmax(masked[:, cols], dim=0).masked_fill(~known[:, cols], 0) * fit[:, cols]).sum(0) \
        / fit[:, cols].sum(0)
    return (loss_i.mean() + loss_t.mean()) / 2


def train_text_tower(tower: torch.nn.Module, image_embeddings: np.ndarray, captions: Captions,
                     settings: LitSettings | None = None, progress: Callable[[int], None] | None = None,
                     log: Callable[[str], None] | None = None) -> TrainReport:
    """Train the text parameters of `tower` in place so its caption embeddings meet the (frozen,
    L2-normalised) image embeddings of the photos the captions fit.

    captions.match columns are the rows of image_embeddings. Returns what training did.
    """
    settings = settings or LitSettings()
    check_hyperparameters(**{k: v for k, v in settings.as_dict().items() if k != "precision"})
    say = log or (lambda _m: None)
    torch.manual_seed(settings.seed)
    gen = np.random.default_rng(settings.seed)
    x_all = torch.tensor(np.asarray(image_embeddings, np.float32))
    x_all = F.normalize(x_all, dim=-1)
    tokens = clip.tokenize(captions.texts, truncate=True)
    lengths = (tokens.argmax(dim=-1) + 1).numpy()      # up to the end-of-text token
    fits = captions.match == 1
    fitting = [np.flatnonzero(fits[:, j]) for j in range(fits.shape[1])]
    usable = np.array([j for j, f in enumerate(fitting) if len(f)])
    if len(usable) < 2:
        raise ValueError("LiT needs at least two training photos with a caption")
    negative_rows = np.flatnonzero(~fits.any(axis=1))
    kinds = np.array(captions.kinds) if captions.kinds else np.array(["caption"] * len(captions))
    # per photo, its fitting captions grouped by kind (attribute, name, filtered, phrase): a step
    # picks a kind, then a caption of it, so the many phrase captions do not drown the few name ones
    groups_of = [[rows[kinds[rows] == k] for k in np.unique(kinds[rows])] for rows in fitting]

    trainable = text_parameters(tower)
    for p in tower.parameters():
        p.requires_grad_(False)
    for p in trainable.values():
        p.requires_grad_(True)
    sparse = [p for n, p in trainable.items() if n == "token_embedding.weight" and tower.token_embedding.sparse]
    scale = [p for n, p in trainable.items() if n == "logit_scale"]
    dense = [p for n, p in trainable.items() if n != "logit_scale" and not any(p is q for q in sparse)]
    groups = [{"params": dense, "lr": settings.lr}, {"params": scale, "lr": settings.scale_lr, "weight_decay": 0.0}]
    optimizers = [torch.optim.AdamW(groups, weight_decay=settings.weight_decay)]
    if sparse:
        optimizers.append(torch.optim.SparseAdam(sparse, lr=settings.lr))
    warm = max(1, int(round(settings.warmup * settings.steps)))

    def factor(step: int) -> float:
        """Linear warm-up, then a cosine down to zero (a one-cycle schedule)."""
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, settings.steps - warm)))
    schedulers = [torch.optim.lr_scheduler.LambdaLR(o, factor) for o in optimizers]
    precision = training_precision(settings, tower)
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if precision == "bf16" else nullcontext
    report = TrainReport(settings.steps, 0.0, precision, captions=len(captions),
                         negative_captions=len(negative_rows), photos=len(usable))
    was_training = tower.training
    tower.train()
    start = time.perf_counter()
    for step in range(settings.steps):
        batch = gen.choice(usable, size=min(settings.batch_size, len(usable)), replace=False)
        chosen = np.array([_pick(groups_of[j], gen) for j in batch])
        if len(negative_rows) and settings.negatives:
            chosen = np.concatenate([chosen, gen.choice(negative_rows, size=min(settings.negatives,
                                                                                len(negative_rows)), replace=False)])
        chosen = np.unique(chosen)
        chosen = chosen[np.argsort(lengths[chosen], kind="stable")]
        match = torch.from_numpy(captions.match[np.ix_(chosen, batch)].T.astype(np.int64))
        text = F.normalize(_text_in_buckets(tower, tokens[chosen], autocast), dim=-1)
        logit_scale = tower.logit_scale.exp().clamp(max=MAX_LOGIT_SCALE)
        loss = multi_positive_infonce(logit_scale * x_all[batch] @ text.T, match)
        require_finite_loss(loss, f"step {step + 1}", "LiT training", f"learning rate {settings.lr}")
        for o in optimizers:
            o.zero_grad(set_to_none=True)
        loss.backward()
        for o, s in zip(optimizers, schedulers):
            o.step()
            s.step()
        with torch.no_grad():
            tower.logit_scale.clamp_(0, math.log(MAX_LOGIT_SCALE))
        if step % 10 == 0 or step == settings.steps - 1:
            report.losses.append(float(loss.item()))
        if step % 25 == 0 or step == settings.steps - 1:
            say(f"LiT step {step + 1}/{settings.steps}: loss {loss.item():.3f}, "
                f"temperature 1/{logit_scale.item():.1f}, {time.perf_counter() - start:.0f}s")
        if progress:
            progress(1)
    report.seconds = time.perf_counter() - start
    report.final_loss = float(loss.item())
    report.logit_scale = float(tower.logit_scale.exp().item())
    for p in tower.parameters():
        p.requires_grad_(False)
    tower.train(was_training)
    tower.eval()
    return report


def _pick(groups: list[np.ndarray], gen: np.random.Generator) -> int:
    rows = groups[gen.integers(len(groups))]
    return int(rows[gen.integers(len(rows))])
