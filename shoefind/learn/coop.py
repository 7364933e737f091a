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
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from torch import nn

# clip_parts: clip's tokenizer without torchvision's import time
from shoefind.encoders.families import clip_parts as clip

from shoefind.encoders.base import require_prompt_learning, require_text  # noqa: F401
from shoefind.prompts import load_prompt_set
from shoefind.scoring.zeroshot import softmax
from shoefind.errors import UserError
from shoefind.learn.finite import require_finite_loss

ARTIFACT_FORMAT = "shoefind-coop"
ARTIFACT_VERSION = 2   # 2: CoCoOp (conditional + meta_net); v1 files still load
INIT_CONTEXT = "a photo of a"   # CoOp's initialisation for 4 context tokens (CoCoOp's default)
RANDOM_CONTEXT_TOKENS = 16      # CoOp's paper default with a random start (scripts/coop/main.sh NCTX 16)


def coop_class_texts(task: str, classes: list[str], prompts: str | None = None) -> list[str]:
    """What follows the context, whole ("Dunk Low shoe."): the prompt set's `coop` texts."""
    return load_prompt_set(prompts).coop_texts(task, classes)


def _meta_hidden(dim: int) -> int:
    return max(4, dim // 16)   # CoCoOp's bottleneck: embedding dim / 16


class PromptLearner(nn.Module):
    """Text features of `class_texts` with learnable context, through a frozen CLIP text tower.

    init: a phrase (its word embeddings fill the last context slots, any slots before them
    start random, as CoOp does for fewer words than tokens) or None / "random" (N(0, 0.02)).
    Class-specific context always starts random (the paper's setting). With `conditional`
    (CoCoOp) a meta-network maps each image embedding to one token added to every context
    vector, so `forward(images)` returns per-image class features.
    """

    def __init__(self, clip_model, class_texts: list[str], template: str = "{}.", n_ctx: int = 4,
                 class_specific: bool = False, init: str | None = INIT_CONTEXT, conditional: bool = False,
                 seed: int = 0):
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
        self.conditional = conditional
        gen = torch.Generator().manual_seed(seed)
        if class_specific:
            self.ctx = nn.Parameter(torch.randn(len(class_texts), n_ctx, width, generator=gen) * 0.02)
        else:
            self.ctx = nn.Parameter(self._initial_context(clip_model, n_ctx, width, init, gen))
        self.meta_net = None
        if conditional:
            dim = int(clip_model.text_projection.shape[1])
            torch.manual_seed(seed)
            self.meta_net = nn.Sequential(nn.Linear(dim, _meta_hidden(dim)), nn.ReLU(inplace=True),
                                          nn.Linear(_meta_hidden(dim), width))
        mask = torch.full((length, length), float("-inf")).triu_(1)
        self.register_buffer("mask", mask, persistent=False)

    @staticmethod
    def _initial_context(clip_model, n_ctx: int, width: int, init: str | None, gen) -> torch.Tensor:
        ctx = torch.randn(n_ctx, width, generator=gen) * 0.02
        if init and init != "random":
            ids = clip.tokenize(init)[0]
            words = ids[1:int(ids.argmax())]
            if len(words) > n_ctx:
                raise UserError(f"--ctx-init '{init}' is {len(words)} tokens, more than --n-ctx {n_ctx}")
            with torch.no_grad():
                ctx[n_ctx - len(words):] = clip_model.token_embedding(words).float()
        return ctx

    def forward(self, images: torch.Tensor | None = None) -> torch.Tensor:
        """(C, D) class features; with `conditional`, (B, C, D) for the B image embeddings given."""
        if self.conditional:
            if images is None:
                raise ValueError("a conditional (CoCoOp) prompt learner needs the image embeddings")
            shift = self.meta_net(images.float())                  # (B, width)
            return self._forward_shared_prefix(self.ctx.unsqueeze(0) + shift[:, None, :])
        if not self.class_specific:
            return self._forward_shared_prefix(self.ctx.unsqueeze(0))[0]
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

    def _forward_shared_prefix(self, ctx: torch.Tensor) -> torch.Tensor:
        """Features for H context sets (H, n_ctx, W) -> (H, C, D), computing [SOS] + context once
        per set instead of once per class.

        Causal attention: those first tokens never see the class tokens, so their hidden states
        are the same for every class; the class tokens attend to them as keys and values.
        """
        m = self.clip
        n_sets = ctx.shape[0]
        n_prefix = 1 + self.n_ctx
        pos = m.positional_embedding.float()
        head = torch.cat([self.prefix[:1].expand(n_sets, -1, -1), ctx], dim=1) + pos[:n_prefix]   # (H, P, W)
        tail = self.suffix + pos[n_prefix: n_prefix + self.suffix.shape[1]]                         # (C, S, W)
        n_classes, n_tail, width = tail.shape
        tail = tail.unsqueeze(0).expand(n_sets, -1, -1, -1).reshape(n_sets * n_classes, n_tail, width)
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
            keys = torch.cat([kh.repeat_interleave(n_classes, dim=0), kt], dim=2)
            values = torch.cat([vh.repeat_interleave(n_classes, dim=0), vt], dim=2)
            out_tail = nn.functional.scaled_dot_product_attention(qt, keys, values, attn_mask=tail_mask)

            def merge(t):
                return attn.out_proj(t.transpose(1, 2).reshape(t.shape[0], t.shape[2], width))

            head = head + merge(out_head)
            tail = tail + merge(out_tail)
            head = head + block.mlp(block.ln_2(head))
            tail = tail + block.mlp(block.ln_2(tail))
        x = m.ln_final(tail)
        eot = (self.eot - n_prefix).repeat(n_sets)
        feats = x[torch.arange(n_sets * n_classes), eot] @ m.text_projection
        return nn.functional.normalize(feats.float(), dim=-1).view(n_sets, n_classes, -1)

    def logits(self, x: torch.Tensor, scale: float) -> torch.Tensor:
        """(B, C) logits of image embeddings x (B, D) against the learned class features."""
        if self.conditional:
            return scale * torch.einsum("bd,bcd->bc", x, self(x))
        return scale * x @ self().T


@dataclass
class Schedule:
    """How the context is optimised. `paper` is CoOp's published recipe; `fast` is full-batch Adam
    whose epoch count a validation fold picks, then refitted on every photo."""
    name: str
    optimizer: str            # adam | sgd
    lr: float
    epochs: int
    batch_size: int | None    # None: full batch
    warmup_epochs: int = 0
    warmup_lr: float = 1e-5
    momentum: float = 0.9
    weight_decay: float = 0.0
    cosine: bool = False
    validate: bool = False    # pick the epoch count on a held-out fold, then refit on all photos
    drop_last: bool = False   # drop an epoch's last partial batch (Dassl's train loader, when N >= batch)

    def lr_at(self, epoch: int) -> float:
        """Learning rate of 0-based `epoch`, as Dassl's scheduler sets it (dassl/optim/lr_scheduler.py:
        ConstantWarmupScheduler over CosineAnnealingLR(T_max=MAX_EPOCH), stepped after each epoch):
        `warmup_lr` for the warm-up epochs, then the cosine from its start, because with
        WARMUP_RECOUNT (Dassl's default) the cosine counts its epochs from the end of the warm-up:
        epoch e >= w trains at lr/2 (1 + cos(pi (e - w) / epochs))."""
        if epoch < self.warmup_epochs:
            return self.warmup_lr
        if not self.cosine:
            return self.lr
        return 0.5 * self.lr * (1 + math.cos(math.pi * (epoch - self.warmup_epochs) / self.epochs))

    def as_dict(self) -> dict:
        return dict(self.__dict__)


SCHEDULES = ("fast", "paper")
# CoOp keeps the fast schedule: at 16 shots it matched the paper's within 1 point on the demo model
# and on nike-silhouettes with LiT's text tower (benchmarks/coop.py, figures in docs/coop-comparisons.md).
# CoCoOp uses its paper's recipe (batch 1: the meta-network sees one photo a step): full-batch
# training runs the text tower for every photo and class at each step, and fast CoCoOp lost to
# CoOp on new shoes there while the recipe did not.
DEFAULT_SCHEDULE = "fast"
DEFAULT_COCOOP_SCHEDULE = "paper"


def default_schedule(conditional: bool = False) -> str:
    return DEFAULT_COCOOP_SCHEDULE if conditional else DEFAULT_SCHEDULE


# CoOp's scripts (COOP.md: rn50_ep50 at 1 shot, rn50_ep100 at 2 and 4, rn50 (200 epochs) at 8 and 16).
PAPER_EPOCHS = {1: 50, 2: 100, 4: 100, 8: 200, 16: 200}


def paper_epochs(shots: int) -> int:
    """CoOp's epochs for k shots (PAPER_EPOCHS); a k between the published ones takes the epochs of the
    largest published k below it, more than 16 shots 200."""
    published = [k for k in sorted(PAPER_EPOCHS) if k <= max(1, shots)]
    return PAPER_EPOCHS[published[-1]]


def make_schedule(name: str, shots: int, epochs: int | None = None, lr: float | None = None,
                  conditional: bool = False) -> Schedule:
    if name == "paper":
        # configs/trainers/CoOp/*.yaml and CoCoOp/vit_b16_c4_ep10_batch1_ctxv1.yaml: SGD lr 0.002 (Dassl's
        # momentum 0.9, weight decay 5e-4), cosine, one constant warm-up epoch at 1e-5; CoCoOp 10 epochs
        # at batch 1 (the meta-net sees one image a step), CoOp batch 32 and epochs by shots
        if conditional:
            return Schedule("paper", "sgd", lr or 0.002, epochs or 10, 1, 1, 1e-5, 0.9, 5e-4, True, drop_last=True)
        return Schedule("paper", "sgd", lr or 0.002, epochs or paper_epochs(shots), 32, 1, 1e-5, 0.9, 5e-4, True,
                        drop_last=True)
    if name == "fast":
        return Schedule("fast", "adam", lr or 5e-3, epochs or 50, None, validate=True)
    raise UserError(f"unknown CoOp schedule '{name}': choose from {', '.join(SCHEDULES)}")


@dataclass
class CoopClassifier:
    """Learned text features for the trained classes, zero-shot prompt features for the others.

    CoCoOp (`conditional`): every class, trained or not, is scored through the learned context
    plus the image's meta-token, so `logits` runs the text tower per photo.
    """
    task: str
    classes: list[str]
    text: np.ndarray                 # (C, D) the features every photo is compared with (CoOp)
    trained: np.ndarray              # (C,) bool: learned (True) or zero-shot fallback (False)
    logit_scale: float
    ctx: torch.Tensor
    n_ctx: int
    class_specific: bool
    template: str
    trained_classes: list[str]
    model_id: str
    training: dict = field(default_factory=dict)
    learner: PromptLearner | None = None    # CoCoOp: built for `classes`, with its meta-network

    @property
    def name(self) -> str:
        return "cocoop" if self.conditional else "coop"

    @property
    def conditional(self) -> bool:
        return self.learner is not None and self.learner.conditional

    def logits(self, x: np.ndarray, batch: int = 64) -> np.ndarray:
        x = np.asarray(x, np.float32)
        if not self.conditional:
            return self.logit_scale * x @ self.text.T
        out = []
        with torch.no_grad():
            for i in range(0, len(x), batch):
                out.append(self.learner.logits(torch.from_numpy(x[i:i + batch]), self.logit_scale).numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.classes)), np.float32)

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
                   "conditional": self.conditional,
                   "meta_net": ({k: v.detach().cpu() for k, v in self.learner.meta_net.state_dict().items()}
                                if self.conditional else None),
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


