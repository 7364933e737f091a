"""Benchmark: near-duplicate search with the multi-index hashing index.

Synthetic: N random 64-bit hashes, 10% of them planted near copies (1-6 bits flipped);
every hash is queried against the index of all of them (what a filter run does for its new
batch against the dataset). Real: the automatic checks + duplicate search on the converse crawl.

    .venv/bin/python benchmarks/dedupe.py [--sizes 10000 30000 100000] [--distance 6]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shoefind.curate.dedupe import HammingIndex  # noqa: E402

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "converse-crawl"


def synthetic(n: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    hashes = rng.integers(0, 2**63, size=n, dtype=np.uint64) * np.uint64(2) + rng.integers(0, 2, n, dtype=np.uint64)
    planted = n // 10
    src = rng.integers(0, n - planted, planted)
    flips = np.zeros(planted, dtype=np.uint64)
    for k in range(planted):
        for bit in rng.choice(64, rng.integers(1, 7), replace=False):
            flips[k] |= np.uint64(1) << np.uint64(bit)
    hashes[n - planted:] = hashes[src] ^ flips
    return hashes, planted


def bench_synthetic(n: int, distance: int, rng) -> None:
    hashes, planted = synthetic(n, rng)
    t0 = time.perf_counter()
    index = HammingIndex(distance)
    index.add(hashes)
    q, ids, dist = index.query(hashes)
    seconds = time.perf_counter() - t0
    pairs = int((q != ids).sum()) // 2
    print(f"synthetic {n:>7,} hashes, distance <= {distance}: {seconds:6.2f} s "
          f"({pairs:,} near pairs found, {planted:,} planted)")


def bench_real(distance: int) -> None:
    if not SHARED.is_dir():
        print(f"real: {SHARED} absent, skipped")
        return
    from shoefind.curate.crawl_checks import CrawlRules
    from shoefind.curate.filter import run_filter
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        s = run_filter(SHARED, tmp, checker=None, semantic_note="no model (benchmark)",
                       rules=CrawlRules(phash_max_distance=distance)).summary
        seconds = time.perf_counter() - t0
    print(f"real converse-crawl: {s['files']} files in {seconds:.2f} s (hash, decode, check, dedupe, record): "
          f"{s['exact_duplicates']} exact duplicates, {len(s['near_duplicate_groups'])} near-duplicate groups")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 30_000, 100_000])
    ap.add_argument("--distance", type=int, default=6)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    for n in args.sizes:
        bench_synthetic(n, args.distance, rng)
    bench_real(args.distance)


if __name__ == "__main__":
    main()
