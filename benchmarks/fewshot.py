"""Few-shot accuracy over several splits: the `fewshot` methods (prototype, Tip-Adapter, Tip-Adapter-F,
linear probe) at k shots per shoe, one evaluate split per seed, for one or more models.

Each seed is `shoefind evaluate DATASET --model M --method fewshot --shots K --seed S` (the same
split and classifiers, shoefind.learn.methods.compare_methods); this prints the top-1 on the
shoe name per seed and the mean and spread, so a method is not chosen on one split's luck.
Embeddings are cached in --data-dir (a later run encodes nothing).

    .venv/bin/python benchmarks/fewshot.py ../shared/data/nike-silhouettes \\
        --models efficientnet-lite0,efficientnet-lite2 --seeds 0,1,2,3,4 --shots 16 [--data-dir DIR]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from shoefind.encoders.load import load_encoder  # noqa: E402
from shoefind.learn.methods import compare_methods  # noqa: E402
from shoefind.features.cache import EmbeddingCache  # noqa: E402
from shoefind.features.embed import embed_images  # noqa: E402
from shoefind.features.table import build_table  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dataset")
    ap.add_argument("--models", default="efficientnet-lite0")
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--shots", type=int, default=16)
    ap.add_argument("--methods", default="fewshot")
    ap.add_argument("--task", default="name")
    ap.add_argument("--data-dir", default=str(REPO / "data"))
    args = ap.parse_args()
    table = build_table(args.dataset)
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = []
    for spec in args.models.split(","):
        encoder = load_encoder(spec)
        cache = EmbeddingCache.for_encoder(args.data_dir, encoder)
        embed_images(encoder, cache, [(str(table.root / p), s) for p, s in
                                      zip(table.images["path"], table.images["sha256"])])
        per_method: dict[str, list[float]] = {}
        for seed in seeds:
            m = compare_methods(encoder, table, cache, args.methods, [args.shots], seed=seed).metrics
            m = m[(m["task"] == args.task) & (m["shots"] == args.shots)]
            for method, top1 in zip(m["method"], m["top1"]):
                per_method.setdefault(method, []).append(float(top1))
                print(f"{spec} seed {seed} {method}: top-1 {top1:.4f}", flush=True)
        rows += [(spec, method, values) for method, values in per_method.items()]
    print(f"\n{args.task} top-1 at {args.shots} shots per shoe, seeds {args.seeds} (one evaluate split each):\n")
    print("| model | method | " + " | ".join(f"seed {s}" for s in seeds) + " | mean | sd |")
    print("|---|---|" + "---|" * (len(seeds) + 2))
    for spec, method, values in rows:
        print(f"| {spec} | {method} | " + " | ".join(f"{v:.3f}" for v in values)
              + f" | {np.mean(values):.3f} | {np.std(values):.3f} |")


if __name__ == "__main__":
    main()
