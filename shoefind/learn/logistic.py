"""The linear probe's solver: multinomial logistic regression with an L2 pull towards an anchor,
fitted by L-BFGS in numpy, in the coordinates of the training photos' span.

The objective is mean cross-entropy(scale * Q @ W + b) + decay * ||W - A||^2 for photos Q (n x D),
anchor A (D x C). The loss sees W only through Q @ W, and the penalty's gradient 2 decay (W - A)
stays in A + span(rows of Q) when W starts there (it starts at the anchor, and each penalty starts
from the previous one's solution). So every iterate is W = A + V @ M, with V an orthonormal basis of
that span (r <= n columns). L-BFGS takes only inner products and linear combinations of gradients,
which an orthonormal change of coordinates keeps: the iterates are those of the full problem, at
n x r x C work per step instead of n x D x C (112 x 112 against 112 x 1280 at 16 shots of 7 shoes),
small enough that BLAS never starts its threads, which on a busy 2-core machine cost more than
the arithmetic (torch's threaded solver spent 65 of 124 s in 9,000-element dot products).

`lbfgs` is a port of torch.optim.LBFGS with its strong-Wolfe line search (the probe's optimiser
before), in float64. Its few tests that are not rotation-invariant (the first step's length from the
gradient's L1 norm, the stopping tests on the largest gradient and step coordinate) measure the full
vector; `Norms` maps a vector back only when its Euclidean norm cannot decide, near the end.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

FloatGrad = tuple[float, np.ndarray]


class Norms:
    """max|x| and sum|x| of vectors as the full problem measures them.

    to_full maps span coordinates to the full vector (an orthonormal map: the Euclidean norm is the
    same). The max is decided from ||x||_2 / sqrt(N) <= max|x| <= ||x||_2 when it can be, so the
    full vector is made only near the thresholds. Without to_full, the vectors are the full ones."""

    def __init__(self, to_full: Callable[[np.ndarray], np.ndarray] | None = None, full_size: int = 0):
        self.to_full = to_full
        self.root_n = math.sqrt(full_size) if to_full else 1.0

    def full(self, x: np.ndarray) -> np.ndarray:
        return self.to_full(x) if self.to_full else x

    def l1(self, x: np.ndarray) -> float:
        return float(np.abs(self.full(x)).sum())

    def max_abs(self, x: np.ndarray) -> float:
        return float(np.abs(self.full(x)).max())

    def max_abs_below(self, x: np.ndarray, bound: float, or_equal: bool = True) -> bool:
        """max|x| <= bound (or < bound)."""
        if self.to_full:
            norm = float(np.sqrt(x @ x))
            if norm < bound:
                return True
            if norm / self.root_n > bound:
                return False
        m = self.max_abs(x)
        return m <= bound if or_equal else m < bound


_FULL = Norms()


def _cubic_interpolate(x1, f1, g1, x2, f2, g2, bounds=None) -> float:
    """Minimiser of the cubic through two points with their slopes, clipped to bounds."""
    if bounds is not None:
        xmin_bound, xmax_bound = bounds
    else:
        xmin_bound, xmax_bound = (x1, x2) if x1 <= x2 else (x2, x1)
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1 ** 2 - g1 * g2
    if d2_square >= 0:
        d2 = math.sqrt(d2_square)
        if x1 <= x2:
            min_pos = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
        else:
            min_pos = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
        return min(max(min_pos, xmin_bound), xmax_bound)
    return (xmin_bound + xmax_bound) / 2.0


def _strong_wolfe(obj: Callable[[float], FloatGrad], t: float, d: np.ndarray, f: float, g: np.ndarray, gtd: float,
                  c1: float = 1e-4, c2: float = 0.9, tolerance_change: float = 1e-9,
                  max_ls: int = 25, norms: Norms = _FULL) -> tuple[float, np.ndarray, float, int]:
    """A step length t along d meeting the strong Wolfe conditions (bracket, then zoom)."""
    f_new, g_new = obj(t)
    ls_func_evals = 1
    gtd_new = float(g_new @ d)
    t_prev, f_prev, g_prev, gtd_prev = 0.0, f, g, gtd
    done = False
    ls_iter = 0
    while ls_iter < max_ls:
        if f_new > (f + c1 * t * gtd) or (ls_iter > 1 and f_new >= f_prev):
            bracket, bracket_f, bracket_g, bracket_gtd = [t_prev, t], [f_prev, f_new], [g_prev, g_new], [gtd_prev, gtd_new]
            break
        if abs(gtd_new) <= -c2 * gtd:
            bracket, bracket_f, bracket_g = [t], [f_new], [g_new]
            done = True
            break
        if gtd_new >= 0:
            bracket, bracket_f, bracket_g, bracket_gtd = [t_prev, t], [f_prev, f_new], [g_prev, g_new], [gtd_prev, gtd_new]
            break
        min_step = t + 0.01 * (t - t_prev)
        max_step = t * 10
        tmp = t
        t = _cubic_interpolate(t_prev, f_prev, gtd_prev, t, f_new, gtd_new, bounds=(min_step, max_step))
        t_prev, f_prev, g_prev, gtd_prev = tmp, f_new, g_new, gtd_new
        f_new, g_new = obj(t)
        ls_func_evals += 1
        gtd_new = float(g_new @ d)
        ls_iter += 1
    if ls_iter == max_ls:
        bracket, bracket_f, bracket_g = [0.0, t], [f, f_new], [g, g_new]
        bracket_gtd = [gtd, gtd_new]

    insuf_progress = False
    low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[-1] else (1, 0)
    while not done and ls_iter < max_ls:
        width = abs(bracket[1] - bracket[0])   # torch: width * max|d| < tolerance_change
        if width == 0 or norms.max_abs_below(d, tolerance_change / width, or_equal=False):
            break
        t = _cubic_interpolate(bracket[0], bracket_f[0], bracket_gtd[0], bracket[1], bracket_f[1], bracket_gtd[1])
        eps = 0.1 * (max(bracket) - min(bracket))
        if min(max(bracket) - t, t - min(bracket)) < eps:
            if insuf_progress or t >= max(bracket) or t <= min(bracket):
                t = max(bracket) - eps if abs(t - max(bracket)) < abs(t - min(bracket)) else min(bracket) + eps
                insuf_progress = False
            else:
                insuf_progress = True
        else:
            insuf_progress = False
        f_new, g_new = obj(t)
        ls_func_evals += 1
        gtd_new = float(g_new @ d)
        ls_iter += 1
        if f_new > (f + c1 * t * gtd) or f_new >= bracket_f[low_pos]:
            bracket[high_pos], bracket_f[high_pos], bracket_g[high_pos], bracket_gtd[high_pos] = t, f_new, g_new, gtd_new
            low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True
            elif gtd_new * (bracket[high_pos] - bracket[low_pos]) >= 0:
                bracket[high_pos], bracket_f[high_pos] = bracket[low_pos], bracket_f[low_pos]
                bracket_g[high_pos], bracket_gtd[high_pos] = bracket_g[low_pos], bracket_gtd[low_pos]
            bracket[low_pos], bracket_f[low_pos], bracket_g[low_pos], bracket_gtd[low_pos] = t, f_new, g_new, gtd_new
    return bracket_f[low_pos], bracket_g[low_pos], bracket[low_pos], ls_func_evals


def lbfgs(fg: Callable[[np.ndarray], FloatGrad], x: np.ndarray, max_iter: int = 100, history_size: int = 10,
          tolerance_grad: float = 1e-5, tolerance_change: float = 1e-7, lr: float = 1.0,
          norms: Norms = _FULL) -> np.ndarray:
    """One torch.optim.LBFGS(...).step() with line_search_fn="strong_wolfe", from a fresh state.

    norms: how the full problem measures a vector, when x is in other coordinates (see Norms)."""
    max_eval = max_iter * 5 // 4
    x = np.array(x, np.float64)
    loss, g = fg(x)
    current_evals = 1
    if norms.max_abs_below(g, tolerance_grad):
        return x
    old_dirs: list[np.ndarray] = []
    old_stps: list[np.ndarray] = []
    ro: list[float] = []
    al = [0.0] * history_size
    h_diag = 1.0
    d = t = prev_g = None
    n_iter = 0
    while n_iter < max_iter:
        n_iter += 1
        if n_iter == 1:
            d = -g
        else:
            y = g - prev_g
            s = d * t
            ys = float(y @ s)
            if ys > 1e-10:
                if len(old_dirs) == history_size:
                    old_dirs.pop(0)
                    old_stps.pop(0)
                    ro.pop(0)
                old_dirs.append(y)
                old_stps.append(s)
                ro.append(1.0 / ys)
                h_diag = ys / float(y @ y)
            q = -g
            for i in range(len(old_dirs) - 1, -1, -1):
                al[i] = float(old_stps[i] @ q) * ro[i]
                q = q - al[i] * old_dirs[i]
            d = q * h_diag
            for i in range(len(old_dirs)):
                be_i = float(old_dirs[i] @ d) * ro[i]
                d = d + (al[i] - be_i) * old_stps[i]
        prev_g, prev_loss = g, loss
        if n_iter == 1:
            t = min(1.0, 1.0 / norms.l1(g)) * lr
        else:
            t = lr
        gtd = float(g @ d)
        if gtd > -tolerance_change:
            break
        start = x
        loss, g, t, ls_evals = _strong_wolfe(lambda step: fg(start + step * d), t, d, loss, g, gtd,
                                             max_ls=max_eval - current_evals, norms=norms)
        x = start + t * d
        current_evals += ls_evals
        if n_iter == max_iter or current_evals >= max_eval:
            break
        if norms.max_abs_below(g, tolerance_grad):
            break
        if norms.max_abs_below(d * t, tolerance_change):
            break
        if abs(loss - prev_loss) < tolerance_change:
            break
    return x


@dataclass
class PhotoSpan:
    """Training photos in the coordinates of their span: q = coords @ basis.T (coords n x r, basis D x r)."""
    coords: np.ndarray
    basis: np.ndarray

    @classmethod
    def of(cls, q: np.ndarray) -> "PhotoSpan":
        q = np.asarray(q, np.float64)
        if not len(q):
            return cls(np.zeros((0, 0)), np.zeros((q.shape[1], 0)))
        u, s, vt = np.linalg.svd(q, full_matrices=False)
        r = int((s > s[0] * 1e-9).sum()) if s[0] > 0 else 0
        return cls(u[:, :r] * s[:r], vt[:r].T.copy())


@dataclass
class ProbeFit:
    """One penalised fit: the photos (rows of a PhotoSpan) and their labels; solve() walks penalties."""
    coords: np.ndarray        # (n, r) photos in span coordinates
    offset: np.ndarray        # (n, C) scale * q @ anchor (zeros for a zero anchor)
    y: np.ndarray             # (n,) class index
    n_classes: int
    scale: float
    basis: np.ndarray         # (D, r): for the first step's full-gradient norm

    def __post_init__(self):
        self._onehot = np.eye(self.n_classes)[self.y]
        self._r = self.coords.shape[1]

    def unpack(self, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c = self.n_classes
        return v[:self._r * c].reshape(self._r, c), v[self._r * c:]

    def logits(self, coords: np.ndarray, offset: np.ndarray, v: np.ndarray) -> np.ndarray:
        m, b = self.unpack(v)
        return self.scale * (coords @ m) + offset + b

    def _loss_grad(self, v: np.ndarray, decay: float) -> FloatGrad:
        m, _ = self.unpack(v)
        z = self.logits(self.coords, self.offset, v)
        z = z - z.max(axis=1, keepdims=True)
        log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        n = len(self.y)
        loss = -float((self._onehot * log_p).sum()) / n + decay * float((m * m).sum())
        dz = (np.exp(log_p) - self._onehot) / n
        grad_m = self.scale * (self.coords.T @ dz) + 2.0 * decay * m
        return loss, np.concatenate([grad_m.ravel(), dz.sum(axis=0)])

    def _full(self, v: np.ndarray) -> np.ndarray:
        m, b = self.unpack(v)
        return np.concatenate([(self.basis @ m).ravel(), b])

    def zero(self) -> np.ndarray:
        return np.zeros(self._r * self.n_classes + self.n_classes)

    def solve(self, decay: float, start: np.ndarray, max_iter: int) -> np.ndarray:
        norms = Norms(self._full, (self.basis.shape[0] + 1) * self.n_classes)
        return lbfgs(lambda v: self._loss_grad(v, decay), start, max_iter=max_iter, norms=norms)

    def weights(self, v: np.ndarray, anchor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(W = anchor + basis @ M (D x C), b) in float32."""
        m, b = self.unpack(v)
        return (anchor + self.basis @ m).astype(np.float32), b.astype(np.float32)
