"""CoOp prompt learning (Zhou et al. 2022): learnable context vectors before the class tokens, CLIP frozen.

The prompt of class c is [SOS] ctx_1 .. ctx_n <tokens of the class text> . [EOS]; only the
ctx vectors are trained, through CLIP's own text tower (token_embedding, transformer,
ln_final, text_projection), against cached image embeddings. Context is shared by all
classes or class-specific.

Because CLIP's text attention is causal, the feature at [EOS] depends only on the tokens
before it: prompts are cut after the longest [EOS] instead of padded to 77 tokens, which
makes training several times faster and changes no number.

A class with no training photo (a shoe added after training) keeps its zero-shot prompt
embedding, so the learned classifier covers the whole current catalog.
"""
from __future__ import annotations

import math
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from torch import nn

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import clip

from shoefind.encoders.base import require_prompt_learning, require_text  # noqa: F401
from shoefind.prompts import load_prompt_set
from shoefind.retrieve.zeroshot import softmax
from shoefind.errors import UserError

ARTIFACT_FORMAT = "shoefind-coop"
ARTIFACT_VERSION = 1
INIT_CONTEXT = "a photo of a"   # CoOp's initialisation for 4 context tokens


def coop_class_texts(task: str, classes: list[str], prompts: str | None = None) -> list[str]:
    """What follows the context, whole ("Dunk Low shoe."): the prompt set's `coop` texts."""
    return load_prompt_set(prompts).coop_texts(task, classes)


class PromptLearner(nn.Module):
    """Text features of `class_texts` with learnable context, through a frozen CLIP text tower."""

    def __init__(self, clip_model, class_texts: list[str], template: str = "{}.", n_ctx: int = 4,
                 class_specific: bool = False, init: str | None = INIT_CONTEXT):
        super().__init__()
        self.clip = clip_model
        for p in clip_model.parameters():
            p.requires_grad_(False)
        placeholder = " ".join(["X"] * n_ctx)
        tokens = clip.tokenize([f"{placeholder} {template.format(t)}" for t in class_texts], truncate=True)
        self.register_buffer("eot", tokens.argmax(dim=-1), persistent=False)
        length = int(self.eot.max()) + 1
        tokens = tokens[:, :length]
        with torch.no_grad():
            emb = clip_model.token_embedding(tokens).float()
        self.register_buffer("prefix", emb[:, :1], persistent=False)          # [SOS]
        self.register_buffer("suffix", emb[:, 1 + n_ctx:], persistent=False)  # class tokens, '.', [EOS]
        width = emb.shape[-1]
        self.n_ctx, self.class_specific, self.n_classes = n_ctx, class_specific, len(class_texts)
        self.ctx = nn.Parameter(self._initial_context(clip_model, n_ctx, width, init))
        if class_specific:
            self.ctx = nn.Parameter(self.ctx.detach().unsqueeze(0).repeat(len(class_texts), 1, 1).clone())
        mask = torch.full((length, length), float("-inf")).triu_(1)
        self.register_buffer("mask", mask, persistent=False)

    @staticmethod
    def _initial_context(clip_model, n_ctx: int, width: int, init: str | None) -> torch.Tensor:
        if init:
            ids = clip.tokenize(init)[0]
            words = ids[1:int(ids.argmax())]
            if len(words) == n_ctx:
                with torch.no_grad():
                    return clip_model.token_embedding(words).float().clone()
        gen = torch.Generator().manual_seed(0)
        return torch.randn(n_ctx, width, generator=gen) * 0.02

    def forward(self) -> torch.Tensor:
        if not self.class_specific:
            return self._forward_shared_prefix()
        m = self.clip
        ctx = self.ctx   # (classes, n_ctx, width)
        x = torch.cat([self.prefix, ctx, self.suffix], dim=1)
        x = x + m.positional_embedding[: x.shape[1]].float()
        x = x.permute(1, 0, 2)  # sequence first, as CLIP's transformer expects
        for block in m.transformer.resblocks:
            x = x + block.attn(block.ln_1(x), block.ln_1(x), block.ln_1(x), need_weights=False,
                               attn_mask=self.mask)[0]
            x = x + block.mlp(block.ln_2(x))
        x = m.ln_final(x.permute(1, 0, 2))
        feats = x[torch.arange(x.shape[0]), self.eot] @ m.text_projection
        return nn.functional.normalize(feats.float(), dim=-1)


    def _forward_shared_prefix(self) -> torch.Tensor:
        """The same features, computing [SOS] + shared context once instead of once per class.

        Causal attention: those first tokens never see the class tokens, so their hidden states
        are the same for every class; the class tokens attend to them as keys and values.
        """
        m = self.clip
        n_prefix = 1 + self.n_ctx
        pos = m.positional_embedding.float()
        head = torch.cat([self.prefix[:1], self.ctx.unsqueeze(0)], dim=1) + pos[:n_prefix]      # (1, P, W)
        tail = self.suffix + pos[n_prefix: n_prefix + self.suffix.shape[1]]                     # (C, S, W)
        n_classes, n_tail, width = tail.shape
        tail_mask = torch.cat([torch.zeros(n_tail, n_prefix), self.mask[n_prefix:, n_prefix:]], dim=1)
        for block in m.transformer.resblocks:
            attn = block.attn
            heads = attn.num_heads

            def split(t):   # (B, T, W) -> (B, heads, T, W / heads)
                return t.view(t.shape[0], t.shape[1], heads, width // heads).transpose(1, 2)

            qh, kh, vh = (split(t) for t in nn.functional.linear(block.ln_1(head), attn.in_proj_weight,
                                                                  attn.in_proj_bias).chunk(3, dim=-1))
            qt, kt, vt = (split(t) for t in nn.functional.linear(block.ln_1(tail), attn.in_proj_weight,
                                                                  attn.in_proj_bias).chunk(3, dim=-1))
            out_head = nn.functional.scaled_dot_product_attention(qh, kh, vh, is_causal=True)
            keys = torch.cat([kh.expand(n_classes, -1, -1, -1), kt], dim=2)
            values = torch.cat([vh.expand(n_classes, -1, -1, -1), vt], dim=2)
            out_tail = nn.functional.scaled_dot_product_attention(qt, keys, values, attn_mask=tail_mask)

            def merge(t):
                return attn.out_proj(t.transpose(1, 2).reshape(t.shape[0], t.shape[2], width))

            head = head + merge(out_head)
            tail = tail + merge(out_tail)
            head = head + block.mlp(block.ln_2(head))
            tail = tail + block.mlp(block.ln_2(tail))
        x = m.ln_final(tail)
        feats = x[torch.arange(n_classes), self.eot - n_prefix] @ m.text_projection
        return nn.functional.normalize(feats.float(), dim=-1)


@dataclass
class CoopClassifier:
    """Learned text features for the trained classes, zero-shot prompt features for the others."""
    task: str
    classes: list[str]
    text: np.ndarray                 # (C, D) the features every photo is compared with
    trained: np.ndarray              # (C,) bool: learned (True) or zero-shot fallback (False)
    logit_scale: float
    ctx: torch.Tensor
    n_ctx: int
    class_specific: bool
    template: str
    trained_classes: list[str]
    model_id: str
    training: dict = field(default_factory=dict)

    name = "coop"

    def logits(self, x: np.ndarray) -> np.ndarray:
        return self.logit_scale * np.asarray(x, np.float32) @ self.text.T

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return softmax(self.logits(x))

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"format": ARTIFACT_FORMAT, "version": ARTIFACT_VERSION, "model_id": self.model_id,
                   "task": self.task, "trained_classes": self.trained_classes,
                   "class_texts": coop_class_texts(self.task, self.trained_classes, self.training.get("prompts")),
                   "template": self.template,
                   "n_ctx": self.n_ctx, "class_specific": self.class_specific, "ctx": self.ctx.detach().cpu(),
                   "training": self.training, "created": datetime.now(timezone.utc).isoformat()}
        tmp = path.with_name(f".{path.name}.tmp")
        torch.save(payload, tmp)
        os.replace(tmp, path)
        return path


