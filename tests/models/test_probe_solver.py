"""The linear probe's numpy solver (shoefind/learn/logistic.py) is the optimiser it had before.

The probe used torch.optim.LBFGS (strong Wolfe, 100 iterations, a warm-started path of penalties
chosen on validation folds); it now runs a numpy port of it in the coordinates of the training
photos' span. These tests hold the port to torch itself, in float64 so that rounding cannot hide a
difference in the algorithm: one solve, then the whole fit (folds, penalty choice, final path).
"""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from shoefind.learn.fewshot import (IMAGE_ONLY_SCALE, PROBE_DECAYS, PROBE_DEFAULT_DECAY, PROBE_MAX_ITER,
                                    VALIDATION_FOLDS, FeatureSpace, LinearProbe, PrototypeClassifier, _folds,
                                    _normalise)
from shoefind.learn.logistic import lbfgs
from shoefind.scoring.zeroshot import softmax
from tests.helpers import REPO

import torch  # noqa: E402


@pytest.fixture(autouse=True)
def one_torch_thread():
    """The reference runs thousands of tiny torch ops: on one thread they take seconds, not minutes."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _torch_solve(x, y, n_classes, decay, scale, anchor, w0, b0):
    """The probe's former solver (shoefind.learn.fewshot._train_probe), in float64."""
    xs, ys = torch.from_numpy(np.asarray(x, np.float64)), torch.from_numpy(np.asarray(y)).long()
    a = torch.from_numpy(np.asarray(anchor, np.float64))
    w = torch.tensor(np.asarray(w0, np.float64), requires_grad=True)
    b = torch.tensor(np.asarray(b0, np.float64), requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=PROBE_MAX_ITER, history_size=10,
                            line_search_fn="strong_wolfe", tolerance_grad=1e-5, tolerance_change=1e-7)

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(scale * xs @ w + b, ys) + decay * ((w - a) ** 2).sum()
        loss.backward()
        return loss
    opt.step(closure)
    return w.detach().numpy().copy(), b.detach().numpy().copy()


def _torch_probe(train_x, train_y, n_classes, text=None, logit_scale=100.0):
    """The former LinearProbe.fit, line for line, on the torch solver above: (decay, weights, bias, space)."""
    center = text is None
    space = FeatureSpace.fit(train_x, center)
    scale = logit_scale if text is not None else IMAGE_ONLY_SCALE
    anchor = (np.asarray(text, np.float64).T.copy() if text is not None
              else np.zeros((train_x.shape[1], n_classes)))
    q = space(train_x).astype(np.float64)
    counts = np.bincount(train_y, minlength=n_classes)
    n_folds = min(VALIDATION_FOLDS, int(counts[counts > 0].min()))
    if n_folds >= 2:
        folds = _folds(train_y, n_folds, 0)
        grid = {d: [0.0, 0.0] for d in PROBE_DECAYS}
        for f in range(n_folds):
            w, b = anchor.copy(), np.zeros(n_classes)
            val = folds == f
            for decay in PROBE_DECAYS:
                w, b = _torch_solve(q[~val], train_y[~val], n_classes, decay, scale, anchor, w, b)
                probs = softmax(scale * q[val] @ w + b)
                grid[decay][0] += float((probs.argmax(1) == train_y[val]).sum())
                grid[decay][1] -= float(np.log(probs[np.arange(val.sum()), train_y[val]] + 1e-9).sum())
        decay = max(grid.items(), key=lambda kv: (kv[1][0], -kv[1][1]))[0]
    else:
        decay = PROBE_DEFAULT_DECAY["text" if text is not None else "image-only"]
    w, b = anchor.copy(), np.zeros(n_classes)
    for d in PROBE_DECAYS[:PROBE_DECAYS.index(decay) + 1]:
        w, b = _torch_solve(q, train_y, n_classes, d, scale, anchor, w, b)
    return decay, w, b, space