def _optimizer(params, schedule: Schedule):
    if schedule.optimizer == "sgd":
        return torch.optim.SGD(params, lr=schedule.lr, momentum=schedule.momentum,
                               weight_decay=schedule.weight_decay)
    return torch.optim.Adam(params, lr=schedule.lr, weight_decay=schedule.weight_decay)


def train_loop(learner: PromptLearner, x: torch.Tensor, y: torch.Tensor, schedule: Schedule, scale: float,
               epochs: int, seed: int = 0, views: torch.Tensor | None = None,
               val: tuple[torch.Tensor, torch.Tensor] | None = None, eval_every: int = 5, patience: int = 3,
               on_epoch=None) -> dict:
    """The one training loop of CoOp and CoCoOp, over cached embeddings (no pixels).

    x: (N, D) photo embeddings; views: (N, V, D) augmented views of the same photos, one drawn
    per photo and epoch (the paper re-augments every epoch). With `val`, every `eval_every`
    epochs the fold is scored and training stops after `patience` checks without a lower
    loss; returns the best epoch and its parameters' state.
    """
    params = [p for p in learner.parameters() if p.requires_grad]
    opt = _optimizer(params, schedule)
    gen = torch.Generator().manual_seed(seed)
    n = len(x)
    batch = schedule.batch_size or n
    best = {"loss": math.inf, "epoch": 0, "state": None, "accuracy": None}
    checks_without_gain, epoch, steps = 0, 0, 0
    for epoch in range(1, epochs + 1):
        learner.train()
        for group in opt.param_groups:
            group["lr"] = schedule.lr_at(epoch - 1)
        if views is not None:
            pick = torch.randint(views.shape[1], (n,), generator=gen)
            xe = views[torch.arange(n), pick]
        else:
            xe = x
        order = torch.randperm(n, generator=gen) if batch < n else torch.arange(n)
        # Dassl's train loader: drop_last=len(data) >= batch_size (fewer photos: one partial batch)
        end = n - n % batch if schedule.drop_last and n >= batch else n
        total, seen = 0.0, 0
        for start in range(0, end, batch):
            idx = order[start:start + batch]
            loss = nn.functional.cross_entropy(learner.logits(xe[idx], scale), y[idx])
            require_finite_loss(loss, f"epoch {epoch}", "CoOp training", f"learning rate {schedule.lr}")
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            seen += len(idx)
            steps += 1
        note = f"loss {total / max(seen, 1):.3f}"
        if val is not None and len(val[0]) and (epoch % eval_every == 0 or epoch == epochs):
            learner.eval()
            with torch.no_grad():
                logits = learner.logits(val[0], scale)
                vloss = float(nn.functional.cross_entropy(logits, val[1]))
                vacc = float((logits.argmax(1) == val[1]).float().mean())
            note += f"  val loss {vloss:.3f} acc {vacc:.0%}"
            if vloss < best["loss"] - 1e-4:
                best = {"loss": vloss, "epoch": epoch, "accuracy": vacc,
                        "state": {k: v.detach().clone() for k, v in learner.state_dict().items()
                                  if not k.startswith("clip.")}}
                checks_without_gain = 0
            else:
                checks_without_gain += 1
        if on_epoch:
            on_epoch(note)
        if checks_without_gain >= patience:
            break
    best["epochs_run"], best["steps"] = epoch, steps
    return best


