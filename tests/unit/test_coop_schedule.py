"""`--schedule paper` against the official CoOp / CoCoOp scripts and Dassl's scheduler.

Official figures:
- epochs per shot count: KaiyangZhou/CoOp COOP.md (1 shot rn50_ep50, 2 and 4 shots rn50_ep100, 8 and 16
  shots rn50 = 200 epochs); configs/trainers/CoOp/*.yaml: SGD lr 0.002, cosine, WARMUP_EPOCH 1,
  WARMUP_TYPE constant, WARMUP_CONS_LR 1e-5, batch 32; CoCoOp vit_b16_c4_ep10_batch1_ctxv1.yaml: 10 epochs,
  batch 1, N_CTX 4, CTX_INIT "a photo of a"; scripts/coop/main.sh: NCTX 16 with a random start.
- the learning rate per epoch: KaiyangZhou/Dassl.pytorch dassl/optim/lr_scheduler.py
  (ConstantWarmupScheduler over torch's CosineAnnealingLR(optimizer, MAX_EPOCH); WARMUP_RECOUNT True by
  default in dassl/config/defaults.py), stepped once after each epoch (CoOp's trainers/coop.py
  forward_backward calls update_lr after the epoch's last batch).
"""
from __future__ import annotations

import math

import pytest
import torch
from torch.optim.lr_scheduler import CosineAnnealingLR, _LRScheduler

from shoefind.errors import UserError
from shoefind.learn.coop import INIT_CONTEXT, context_tokens, make_schedule, paper_epochs


class ConstantWarmupScheduler(_LRScheduler):
    """dassl/optim/lr_scheduler.py _BaseWarmupScheduler + ConstantWarmupScheduler, as published."""

    def __init__(self, optimizer, successor, warmup_epoch, cons_lr, last_epoch=-1):
        self.successor, self.warmup_epoch, self.cons_lr = successor, warmup_epoch, cons_lr
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        if self.last_epoch >= self.warmup_epoch:
            return self.successor.get_last_lr()
        return [self.cons_lr for _ in self.base_lrs]

    def step(self, epoch=None):
        if self.last_epoch >= self.warmup_epoch:
            self.successor.step(epoch)
            self._last_lr = self.successor.get_last_lr()
        else:
            super().step(epoch)