def _clusters(n_classes: int, shots: int, dim: int, seed: int, spread: float = 0.9):
    """Photos scattered around one centre per class (hard enough that the penalty matters)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_classes, dim))
    y = np.repeat(np.arange(n_classes), shots)
    x = centres[y] + spread * rng.standard_normal((len(y), dim)) * np.sqrt(dim) / 3
    return _normalise(x.astype(np.float32)), y, centres


def test_the_numpy_lbfgs_takes_torchs_steps():
    x, y, _ = _clusters(5, 12, 48, seed=1)
    n, dim, c, scale = len(y), x.shape[1], 5, 30.0
    onehot = np.eye(c)[y]
    xd = x.astype(np.float64)
    for decay in (1.0, 1e-2, 1e-4):
        def loss_grad(v):
            w, b = v[:dim * c].reshape(dim, c), v[dim * c:]
            z = scale * xd @ w + b
            z = z - z.max(1, keepdims=True)
            log_p = z - np.log(np.exp(z).sum(1, keepdims=True))
            dz = (np.exp(log_p) - onehot) / n
            return (-(onehot * log_p).sum() / n + decay * (w * w).sum(),
                    np.concatenate([(scale * xd.T @ dz + 2 * decay * w).ravel(), dz.sum(0)]))
        v = lbfgs(loss_grad, np.zeros(dim * c + c))
        w_t, b_t = _torch_solve(x, y, c, decay, scale, np.zeros((dim, c)), np.zeros((dim, c)), np.zeros(c))
        np.testing.assert_allclose(v[:dim * c].reshape(dim, c), w_t, atol=1e-9)
        np.testing.assert_allclose(v[dim * c:], b_t, atol=1e-9)


@pytest.mark.parametrize("shots, with_text", [(1, False), (3, False), (6, False), (6, True)])
def test_the_probe_fits_what_its_torch_version_fitted(shots, with_text):
    """Same penalty chosen, same weights (folds, choice and the final path included), with and
    without prompts: working in the span of the photos changes no step."""
    n_classes, dim = 6, 96
    x, y, centres = _clusters(n_classes, shots, dim, seed=shots)
    text = _normalise((centres + 0.8 * np.random.default_rng(7).standard_normal(centres.shape)).astype(np.float32)) \
        if with_text else None
    probe = LinearProbe.fit(x, y, [f"c{i}" for i in range(n_classes)], text, logit_scale=50.0)
    decay, w, b, space = _torch_probe(x, y, n_classes, text, logit_scale=50.0)
    assert probe.decay == decay
    test_x, _, _ = _clusters(n_classes, 20, dim, seed=shots + 100)
    expected = probe.logit_scale * space(test_x).astype(np.float64) @ w + b
    np.testing.assert_allclose(probe.logits(test_x), expected, atol=1e-4)   # float32 weights


def test_prototypes_are_the_class_means():
    x, y, _ = _clusters(4, 5, 32, seed=3)
    y = np.where(y == 2, 3, y)     # class 2 has no photo
    proto = PrototypeClassifier.fit(x, y, ["a", "b", "c", "d"])
    q = proto.space(x)
    for c in (0, 1, 3):
        np.testing.assert_allclose(proto.prototypes[c], _normalise(q[y == c].mean(axis=0)), atol=1e-6)
    assert not proto.seen[2] and not proto.prototypes[2].any()
    assert (proto.logits(x).argmax(1) != 2).all()


def test_fitting_the_learners_needs_no_torch_and_one_blas_thread():
    """A process that fits a probe or prototypes from cached embeddings does not import torch, and
    runs numpy's BLAS on one thread (small products; split ones wait for each other)."""
    code = (
        "import sys, numpy as np\n"
        "from threadpoolctl import threadpool_info\n"
        "from shoefind.learn.fewshot import LinearProbe, PrototypeClassifier\n"
        "rng = np.random.default_rng(0)\n"
        "x = rng.standard_normal((40, 64)).astype(np.float32); y = np.repeat(np.arange(4), 10)\n"
        "probe = LinearProbe.fit(x, y, list('abcd')); PrototypeClassifier.fit(x, y, list('abcd'))\n"
        "assert probe.selection['by'].startswith('4 validation folds'), probe.selection\n"
        "print('torch' in sys.modules, sorted({i['num_threads'] for i in threadpool_info() if i['user_api'] == 'blas'}))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "[1]"]