def context_tokens(n_ctx: int | None, ctx_init: str | None, class_specific: bool = False) -> int:
    """How many context tokens, as CoOp's code decides (trainers/coop.py PromptLearner): a phrase sets
    them to its own tokens; a random start (or class-specific context) takes `n_ctx`, 16 by default.
    An `n_ctx` that disagrees with the phrase is refused rather than silently padded."""
    if class_specific or not ctx_init or ctx_init == "random":
        return n_ctx or RANDOM_CONTEXT_TOKENS
    ids = clip.tokenize(ctx_init)[0]
    words = int(ids.argmax()) - 1
    if n_ctx is not None and n_ctx != words:
        raise UserError(f"--n-ctx {n_ctx} with --ctx-init '{ctx_init}': a phrase sets the context to its own "
                        f"{words} tokens (as CoOp's code); leave --n-ctx out, or use --ctx-init random for "
                        f"{n_ctx} random tokens")
    return words


def train_coop(encoder, spec, train_x: np.ndarray, train_y: np.ndarray, n_ctx: int | None = None,
               class_specific: bool = False, max_epochs: int | None = None, lr: float | None = None,
               schedule: str | None = None, ctx_init: str | None = INIT_CONTEXT,
               views: np.ndarray | None = None, conditional: bool = False, eval_every: int = 5,
               patience: int = 3, val_fraction: float = 0.25, seed: int = 0, progress: bool = True,
               threads: int | None = None) -> CoopClassifier:
    """Learn the context (CoOp) or context + meta-network (CoCoOp, `conditional`) for the classes
    of `spec` that have training photos, from every one of the k-shot photos.

    schedule "paper": CoOp's scripts: SGD momentum 0.9, wd 5e-4, lr 0.002, cosine, 1 warm-up epoch at
    1e-5 (per epoch as Dassl's scheduler, see Schedule.lr_at), batch 32 with the last partial batch
    dropped, epochs by shots (PAPER_EPOCHS: 50 at 1, 100 at 2-4, 200 at 8-16); CoCoOp: 10 epochs, batch 1.
    schedule None: "fast" for CoOp, "paper" for CoCoOp (see DEFAULT_SCHEDULE).
    n_ctx None: the phrase's tokens (4 for "a photo of a"), 16 with ctx_init "random" (context_tokens).
    schedule "fast": full-batch Adam lr 5e-3 for at most `max_epochs` (50); a validation fold
    (a quarter of each class's photos) picks the epoch count, then the context is refitted on
    every photo for that many epochs. With one photo per class there is no fold: it runs them all.

    views: (N, V, D) cached embeddings of augmented views of the training photos (random
    resized crop + flip), see shoefind.features.views; one is drawn per photo and epoch.
    """
    require_prompt_learning(encoder, "cocoop" if conditional else "coop")
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    train_y = np.asarray(train_y)
    present = np.unique(train_y)
    trained_classes = [spec.classes[i] for i in present]
    remap = {int(c): i for i, c in enumerate(present)}
    y = torch.tensor([remap[int(c)] for c in train_y], dtype=torch.long)
    x = torch.from_numpy(np.asarray(train_x, np.float32))
    v = None if views is None else torch.from_numpy(np.asarray(views, np.float32))
    shots = int(np.bincount(train_y).max()) if len(train_y) else 0
    plan = make_schedule(schedule or default_schedule(conditional), shots, max_epochs, lr, conditional)
    prompts = getattr(spec, "prompts", None)
    template = "{}"     # the prompt set's coop texts are whole
    if class_specific and conditional:
        raise UserError("CoCoOp learns one shared context (with a per-image token): drop --class-specific")
    init = None if class_specific else ctx_init
    n_ctx = context_tokens(n_ctx, init, class_specific)

    def new_learner(texts):
        return PromptLearner(encoder.model, coop_class_texts(spec.task, texts, prompts), template, n_ctx, class_specific,
                             init, conditional=conditional, seed=seed)

    learner = new_learner(trained_classes)
    scale = encoder.logit_scale
    started = time.perf_counter()
    label = "CoCoOp" if conditional else "CoOp"
    epochs = plan.epochs
    val_info = {"val_loss": None, "val_accuracy": None, "val_photos": 0, "best_epoch": None}
    bar = None
    try:
        if plan.validate:
            hold = _validation_fold(train_y, val_fraction, seed)
            if hold.any():
                fit = torch.from_numpy(~hold)
                bar = _progress(progress, f"{label} {spec.task}: choosing epochs on a validation fold", epochs)
                tick = (lambda note: bar.update(bar.task_ids[0], advance=1, note=note)) if bar else None
                best = train_loop(learner, x[fit], y[fit], plan, scale, epochs, seed,
                                  None if v is None else v[fit], (x[~fit], y[~fit]), eval_every, patience, tick)
                if bar:
                    bar.stop()
                    bar = None
                epochs = max(1, best["epoch"])
                val_info = {"val_loss": best["loss"], "val_accuracy": best["accuracy"],
                            "val_photos": int(hold.sum()), "best_epoch": best["epoch"],
                            "validation_epochs_run": best["epochs_run"]}
                learner = new_learner(trained_classes)   # refit from scratch on every photo
        bar = _progress(progress, f"{label} {spec.task} ({len(trained_classes)} classes, {len(x)} photos)", epochs)
        tick = (lambda note: bar.update(bar.task_ids[0], advance=1, note=note)) if bar else None
        fitted = train_loop(learner, x, y, plan, scale, epochs, seed, v, None, on_epoch=tick)
    finally:
        if bar:
            bar.stop()
    learner.eval()
    training = {"schedule": plan.as_dict(), "epochs_run": fitted["epochs_run"], "steps": fitted["steps"],
                "n_ctx": n_ctx, "fit_photos": len(x),
                "views": 0 if v is None else int(v.shape[1]), "ctx_init": init or "random",
                "prompts": load_prompt_set(prompts).name,
                "seconds": round(time.perf_counter() - started, 2), **val_info}
    ctx = learner.ctx.detach().clone()
    common = dict(ctx=ctx, n_ctx=n_ctx, class_specific=class_specific, template=template,
                  model_id=encoder.model_id, training=training)
    if conditional:
        return _conditional_classifier(encoder, spec, trained_classes, learner, common)
    with torch.no_grad():
        learned = learner().numpy()
    return _assemble(spec.task, spec.classes, trained_classes, learned, spec.text, scale, **common)


