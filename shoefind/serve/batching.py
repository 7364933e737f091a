"""Photos of concurrent requests encoded together, in as many model runs side by side as there are cores.

A request decodes its photo in its own thread, then its pixels wait for one of `slots` model runs.
Whoever gets a run encodes every photo waiting at that moment (up to `max_batch`) in one forward
pass, its own or others', so a burst of requests costs a few batched passes instead of a queue of
single ones, and a lone request runs at once (nothing waits for a batch to fill).

On a CPU each run uses one thread (`serving_plan`): on a busy 2-core machine, torch's two-thread run
of one photo took 20 times as long as a one-thread run (its threads wait for each other while the
machine runs something else), and two one-thread runs side by side use both cores anyway; a batch of
4 cost 40% less per photo than 4 single runs. ONNX Runtime spreads one run over every core itself, so
its runs go one at a time, and the int8 runtime is never batched (it quantises a batch's activations
together: a photo's answer would move with its neighbours').
"""
from __future__ import annotations

import os
import sys
import threading

import numpy as np

from shoefind.encoders.base import stack_pixels

MAX_BATCH = 4         # most of the gain (8 cost no less per photo) with fewer activation sizes to allocate


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:          # not Linux
        return os.cpu_count() or 1


def serving_plan(encoder) -> tuple[int, int]:
    """(model runs side by side, photos per run) for this encoder; on a CPU with torch, one thread per run."""
    runtime, device = str(getattr(encoder, "runtime", "torch")), str(getattr(encoder, "device", "cpu"))
    if device != "cpu":
        return 1, MAX_BATCH
    if runtime.startswith("onnx"):
        return 1, 1 if runtime == "onnx-int8" else MAX_BATCH
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    return cores(), MAX_BATCH


class _Waiting:
    __slots__ = ("pixels", "done", "vector", "error")

    def __init__(self, pixels):
        self.pixels, self.done, self.vector, self.error = pixels, threading.Event(), None, None


class EncodeBatcher:
    def __init__(self, encoder, slots: int = 1, max_batch: int = MAX_BATCH):
        self.encoder, self.max_batch = encoder, max(1, max_batch)
        self._runs = threading.BoundedSemaphore(max(1, slots))
        self._lock = threading.Lock()
        self._waiting: list[_Waiting] = []

    def encode(self, pixels: list) -> np.ndarray:
        """Embeddings of preprocessed photos (as encoder.encode_tensors), batched with other requests'."""
        items = [_Waiting(p) for p in pixels]
        with self._lock:
            self._waiting.extend(items)
        for item in items:
            while not item.done.is_set():
                with self._runs:
                    with self._lock:
                        batch, self._waiting = self._waiting[:self.max_batch], self._waiting[self.max_batch:]
                    if batch:
                        self._run(batch)
                if not batch:               # taken by a run in progress: wait for it
                    item.done.wait()
            if item.error is not None:
                raise item.error
        return np.stack([item.vector for item in items]) if items else \
            np.zeros((0, self.encoder.embed_dim), np.float32)

    def _run(self, batch: list[_Waiting]) -> None:
        try:
            vectors = self.encoder.encode_tensors(stack_pixels([b.pixels for b in batch]))
            for b, v in zip(batch, vectors):
                b.vector = v
        except Exception as exc:
            if len(batch) > 1:              # one request's photo must not fail the others': one by one
                for b in batch:
                    self._run([b])
                return
            batch[0].error = exc
        finally:                            # whatever happened, no request waits forever
            for b in batch:
                b.done.set()
