"""Training-free few-shot classifiers over cached image embeddings.

- `TipAdapter`: a cache model (Tip-Adapter, Zhang et al. 2022): the affinity of a photo to
  the k-shot training photos, exp(-beta (1 - cos)), summed per class and blended with the
  zero-shot prompt logits as zs + alpha * cache. The cache keys are the photos' embeddings, or
  with augmented views cached (10 by default, the official augment_epoch) the renormalised mean
  of the views, as the official build_cache_model. alpha and beta are chosen on 4 validation
  folds of the training photos when every class has 4+ of them, else by leave-one-out (1-2
  shots), so no test photo is looked at.
- `TipAdapter.fit(..., finetune=True)` is Tip-Adapter-F as the official main.py
  run_tip_adapter_F: the cache keys become parameters, trained with AdamW (lr 1e-3, eps 1e-4,
  cosine over every step, 20 epochs, batches of 256) at alpha 1.17, beta 1 (its configs'
  init values) on the training photos (a fresh augmented view per epoch when cached), never
  renormalised; then alpha and beta are searched again with the trained keys.
- `LinearProbe`: multinomial logistic regression on the embeddings (the CLIP paper's linear
  probe). Its L2 penalty pulls the weights towards the class prompt embeddings when there are
  prompts (so a strong penalty is zero-shot), else towards zero; the penalty is chosen on the
  same validation folds as Tip-Adapter's blend. With an image-only backbone it is the best
  few-shot learner here (nike-silhouettes, 16 shots, efficientnet-lite0: about 0.81 top-1
  against Tip-Adapter-F's 0.75 over 5 splits).
- `PrototypeClassifier`: the nearest class mean (the plain baseline).

Both take the zero-shot class text embeddings when the encoder has a text side; a class
with no training photo (a shoe added later) is then still scored by its prompts. With an
image-only backbone there are no prompts: features are centred on the training mean
(SimpleShot) because pooled CNN features all point the same way.

Every classifier has `classes`, `logits(x)` and `predict_proba(x)`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from shoefind.learn.logistic import PhotoSpan, ProbeFit
from shoefind.scoring.zeroshot import softmax
from shoefind.threads import single_threaded_blas

DEFAULT_ALPHA, DEFAULT_BETA = 1.0, 5.5        # Tip-Adapter's published defaults
ALPHAS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
BETAS = (1.0, 2.0, 3.5, 5.5, 8.0, 12.0, 20.0, 35.0)
IMAGE_ONLY_SCALE = 30.0   # softmax temperature for cosine scores without CLIP's logit scale
VALIDATION_MIN_SHOTS = 4  # below this, alpha/beta are chosen leave-one-out (too few photos to hold out)
VALIDATION_FOLDS = 4
FINETUNE_EPOCHS, FINETUNE_LR = 20, 1e-3   # Tip-Adapter-F's recipe
# Linear probe: L2 penalties tried, strongest first (each fit starts from the previous one's weights).
PROBE_DECAYS = tuple(float(f"{10 ** (e / 2):.3g}") for e in range(2, -9, -1))   # 10 ... 1e-4
PROBE_DEFAULT_DECAY = {"text": 1.0, "image-only": 1e-2}   # one shot per class: nothing to validate on
PROBE_MAX_ITER = 100


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / (np.linalg.norm(x, axis=-1, keepdims=True) + 1e-12)


def one_hot(labels: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros((len(labels), n), dtype=np.float32)
    out[np.arange(len(labels)), labels] = 1.0
    return out


@dataclass
class FeatureSpace:
    """Where similarities are measured: raw CLIP space, or centred on the training mean."""
    mean: np.ndarray | None = None

    @classmethod
    def fit(cls, train_x: np.ndarray, center: bool) -> "FeatureSpace":
        return cls(train_x.mean(axis=0).astype(np.float32) if center and len(train_x) else None)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        return _normalise(x - self.mean) if self.mean is not None else x


def _folds(y: np.ndarray, n_folds: int, seed: int = 0) -> np.ndarray:
    """A fold number per photo: each class's photos dealt round-robin in a seeded order."""
    rng = np.random.default_rng(seed)
    folds = np.zeros(len(y), int)
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        folds[idx] = np.arange(len(idx)) % n_folds
    return folds


