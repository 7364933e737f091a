"""Tip-Adapter-F against the official code (gaopengcuhk/Tip-Adapter), re-implemented here on identical inputs:
main.py run_tip_adapter_F (the keys as a bias-free linear layer, AdamW lr 1e-3 eps 1e-4, a cosine over
train_epoch * len(train_loader_F) steps, tip_logits = 100 f W + alpha exp(-(beta - beta f K)) V, trained at the
configs' init_alpha 1.17 / init_beta 1, never renormalised) and utils.build_cache_model (keys: the mean of the
augmented passes, renormalised). Inputs are real: the tiny CLIP's photo and prompt embeddings of the colour task."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from shoefind.learn.methods import task_specs
from shoefind.learn.fewshot import FINETUNE_EPOCHS, FINETUNE_LR, TipAdapter, one_hot

from tests.helpers.colour_task import colours  # noqa: F401  (module fixture: the colour task)


def official_tip_adapter_f(cache_keys, cache_values, train_batches, clip_weights, test_features, alpha, beta,
                           epochs=20, lr=0.001):
    """main.py run_tip_adapter_F's training loop and final logits (no best-epoch pick on the test set,
    which shoefind cannot see)."""
    adapter = nn.Linear(cache_keys.shape[0], cache_keys.shape[1], bias=False)
    adapter.weight = nn.Parameter(cache_keys.t().clone())
    optimizer = torch.optim.AdamW(adapter.parameters(), lr=lr, eps=1e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs * len(train_batches))
    for _ in range(epochs):
        adapter.train()
        for image_features, target in train_batches:
            affinity = adapter(image_features)
            cache_logits = ((-1) * (beta - beta * affinity)).exp() @ cache_values
            clip_logits = 100. * image_features @ clip_weights
            tip_logits = clip_logits + cache_logits * alpha
            loss = F.cross_entropy(tip_logits, target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
    adapter.eval()
    with torch.no_grad():
        affinity = adapter(test_features)
        cache_logits = ((-1) * (beta - beta * affinity)).exp() @ cache_values
        return (100. * test_features @ clip_weights + cache_logits * alpha).numpy()


def test_tip_adapter_f_matches_the_official_loop(colours):  # noqa: F811
    encoder, table, cache = colours
    spec = task_specs(encoder, table)[-1]
    x = cache.matrix(table.images["sha256"].tolist())
    y = spec.labels(table.images)
    train, test = np.arange(len(x)) % 2 == 0, np.arange(len(x)) % 2 == 1
    alpha, beta = TipAdapter.FINETUNE_ALPHA, TipAdapter.FINETUNE_BETA
    assert (alpha, beta, FINETUNE_EPOCHS, FINETUNE_LR) == (1.17, 1.0, 20, 1e-3)   # configs/*.yaml

    ours = TipAdapter.build(x[train], y[train], spec.classes, spec.text, logit_scale=100.0)
    ours.alpha, ours.beta = alpha, beta
    start_keys = ours.keys.copy()
    ours._finetune(x[train], y[train], None, FINETUNE_EPOCHS, FINETUNE_LR, seed=0)

    # the official loop on the same keys, labels, photos and prompts (fewer than 256 photos: one batch)
    keys = torch.from_numpy(start_keys).t()                                  # (D, N) as build_cache_model
    values = torch.from_numpy(one_hot(y[train], len(spec.classes)))
    batches = [(torch.from_numpy(x[train]), torch.from_numpy(y[train]).long())]
    official = official_tip_adapter_f(keys, values, batches, torch.from_numpy(spec.text).t(),
                                      torch.from_numpy(x[test]), alpha, beta)
    delta = float(np.abs(ours.logits(x[test]) - official).max())
    assert delta <= 1e-4, f"max |delta logit| {delta:.2e}"
    assert not np.allclose(ours.keys, start_keys)                           # the keys moved
    # renormalising the trained keys (what shoefind did before) is measurably another model
    renormalised = TipAdapter.build(x[train], y[train], spec.classes, spec.text, logit_scale=100.0,
                                    alpha=alpha, beta=beta, keys=ours.keys / np.linalg.norm(ours.keys, axis=1,
                                                                                            keepdims=True))
    assert float(np.abs(renormalised.logits(x[test]) - official).max()) > 1e-3


def test_cache_keys_are_the_mean_of_the_augmented_passes_and_blend_is_searched_after_training(colours):  # noqa: F811
    encoder, table, cache = colours
    spec = task_specs(encoder, table)[-1]
    x = cache.matrix(table.images["sha256"].tolist())
    y = spec.labels(table.images)
    rng = np.random.default_rng(0)
    views = x[:, None, :] + 0.05 * rng.standard_normal((len(x), 10, x.shape[1])).astype(np.float32)
    views /= np.linalg.norm(views, axis=-1, keepdims=True)
    # utils.build_cache_model: torch.cat(passes).mean(0), then keys /= keys.norm(dim=-1)
    official = torch.from_numpy(views).permute(1, 0, 2).mean(dim=0)
    official /= official.norm(dim=-1, keepdim=True)
    plain = TipAdapter.fit(x, y, spec.classes, spec.text, encoder.logit_scale, views=views)
    assert np.allclose(plain.keys, official.numpy(), atol=1e-6) and plain.selection["views"] == 10
    tuned = TipAdapter.fit(x, y, spec.classes, spec.text, encoder.logit_scale, views=views, finetune=True, epochs=3)
    trained = tuned.selection["finetune"]
    assert (trained["alpha"], trained["beta"]) == (1.17, 1.0)               # trained at the official init
    assert "by" in tuned.selection                                          # then alpha/beta searched again
    assert not np.allclose(np.linalg.norm(tuned.keys, axis=1), 1.0)         # keys kept as trained
