"""Top-k accuracy and confusion counts: the two numbers every score table is made of."""
from __future__ import annotations

import numpy as np


def accuracy_at(truth_idx: np.ndarray, ranked: np.ndarray, k: int) -> float:
    if len(truth_idx) == 0:
        return float("nan")
    return float((ranked[:, :k] == truth_idx[:, None]).any(axis=1).mean())


def confusion_matrix(truth: np.ndarray, pred: np.ndarray, n: int) -> np.ndarray:
    m = np.zeros((n, n), dtype=int)
    np.add.at(m, (truth, pred), 1)
    return m