@dataclass
class TipAdapter:
    classes: list[str]
    keys: np.ndarray                     # (n, D) training embeddings, in `space`
    values: np.ndarray                   # (n, C) one-hot labels
    text: np.ndarray | None              # (C, D) zero-shot class embeddings, or None
    logit_scale: float
    space: FeatureSpace = field(default_factory=FeatureSpace)
    alpha: float = DEFAULT_ALPHA
    beta: float = DEFAULT_BETA
    selection: dict = field(default_factory=dict)   # how alpha/beta were chosen (and the -F training)
    finetuned: bool = False

    @property
    def name(self) -> str:
        return "tip-adapter-f" if self.finetuned else "tip-adapter"

    # Tip-Adapter-F trains at its configs' init_alpha / init_beta (configs/*.yaml), then searches them
    FINETUNE_ALPHA, FINETUNE_BETA = 1.17, 1.0
    FINETUNE_BATCH = 256

    @classmethod
    def fit(cls, train_x: np.ndarray, train_y: np.ndarray, classes: list[str], text: np.ndarray | None = None,
            logit_scale: float = 100.0, center: bool | None = None, views: np.ndarray | None = None,
            finetune: bool = False, epochs: int = FINETUNE_EPOCHS, lr: float = FINETUNE_LR,
            seed: int = 0) -> "TipAdapter":
        """views: (N, V, D) augmented views of the training photos (keys are their mean; -F trains on them)."""
        train_x, train_y = np.asarray(train_x, np.float32), np.asarray(train_y)
        model = cls.build(train_x, train_y, classes, text, logit_scale, center=center)
        if views is not None and len(views):
            model.keys = model.space(cls.view_keys(views))
        trained = None
        if finetune:
            if model.text is not None:
                model.alpha, model.beta = cls.FINETUNE_ALPHA, cls.FINETUNE_BETA
            else:   # no prompts, no official setting: train at the blend the training photos choose
                model._choose_blend(train_x, train_y, seed)
            trained = model._finetune(train_x, train_y, views, epochs, lr, seed)
        model._choose_blend(train_x, train_y, seed)   # with the trained keys, for -F
        if trained:
            model.selection["finetune"] = trained
        if views is not None:
            model.selection["views"] = int(np.asarray(views).shape[1])
        return model

    @staticmethod
    def view_keys(views: np.ndarray) -> np.ndarray:
        """Cache keys from augmented views (N, V, D): their mean, renormalised (the official
        build_cache_model averages augment_epoch passes; it averages before normalising, the view
        cache keeps normalised embeddings only)."""
        return _normalise(np.asarray(views, np.float32).mean(axis=1))

    @classmethod
    def build(cls, train_x: np.ndarray, train_y: np.ndarray, classes: list[str], text: np.ndarray | None = None,
              logit_scale: float = 100.0, alpha: float = DEFAULT_ALPHA, beta: float = DEFAULT_BETA,
              center: bool | None = None, keys: np.ndarray | None = None, finetuned: bool = False) -> "TipAdapter":
        """The cache model with given blend weights (no search): how a saved one is rebuilt.
        keys: the saved cache keys (view-averaged, or trained by Tip-Adapter-F), in the feature space."""
        center = text is None if center is None else center
        space = FeatureSpace.fit(train_x, center)
        model = cls(list(classes), space(np.asarray(train_x, np.float32)) if keys is None else np.asarray(keys, np.float32),
                    one_hot(np.asarray(train_y), len(classes)), None if text is None else np.asarray(text, np.float32),
                    logit_scale if text is not None else IMAGE_ONLY_SCALE, space, alpha, beta)
        model.finetuned = finetuned
        return model

    def _zero_shot(self, x_raw: np.ndarray) -> np.ndarray:
        if self.text is None:
            return np.zeros((len(x_raw), len(self.classes)), np.float32)
        return self.logit_scale * x_raw @ self.text.T

    def _cache(self, q: np.ndarray, beta: float, leave_out_self: bool = False, keys=None, values=None) -> np.ndarray:
        keys = self.keys if keys is None else keys
        affinity = np.exp(-beta * (1.0 - q @ keys.T))
        if leave_out_self:
            np.fill_diagonal(affinity, 0.0)
        return affinity @ (self.values if values is None else values)

    def _choose_blend(self, train_x: np.ndarray, train_y: np.ndarray, seed: int = 0) -> None:
        """Grid search (alpha, beta) by accuracy, then log-loss. With 4+ photos in every class: on
        validation folds (4 folds, each a quarter of every class scored against a cache built from
        the rest, so every photo validates once); with fewer: leave-one-out."""
        counts = np.bincount(train_y, minlength=len(self.classes))
        present = counts[counts > 0]
        if (counts >= 2).sum() == 0:
            # with one shot per class, leaving it out leaves nothing to learn from
            self.selection = {"by": "defaults (1 shot per class: leave-one-out is uninformative)"}
            return
        alphas = ALPHAS if self.text is not None else (1.0,)
        if present.min() >= VALIDATION_MIN_SHOTS:
            folds = _folds(train_y, VALIDATION_FOLDS, seed)
            by = f"{VALIDATION_FOLDS} validation folds of the training photos"
            rounds = []
            for f in range(VALIDATION_FOLDS):
                val = folds == f
                rounds.append((self.space(train_x[val]), train_x[val], train_y[val], self.keys[~val],
                               self.values[~val], False))
        else:
            by = "leave-one-out on the training photos"
            keep = counts[train_y] >= 2
            rounds = [(self.keys[keep], train_x[keep], train_y[keep], self.keys, self.values, keep)]
        grid = {}
        for q, raw, y, keys, values, loo in rounds:
            zs = self._zero_shot(raw) if self.text is not None else 0.0
            for beta in BETAS:
                affinity = np.exp(-beta * (1.0 - q @ keys.T))
                if loo is not False:   # leave-one-out: a photo is not in its own cache
                    affinity[np.arange(len(q)), np.flatnonzero(loo)] = 0.0
                cache = affinity @ values
                for alpha in alphas:
                    if self.text is None:
                        n = values.sum(axis=0)[None, :] - (values[loo] if loo is not False else 0.0)
                        logits = self.logit_scale * cache / np.maximum(n, 1.0)
                    else:
                        logits = zs + alpha * cache
                    probs = softmax(logits)
                    hits, nll = grid.get((alpha, beta), (0.0, 0.0))
                    grid[(alpha, beta)] = (hits + float((probs.argmax(axis=1) == y).sum()),
                                           nll - float(np.log(probs[np.arange(len(y)), y] + 1e-9).sum()))
        photos = sum(len(r[2]) for r in rounds)
        (self.alpha, self.beta), (hits, nll) = max(grid.items(), key=lambda kv: (kv[1][0], -kv[1][1]))
        acc, neg_nll = hits / photos, -nll / photos
        self.selection = {"by": by, "accuracy": acc, "log_loss": -neg_nll, "photos": photos}

    def _finetune(self, train_x: np.ndarray, train_y: np.ndarray, views: np.ndarray | None, epochs: int,
                  lr: float, seed: int) -> dict:
        """Tip-Adapter-F (the official run_tip_adapter_F loop): train the cache keys with AdamW and a
        cosine over every step, at this model's alpha and beta. The keys are never renormalised, during
        training or after: the official adapter is a linear layer whose weights are the keys."""
        import torch
        gen = torch.Generator().manual_seed(seed)
        keys = torch.nn.Parameter(torch.from_numpy(self.keys.copy()))
        values = torch.from_numpy(self.values)
        counts = values.sum(0).clamp(min=1.0)
        text = None if self.text is None else torch.from_numpy(self.text)
        y = torch.from_numpy(np.asarray(train_y)).long()
        x_all = torch.from_numpy(np.asarray(train_x, np.float32))
        v_all = None if views is None else torch.from_numpy(np.asarray(views, np.float32))
        batch = self.FINETUNE_BATCH
        opt = torch.optim.AdamW([keys], lr=lr, eps=1e-4)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * max(1, -(-len(y) // batch)))
        for _epoch in range(epochs):
            if v_all is not None:
                x = v_all[torch.arange(len(y)), torch.randint(v_all.shape[1], (len(y),), generator=gen)]
            else:
                x = x_all
            order = torch.randperm(len(y), generator=gen)
            for start in range(0, len(y), batch):      # every batch, the last partial one too (drop_last=False)
                idx = order[start:start + batch]
                raw = x[idx]
                q = torch.from_numpy(self.space(raw.numpy()))
                cache = torch.exp(-self.beta * (1.0 - q @ keys.T)) @ values
                if text is None:
                    logits = self.logit_scale * cache / counts
                else:
                    logits = self.logit_scale * raw @ text.T + self.alpha * cache
                loss = torch.nn.functional.cross_entropy(logits, y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
        self.keys = keys.detach().numpy().copy()
        self.finetuned = True
        return {"epochs": epochs, "lr": lr, "optimizer": "AdamW", "schedule": "cosine", "batch": batch,
                "alpha": self.alpha, "beta": self.beta, "final_loss": round(float(loss.detach()), 4)}

    def logits(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        return self._blend(self._zero_shot(x), self._cache(self.space(x), self.beta), self.alpha)

    def _blend(self, zs, cache: np.ndarray, alpha: float, leave_out_self: bool = False, values=None) -> np.ndarray:
        if self.text is None:
            # no prompts: the mean affinity per class, so classes with more photos are not favoured
            values = self.values if values is None else values
            counts = values.sum(axis=0)[None, :] - (values if leave_out_self else 0.0)
            return self.logit_scale * cache / np.maximum(counts, 1.0)
        return zs + alpha * cache

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return softmax(self.logits(x))


@dataclass
class LinearProbe:
    """Multinomial logistic regression: logits = scale * space(x) @ weights + bias.

    The penalty decay * ||weights - anchor||^2 pulls towards the class prompt embeddings (with a
    text side: a strong penalty is the zero-shot classifier, and a class without training photos
    keeps its prompt) or towards zero (image-only, on features centred on the training mean).
    decay is chosen on validation folds of the training photos (accuracy, then log-loss). It takes no
    augmented views: on nike-silhouettes (lite0, 16 shots) training on 10 crops per photo as well
    scored lower (0.79 against 0.81; a crop can cut off the collar that tells high from mid).

    Each penalty is fitted by L-BFGS (100 iterations, warm-started from the stronger penalty before
    it) in numpy, in the span of the training photos (shoefind.learn.logistic): the steps torch's
    L-BFGS took on the full weights, at a fraction of the work and without torch. On a busy 2-core
    machine one fit at 16 shots of 7 shoes went from 16-25 s of CPU (torch) to 0.15 s.
    """
    classes: list[str]
    weights: np.ndarray                  # (D, C)
    bias: np.ndarray                     # (C,)
    logit_scale: float
    space: FeatureSpace = field(default_factory=FeatureSpace)
    decay: float = 0.0
    selection: dict = field(default_factory=dict)

    name = "linear-probe"

    @classmethod
    def fit(cls, train_x: np.ndarray, train_y: np.ndarray, classes: list[str], text: np.ndarray | None = None,
            logit_scale: float = 100.0, center: bool | None = None, seed: int = 0,
            decay: float | None = None) -> "LinearProbe":
        """decay: the L2 penalty to use (None: chosen on validation folds of the training photos)."""
        single_threaded_blas()
        train_x, train_y = np.asarray(train_x, np.float32), np.asarray(train_y)
        center = text is None if center is None else center
        space = FeatureSpace.fit(train_x, center)
        scale = logit_scale if text is not None else IMAGE_ONLY_SCALE
        n_classes = len(classes)
        anchor = (np.asarray(text, np.float32).T.copy() if text is not None
                  else np.zeros((train_x.shape[1], n_classes), np.float32))
        q = space(train_x)
        span = PhotoSpan.of(q)
        offset = scale * (q.astype(np.float64) @ anchor) if text is not None else np.zeros((len(q), n_classes))

        def problem(rows: np.ndarray) -> ProbeFit:
            return ProbeFit(span.coords[rows], offset[rows], train_y[rows], n_classes, scale, span.basis)

        counts = np.bincount(train_y, minlength=n_classes)
        present = counts[counts > 0]
        n_folds = min(VALIDATION_FOLDS, int(present.min())) if len(present) else 0
        selection: dict = {}
        if decay is not None:
            selection = {"by": "given"}
        elif n_folds >= 2:
            folds = _folds(train_y, n_folds, seed)
            grid = {d: [0.0, 0.0] for d in PROBE_DECAYS}
            for f in range(n_folds):
                fit, val = problem(folds != f), folds == f
                v = fit.zero()
                for decay in PROBE_DECAYS:   # strongest first, warm-started
                    v = fit.solve(decay, v, PROBE_MAX_ITER)
                    probs = softmax(fit.logits(span.coords[val], offset[val], v))
                    grid[decay][0] += float((probs.argmax(1) == train_y[val]).sum())
                    grid[decay][1] -= float(np.log(probs[np.arange(val.sum()), train_y[val]] + 1e-9).sum())
            decay, (hits, nll) = max(grid.items(), key=lambda kv: (kv[1][0], -kv[1][1]))
            selection = {"by": f"{n_folds} validation folds of the training photos", "accuracy": hits / len(train_y),
                         "log_loss": nll / len(train_y), "photos": int(len(train_y))}
        else:
            decay = PROBE_DEFAULT_DECAY["text" if text is not None else "image-only"]
            selection = {"by": "default (1 shot per class: nothing to validate on)"}
        y_fit = train_y
        fit = problem(np.arange(len(train_y)))
        v = fit.zero()
        for d in PROBE_DECAYS[:PROBE_DECAYS.index(decay) + 1] if decay in PROBE_DECAYS else (decay,):
            v = fit.solve(d, v, PROBE_MAX_ITER)
        w, b = fit.weights(v, anchor)
        seen = counts > 0
        if len(y_fit) and not seen.all():
            # a class without photos learned only "not these photos": with prompts it keeps its prompt
            # and an average bias; image-only, it can never win
            w[:, ~seen] = anchor[:, ~seen]
            b[~seen] = b[seen].mean() if text is not None else b[seen].min() - 10.0
        selection |= {"decay": decay}
        return cls(list(classes), w, b, scale, space, decay, selection)

    def logits(self, x: np.ndarray) -> np.ndarray:
        return self.logit_scale * self.space(np.asarray(x, np.float32)) @ self.weights + self.bias

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return softmax(self.logits(x))


def _prototype_offset(q: np.ndarray, y: np.ndarray, raw: np.ndarray, text: np.ndarray) -> float:
    """How much closer a photo is to its class prototype than to its class prompt, measured
    leave-one-out (the photo's own prototype is built without it; in-sample it is biased upward).
    Classes with one photo cannot leave it out; when no class has two, in-sample is all there is."""
    sums = np.zeros((int(y.max()) + 1, q.shape[1]), np.float32)
    np.add.at(sums, y, q)
    counts = np.bincount(y)
    keep = counts[y] >= 2
    if not keep.any():
        protos = _normalise(sums[y])
    else:
        q, y, raw = q[keep], y[keep], raw[keep]
        protos = _normalise(sums[y] - q)
    return float(((q * protos).sum(1) - (raw * text[y]).sum(1)).mean())


@dataclass
class PrototypeClassifier:
    """Nearest class mean; a class without training photos is scored by its prompt embedding,
    shifted by how much closer photos are to their own prototype than to their own prompt."""
    classes: list[str]
    prototypes: np.ndarray               # (C, D) in `space`; zero rows for classes without photos
    seen: np.ndarray                     # (C,) bool
    text: np.ndarray | None
    logit_scale: float
    space: FeatureSpace = field(default_factory=FeatureSpace)
    text_offset: float = 0.0

    name = "prototype"

    @classmethod
    def fit(cls, train_x: np.ndarray, train_y: np.ndarray, classes: list[str], text: np.ndarray | None = None,
            logit_scale: float = 100.0, center: bool | None = None) -> "PrototypeClassifier":
        single_threaded_blas()
        center = text is None if center is None else center
        space = FeatureSpace.fit(train_x, center)
        q = space(train_x)
        y = np.asarray(train_y)
        counts = np.bincount(y, minlength=len(classes)) if len(y) else np.zeros(len(classes), int)
        seen = counts > 0
        # every class mean in one product (one-hot labels x photos); a class without photos stays zero
        sums = one_hot(y, len(classes)).T @ q if len(y) else np.zeros((len(classes), q.shape[1]), np.float32)
        protos = np.where(seen[:, None], _normalise(sums / np.maximum(counts, 1)[:, None]), 0.0).astype(np.float32)
        offset = 0.0
        if text is not None and len(y):
            text = np.asarray(text, np.float32)
            offset = _prototype_offset(q, y, np.asarray(train_x, np.float32), text)
        return cls(list(classes), protos, seen, text, logit_scale if text is not None else IMAGE_ONLY_SCALE,
                   space, offset)

    def logits(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        scores = self.space(x) @ self.prototypes.T
        if self.text is not None and not self.seen.all():
            unseen = ~self.seen
            scores[:, unseen] = x @ self.text[unseen].T + self.text_offset
        elif not self.seen.all():
            scores[:, ~self.seen] = -1.0   # no photo and no prompt: the lowest possible cosine
        return self.logit_scale * scores

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return softmax(self.logits(x))


@dataclass
class ZeroShotClassifier:
    """Prompt embeddings alone, with the same interface (the baseline every method is compared to)."""
    classes: list[str]
    text: np.ndarray
    logit_scale: float

    name = "zeroshot"

    def logits(self, x: np.ndarray) -> np.ndarray:
        return self.logit_scale * np.asarray(x, np.float32) @ self.text.T

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return softmax(self.logits(x))