def _conditional_classifier(encoder, spec, trained_classes, trained: PromptLearner, common: dict) -> CoopClassifier:
    """CoCoOp over every class of `spec`: the learned context and meta-network, rebuilt for all names."""
    texts = coop_class_texts(spec.task, spec.classes, common["training"].get("prompts"))
    full = PromptLearner(encoder.model, texts, common["template"],
                         common["n_ctx"], False, None, conditional=True)
    with torch.no_grad():
        full.ctx.copy_(trained.ctx)
        full.meta_net.load_state_dict(trained.meta_net.state_dict())
    full.eval()
    seen = set(trained_classes)
    dim = int(encoder.model.text_projection.shape[1])
    return CoopClassifier(spec.task, list(spec.classes), np.zeros((len(spec.classes), dim), np.float32),
                          np.array([c in seen for c in spec.classes]), encoder.logit_scale,
                          trained_classes=list(trained_classes), learner=full, **common)


def context_features(clf: CoopClassifier, encoder, task: str, classes: list[str]) -> np.ndarray:
    """Shared learned context applied to any class names (how CoOp is scored on new classes)."""
    if clf.class_specific:
        raise UserError("class-specific context has no vectors for classes it was not trained on")
    learner = PromptLearner(encoder.model, coop_class_texts(task, classes, clf.training.get("prompts")), clf.template,
                            clf.n_ctx, False, None)
    with torch.no_grad():
        learner.ctx.copy_(clf.ctx)
        return learner().numpy()


