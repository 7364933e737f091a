"""Embedding speed: full ViT-B/32 architecture (random weights) on ../shared/data/nike-silhouettes.

Prints images/s at batch 1 and batch 32, and the time of the cache-hit rerun.
    .venv/bin/python benchmarks/embed.py [--limit N] [--threads T]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from shoefind.cache import EmbeddingCache  # noqa: E402
from shoefind.embed import embed_images  # noqa: E402
from shoefind.images import sha256_file  # noqa: E402
from shoefind.model import load_model, make_full_random  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default=str(REPO.parent / "shared" / "data" / "nike-silhouettes"))
    ap.add_argument("--limit", type=int, default=0, help="use only the first N images")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    files = sorted(p for p in Path(args.dataset).rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    if args.limit:
        files = files[: args.limit]
    if not files:
        sys.exit(f"no images under {args.dataset}")
    items = [(str(p), sha256_file(p)) for p in files]
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = make_full_random(Path(tmp) / "vit-b-32-random.pt")
        enc = load_model(str(ckpt), threads=args.threads)
        rows = []
        for bs in (1, 32):
            n = min(len(items), 64) if bs == 1 else len(items)  # batch 1 is slow: a sample is enough
            cache = EmbeddingCache(Path(tmp) / f"emb-{bs}", enc.cache_key)
            t = time.perf_counter()
            report = embed_images(enc, cache, items[:n], batch_size=bs)
            dt = time.perf_counter() - t
            rows.append((f"torch fp32 batch {bs}", report.encoded, dt))
            if bs == 32:
                t = time.perf_counter()
                again = embed_images(enc, EmbeddingCache(Path(tmp) / f"emb-{bs}", enc.cache_key), items, batch_size=bs)
                rerun = time.perf_counter() - t
                assert again.encoded == 0
                first = dt
    print(f"{len(items)} images from {args.dataset} (ViT-B/32, random weights)")
    print(f"{'path':<24}{'images':>8}{'seconds':>10}{'images/s':>10}")
    for name, n, dt in rows:
        print(f"{name:<24}{n:>8}{dt:>10.2f}{n / dt:>10.1f}")
    print(f"{'cache-hit rerun':<24}{len(items):>8}{rerun:>10.3f}   ({rerun / first:.2%} of the first run)")


if __name__ == "__main__":
    main()
