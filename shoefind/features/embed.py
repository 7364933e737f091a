"""Incremental embedding: encode only images the cache has not seen, in batches.

Decoding runs in a thread pool two batches ahead of the model, one image per job, so the
model waits only for the very first batch; the report says how long it waited (`fill_s`
for the first batch, `decode_wait_s` after it). Threads, not processes: decoding a PNG of
../shared/data/nike-silhouettes and preprocessing it costs ~4 ms of CPU, most of it in zlib
and torch, which release the GIL; 2 threads decoded as fast as 2 processes (measured on
2 cores), without pickling tensors back. JPEGs are decoded at reduced scale (draft mode).
More cores get more decoding threads (half of them, 2 to 8), so a bf16 model stays fed.
Each batch is written to the cache as soon as it is encoded: a crash loses at most the
batch in flight.
"""
from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from shoefind.encoders.base import stack_pixels
from shoefind.features.cache import EmbeddingCache
from shoefind.images import ImageError


@dataclass
class EmbedReport:
    total: int = 0
    cached: int = 0
    encoded: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    fill_s: float = 0.0  # waiting for the first decoded batch (the pipeline filling)
    decode_wait_s: float = 0.0  # the model waiting for decoded images after that
    encode_s: float = 0.0  # the model encoding

    def as_dict(self) -> dict:
        return {"total": self.total, "cached": self.cached, "encoded": self.encoded,
                "failed": [{"path": p, "reason": r} for p, r in self.failed],
                "seconds": {"fill": round(self.fill_s, 3), "decode_wait": round(self.decode_wait_s, 3),
                            "encode": round(self.encode_s, 3)}}


# Batches decoded ahead of the one being encoded: enough to hide a slow image.
AHEAD = 2


def decode_workers() -> int:
    """Decoding threads: half the cores, at least 2, at most 8."""
    return min(8, max(2, (os.cpu_count() or 2) // 2))


def _decode(encoder, path):
    try:
        return encoder.load_image(path)
    except ImageError as exc:
        return exc


# Another process encoding images we need: how often to look whether it has finished, and how
# long to wait without any of them landing before encoding them here anyway (a hung process).
POLL_S = 0.2
STALL_S = 600.0


def embed_images(encoder, cache: EmbeddingCache, items: Sequence[tuple[str, str]],
                 batch_size: int = 32, workers: int | None = None,
                 progress: Callable[[int], None] | None = None) -> EmbedReport:
    """Make sure every (path, sha256) in items has an embedding in cache.

    Images another process is encoding into the same cache right now (see cache.claim) are
    waited for, not encoded twice; if that process dies, its images are encoded here."""
    report = EmbedReport(total=len(items))
    cache.refresh()
    todo, seen = [], set()
    for path, sha in items:
        if sha in cache or sha in seen:
            report.cached += 1
            if progress:
                progress(1)
            continue
        seen.add(sha)
        todo.append((path, sha))
    try:
        waiting = _encode(encoder, cache, todo, batch_size, workers, progress, report)
        last_change = time.monotonic()
        while waiting:
            time.sleep(POLL_S)
            cache.refresh()
            landed = [(p, s) for p, s in waiting if s in cache]
            report.cached += len(landed)
            if progress and landed:
                progress(len(landed))
            rest = [(p, s) for p, s in waiting if s not in cache]
            if landed:
                last_change = time.monotonic()
            if time.monotonic() - last_change > STALL_S:
                # the other process holds its claims but makes no progress: do the work here
                waiting = []
                _encode(encoder, cache, rest, batch_size, workers, progress, report, force=True)
            else:
                waiting = _encode(encoder, cache, rest, batch_size, workers, progress, report)
    finally:
        # only this call's claims: other threads may share this cache object
        cache.release(s for _, s in todo)
    return report


def _encode(encoder, cache: EmbeddingCache, todo: list[tuple[str, str]], batch_size: int, workers: int,
            progress, report: EmbedReport, force: bool = False) -> list[tuple[str, str]]:
    """Encode the items of todo this process can claim; returns those another process holds."""
    waiting: list[tuple[str, str]] = []
    batches = [todo[i:i + batch_size] for i in range(0, len(todo), batch_size)]
    with ThreadPoolExecutor(max_workers=max(1, workers or decode_workers())) as pool:
        # one job per image, so even the first batch is decoded by all threads at once
        def submit(batch):
            if not force:
                claimed, busy = cache.claim(s for _, s in batch)
                busy_set, claimed_set = set(busy), set(claimed)
                waiting.extend(it for it in batch if it[1] in busy_set)
                landed = [it for it in batch if it[1] not in busy_set and it[1] not in claimed_set]
                report.cached += len(landed)
                if progress and landed:
                    progress(len(landed))
                batch[:] = [it for it in batch if it[1] in claimed_set]
            return [pool.submit(_decode, encoder, path) for path, _ in batch]
        pending = [submit(b) for b in batches[:AHEAD]]
        for i, batch in enumerate(batches):
            start = time.perf_counter()
            decoded = [f.result() for f in pending[i]]
            waited = time.perf_counter() - start
            if i == 0:
                report.fill_s += waited
            else:
                report.decode_wait_s += waited
            pending[i] = None  # let the decoded tensors go once encoded
            if i + AHEAD < len(batches):
                pending.append(submit(batches[i + AHEAD]))
            tensors, ok = [], []
            for (path, sha), result in zip(batch, decoded):
                if isinstance(result, ImageError):
                    report.failed.append((str(path), str(result)))
                else:
                    tensors.append(result)
                    ok.append(sha)
            if tensors:
                start = time.perf_counter()
                vecs = encoder.encode_tensors(stack_pixels(tensors))
                report.encode_s += time.perf_counter() - start
                cache.add(ok, vecs)
                report.encoded += len(ok)
            cache.release(s for _, s in batch)
            if progress and batch:
                progress(len(batch))
    return waiting


def embedding_matrix(cache: EmbeddingCache, shas: Sequence[str]) -> tuple[np.ndarray, list[int]]:
    """Embeddings for the shas that are cached, and the indices of those rows."""
    rows = [i for i, s in enumerate(shas) if s in cache]
    return cache.matrix([shas[i] for i in rows]), rows