def train_cocoop(encoder, spec, train_x: np.ndarray, train_y: np.ndarray, **options) -> CoopClassifier:
    """CoCoOp (Zhou et al. 2022): CoOp's loop with a meta-network token added to the context."""
    return train_coop(encoder, spec, train_x, train_y, conditional=True, **options)


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


# What a saved CoOp payload must hold, and of which type (checked before anything is built from it).
_PAYLOAD_TYPES = {"model_id": str, "task": str, "trained_classes": list, "class_texts": list, "template": str,
                  "n_ctx": int, "class_specific": bool, "ctx": torch.Tensor, "training": dict}
MAX_CONTEXT = 64   # learned context tokens: CLIP's 77-token context must still hold the class name


def _damaged(path, why: str) -> UserError:
    from shoefind.artifacts.torch_files import DamagedFile
    return DamagedFile(f"{path} is not a usable CoOp classifier: {why}; run `shoefind learn` again")


def _checked_payload(path: Path, payload, encoder, spec) -> dict:
    """The saved payload, its fields present and of their types, or one line saying what is wrong."""
    if not isinstance(payload, dict) or payload.get("format") != ARTIFACT_FORMAT:
        raise UserError(f"{path} is not a shoefind CoOp artifact")
    version = payload.get("version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise _damaged(path, f"its version is {version!r}")
    if version > ARTIFACT_VERSION:
        raise UserError(f"{path} was written by a newer shoefind (CoOp artifact v{payload['version']})")
    for key, kind in _PAYLOAD_TYPES.items():
        if not isinstance(payload.get(key), kind) or (kind is int and isinstance(payload[key], bool)):
            raise _damaged(path, f"its {key} is missing or not a {kind.__name__}")
    if payload["model_id"] != encoder.model_id:
        raise UserError(f"{path} was trained for model {payload['model_id']}, not {encoder.model_id}: "
                         "run `shoefind learn` again with this model")
    if payload["task"] != spec.task:
        raise UserError(f"{path} is for task {payload['task']}, not {spec.task}")
    if not 1 <= payload["n_ctx"] <= MAX_CONTEXT:
        raise _damaged(path, f"its context length {payload['n_ctx']} is out of range (1 to {MAX_CONTEXT})")
    if not all(isinstance(t, str) for t in payload["class_texts"] + payload["trained_classes"]) \
            or len(payload["class_texts"]) != len(payload["trained_classes"]) or not payload["class_texts"]:
        raise _damaged(path, "its class names do not match its class prompts")
    conditional = payload.get("conditional", False)
    meta = payload.get("meta_net")
    if not isinstance(conditional, bool) or (conditional and not (
            isinstance(meta, dict) and all(isinstance(v, torch.Tensor) for v in meta.values()))):
        raise _damaged(path, "its CoCoOp meta-network is missing")
    return payload


def load_coop(path: str | os.PathLike, encoder, spec) -> CoopClassifier:
    """A saved CoOp / CoCoOp classifier for the current classes of `spec` (new classes: zero-shot
    prompts for CoOp; the learned context with their names for CoCoOp). A code-carrying, truncated or
    edited file, or one holding NaN, is refused with one line."""
    from shoefind.artifacts.finite import require_finite_model
    from shoefind.artifacts.torch_files import load_torch_file
    require_prompt_learning(encoder, "coop")
    path = Path(path)
    payload = _checked_payload(path, load_torch_file(path, "CoOp classifier"), encoder, spec)
    conditional = bool(payload.get("conditional", False))
    tensors = {"ctx": payload["ctx"]} | {f"meta_net.{k}": v for k, v in (payload["meta_net"] or {}).items()}
    require_finite_model(tensors, path, "CoOp classifier", "run `shoefind learn` again")
    trained_classes = list(payload["trained_classes"])
    try:
        learner = PromptLearner(encoder.model, list(payload["class_texts"]), payload["template"], payload["n_ctx"],
                                payload["class_specific"], init=None, conditional=conditional)
        with torch.no_grad():
            learner.ctx.copy_(payload["ctx"])
            if conditional:
                learner.meta_net.load_state_dict(payload["meta_net"])
    except (RuntimeError, ValueError, IndexError, KeyError) as exc:   # shapes that do not fit, a bad template
        raise _damaged(path, f"its context does not fit this model ({type(exc).__name__})") from None
    if learner.ctx.shape != payload["ctx"].shape:   # copy_ broadcasts a smaller tensor: not the one trained
        raise _damaged(path, f"its context has shape {tuple(payload['ctx'].shape)}, this model's is "
                             f"{tuple(learner.ctx.shape)}")
    common = dict(ctx=payload["ctx"], n_ctx=payload["n_ctx"], class_specific=payload["class_specific"],
                  template=payload["template"], model_id=payload["model_id"], training=dict(payload["training"]))
    if conditional:
        return _conditional_classifier(encoder, spec, trained_classes, learner, common)
    with torch.no_grad():
        learned = learner().numpy()
    return _assemble(spec.task, spec.classes, trained_classes, learned, spec.text, encoder.logit_scale, **common)