def _assemble(task: str, classes: list[str], trained_classes: list[str], learned: np.ndarray,
              fallback: np.ndarray | None, logit_scale: float, **kw) -> CoopClassifier:
    index = {c: i for i, c in enumerate(trained_classes)}
    dim = learned.shape[1]
    text = np.zeros((len(classes), dim), np.float32)
    trained = np.zeros(len(classes), bool)
    for i, c in enumerate(classes):
        if c in index:
            text[i], trained[i] = learned[index[c]], True
        elif fallback is not None:
            text[i] = fallback[i]
    return CoopClassifier(task, list(classes), text, trained, logit_scale, trained_classes=list(trained_classes),
                          **kw)


def _validation_fold(y: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A per-class hold-out mask: about `fraction` of each class with 2+ photos, at least one."""
    rng = np.random.default_rng(seed)
    val = np.zeros(len(y), bool)
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        if len(idx) >= 2:
            n = max(1, int(round(fraction * len(idx))))
            val[rng.choice(idx, size=min(n, len(idx) - 1), replace=False)] = True
    return val


def train_coop(encoder, spec, train_x: np.ndarray, train_y: np.ndarray, n_ctx: int = 4,
               class_specific: bool = False, max_epochs: int = 50, lr: float = 5e-3, eval_every: int = 5,
               patience: int = 3, val_fraction: float = 0.25, seed: int = 0, progress: bool = True,
               threads: int | None = None) -> CoopClassifier:
    """Learn the context for the classes of `spec` that have training photos (full-batch Adam).

    One epoch is one pass of every class prompt through the text tower (the image side is
    cached), so the cost is epochs x classes; starting from "a photo of a" (zero-shot
    quality), a few dozen epochs at lr 5e-3 suffice.

    Early stopping: every `eval_every` epochs the validation fold (held out of the training
    photos) is scored; training stops after `patience` checks without a better validation
    loss, and the best context is kept. Without a validation fold (one photo per class) it
    runs `max_epochs` epochs.
    """
    require_prompt_learning(encoder, "coop")
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    train_y = np.asarray(train_y)
    present = np.unique(train_y)
    trained_classes = [spec.classes[i] for i in present]
    remap = {int(c): i for i, c in enumerate(present)}
    y = torch.tensor([remap[int(c)] for c in train_y], dtype=torch.long)
    x = torch.from_numpy(np.asarray(train_x, np.float32))
    val = _validation_fold(train_y, val_fraction, seed)
    fit, hold = ~val, val
    prompts = getattr(spec, "prompts", None)
    template = "{}"     # the prompt set's coop texts are whole
    learner = PromptLearner(encoder.model, coop_class_texts(spec.task, trained_classes, prompts), template, n_ctx,
                            class_specific)
    scale = encoder.logit_scale
    opt = torch.optim.Adam([learner.ctx], lr=lr)
    best = {"loss": math.inf, "epoch": 0, "ctx": learner.ctx.detach().clone(), "accuracy": None}
    checks_without_gain, epoch = 0, 0
    started = time.perf_counter()
    bar = _progress(progress, f"CoOp {spec.task} ({len(trained_classes)} classes, {int(fit.sum())} photos)",
                    max_epochs)
    xf, yf = x[torch.from_numpy(fit)], y[torch.from_numpy(fit)]
    xv, yv = x[torch.from_numpy(hold)], y[torch.from_numpy(hold)]
    try:
        for epoch in range(1, max_epochs + 1):
            learner.train()
            feats = learner()
            loss = nn.functional.cross_entropy(scale * xf @ feats.T, yf)
            opt.zero_grad()
            loss.backward()
            opt.step()
            note = f"loss {loss.item():.3f}"
            if hold.any() and (epoch % eval_every == 0 or epoch == max_epochs):
                with torch.no_grad():
                    logits = scale * xv @ learner().T
                    vloss = float(nn.functional.cross_entropy(logits, yv))
                    vacc = float((logits.argmax(1) == yv).float().mean())
                note += f"  val loss {vloss:.3f} acc {vacc:.0%}"
                if vloss < best["loss"] - 1e-4:
                    best = {"loss": vloss, "epoch": epoch, "ctx": learner.ctx.detach().clone(), "accuracy": vacc}
                    checks_without_gain = 0
                else:
                    checks_without_gain += 1
            if bar:
                bar.update(bar.task_ids[0], advance=1, note=note)
            if checks_without_gain >= patience:
                break
    finally:
        if bar:
            bar.stop()
    if not hold.any():
        best = {"loss": None, "epoch": epoch, "ctx": learner.ctx.detach().clone(), "accuracy": None}
    with torch.no_grad():
        learner.ctx.copy_(best["ctx"])
        learned = learner().numpy()
    training = {"epochs_run": epoch, "best_epoch": best["epoch"], "val_loss": best["loss"],
                "val_accuracy": best["accuracy"], "val_photos": int(hold.sum()), "fit_photos": int(fit.sum()),
                "stopped_early": epoch < max_epochs, "seconds": round(time.perf_counter() - started, 2),
                "lr": lr, "max_epochs": max_epochs, "prompts": load_prompt_set(prompts).name}
    return _assemble(spec.task, spec.classes, trained_classes, learned, spec.text, scale,
                     ctx=best["ctx"], n_ctx=n_ctx, class_specific=class_specific, template=template,
                     model_id=encoder.model_id, training=training)


def _progress(enabled: bool, description: str, total: int):
    if not enabled:
        return None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TextColumn("{task.fields[note]}"), console=Console(file=sys.stderr))
    bar.add_task(description, total=total, note="")
    bar.start()
    return bar


def load_coop(path: str | os.PathLike, encoder, spec) -> CoopClassifier:
    """A saved CoOp classifier for the current classes of `spec` (new classes: zero-shot prompts)."""
    require_prompt_learning(encoder, "coop")
    payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    if payload.get("format") != ARTIFACT_FORMAT:
        raise UserError(f"{path} is not a shoefind CoOp artifact")
    if int(payload.get("version", 0)) > ARTIFACT_VERSION:
        raise UserError(f"{path} was written by a newer shoefind (CoOp artifact v{payload['version']})")
    if payload["model_id"] != encoder.model_id:
        raise UserError(f"{path} was trained for model {payload['model_id']}, not {encoder.model_id}: "
                         "run `shoefind learn` again with this model")
    if payload["task"] != spec.task:
        raise UserError(f"{path} is for task {payload['task']}, not {spec.task}")
    trained_classes = list(payload["trained_classes"])
    learner = PromptLearner(encoder.model, list(payload["class_texts"]), payload["template"], int(payload["n_ctx"]),
                            bool(payload["class_specific"]), init=None)
    with torch.no_grad():
        learner.ctx.copy_(payload["ctx"])
        learned = learner().numpy()
    return _assemble(spec.task, spec.classes, trained_classes, learned, spec.text, encoder.logit_scale,
                     ctx=payload["ctx"], n_ctx=int(payload["n_ctx"]), class_specific=bool(payload["class_specific"]),
                     template=payload["template"], model_id=payload["model_id"], training=dict(payload["training"]))