def dassl_lrs(max_epoch: int, lr: float = 0.002, warmup: int = 1, cons_lr: float = 1e-5) -> list[float]:
    """The learning rate each epoch trains at under Dassl's build_lr_scheduler(cosine, constant warm-up)."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr, momentum=0.9, weight_decay=5e-4)
    sched = ConstantWarmupScheduler(opt, CosineAnnealingLR(opt, float(max_epoch)), warmup, cons_lr)
    out = []
    for _ in range(max_epoch):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()        # update_lr after the epoch's last batch
    return out


def dassl_formula(epoch: int, max_epoch: int, lr: float = 0.002) -> float:
    """Closed form of the above: the warm-up epoch at 1e-5, then lr/2 (1 + cos(pi (e - 1) / max_epoch))."""
    return 1e-5 if epoch == 0 else 0.5 * lr * (1 + math.cos(math.pi * (epoch - 1) / max_epoch))


# shots -> epochs, and the lr at the first, middle and last epoch (0-based), as the official scripts give
OFFICIAL = [
    (1, 50, 1e-5, 0.5 * 0.002 * (1 + math.cos(math.pi * 24 / 50)), 0.5 * 0.002 * (1 + math.cos(math.pi * 48 / 50))),
    (2, 100, 1e-5, 0.5 * 0.002 * (1 + math.cos(math.pi * 49 / 100)), 0.5 * 0.002 * (1 + math.cos(math.pi * 98 / 100))),
    (4, 100, 1e-5, 0.5 * 0.002 * (1 + math.cos(math.pi * 49 / 100)), 0.5 * 0.002 * (1 + math.cos(math.pi * 98 / 100))),
    (8, 200, 1e-5, 0.5 * 0.002 * (1 + math.cos(math.pi * 99 / 200)), 0.5 * 0.002 * (1 + math.cos(math.pi * 198 / 200))),
    (16, 200, 1e-5, 0.5 * 0.002 * (1 + math.cos(math.pi * 99 / 200)), 0.5 * 0.002 * (1 + math.cos(math.pi * 198 / 200))),
]


@pytest.mark.parametrize("shots, epochs, first, middle, last", OFFICIAL)
def test_paper_schedule_is_the_official_scripts(shots, epochs, first, middle, last):
    assert paper_epochs(shots) == epochs
    plan = make_schedule("paper", shots)
    assert (plan.optimizer, plan.lr, plan.momentum, plan.weight_decay, plan.batch_size, plan.epochs) == \
        ("sgd", 0.002, 0.9, 5e-4, 32, epochs)
    assert plan.drop_last
    mid = epochs // 2
    assert [plan.lr_at(0), plan.lr_at(mid), plan.lr_at(epochs - 1)] == pytest.approx([first, middle, last], rel=1e-12)
    # every epoch, against Dassl's own scheduler (torch's CosineAnnealingLR under its warm-up wrapper)
    assert [plan.lr_at(e) for e in range(epochs)] == pytest.approx(dassl_lrs(epochs), rel=1e-9, abs=1e-15)
    assert [plan.lr_at(e) for e in range(epochs)] == pytest.approx([dassl_formula(e, epochs) for e in range(epochs)],
                                                                   rel=1e-9)
    assert plan.lr_at(1) == 0.002        # the cosine starts after the warm-up, not one epoch ahead


def test_cocoop_paper_recipe_and_its_mean_learning_rate():
    plan = make_schedule("paper", 16, conditional=True)
    assert (plan.optimizer, plan.lr, plan.epochs, plan.batch_size, plan.warmup_epochs, plan.warmup_lr) == \
        ("sgd", 0.002, 10, 1, 1, 1e-5)
    ours = [plan.lr_at(e) for e in range(10)]
    assert ours == pytest.approx(dassl_lrs(10), rel=1e-9)
    # one epoch ahead (the old cosine) trained CoCoOp at 0.82x the official mean learning rate
    ahead = [1e-5] + [0.5 * 0.002 * (1 + math.cos(math.pi * e / 10)) for e in range(1, 10)]
    assert sum(ahead) / sum(ours) == pytest.approx(0.82, abs=0.01)
    assert context_tokens(None, INIT_CONTEXT) == 4          # CoCoOp: 4 tokens from "a photo of a"


def test_epochs_between_the_published_shot_counts():
    assert [paper_epochs(k) for k in (3, 5, 7, 9, 15, 32)] == [100, 100, 100, 200, 200, 200]


def test_context_tokens_as_coops_code():
    assert context_tokens(None, "random") == 16              # the paper's M=16 with a random start
    assert context_tokens(8, "random") == 8
    assert context_tokens(None, "a photo of a") == 4         # a phrase sets the count to its tokens
    assert context_tokens(4, "a photo of a") == 4
    assert context_tokens(None, "a photo of a", class_specific=True) == 16
    with pytest.raises(UserError, match="its own 4 tokens"):
        context_tokens(16, "a photo of a")                    # was 12 random + 4 word tokens


def test_fast_schedule_keeps_every_photo():
    plan = make_schedule("fast", 16)
    assert not plan.drop_last and plan.batch_size is None and plan.lr_at(0) == plan.lr_at(30) == 5e-3


def test_paper_schedule_trains_on_per_epoch_views_by_default():
    from shoefind.features.views import COOP_VIEWS, TIP_ADAPTER_VIEWS
    from shoefind.learn.augmented_views import views_plan
    methods = ["tip-adapter", "tip-adapter-f", "coop", "cocoop", "linear-probe"]
    plan = views_plan(methods)            # defaults: CoOp fast (no views), CoCoOp on its paper's schedule
    assert plan == {"tip-adapter": (10, TIP_ADAPTER_VIEWS), "tip-adapter-f": (10, TIP_ADAPTER_VIEWS),
                    "cocoop": (10, COOP_VIEWS)}
    assert views_plan(["coop"], None, {"schedule": "paper"}) == {"coop": (10, COOP_VIEWS)}
    assert COOP_VIEWS.scale == (0.08, 1.0) and TIP_ADAPTER_VIEWS.scale == (0.5, 1.0)   # Dassl's, Tip-Adapter's
    assert views_plan(methods, 0) == {} and set(views_plan(methods, 3)) == set(methods) - {"linear-probe"}
