"""The learning loop's per-round learner work: fit the linear probe on k photos per shoe and score it on
the held-out rest (the `evaluate` split of --seed), from cached embeddings. Prints wall and CPU seconds
per repeat and the held-out top-1, so a change to the learners can be timed before and after on the
same machine (run both in one session: a shared machine's load moves wall times a lot, CPU less).

    .venv/bin/python benchmarks/probe_speed.py ../shared/data/nike-silhouettes --shots 16 [--data-dir DIR]

The first run embeds the photos into --data-dir (efficientnet-lite0: a few minutes on 2 cores).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from shoefind.encoders.load import load_encoder  # noqa: E402
from shoefind.features.cache import EmbeddingCache  # noqa: E402
from shoefind.features.embed import embed_images  # noqa: E402
from shoefind.features.splits import make_split  # noqa: E402
from shoefind.features.table import build_table  # noqa: E402
from shoefind.learn.fewshot import LinearProbe  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dataset")
    ap.add_argument("--model", default="efficientnet-lite0")
    ap.add_argument("--shots", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--data-dir", default=str(REPO / "data"))
    args = ap.parse_args()
    table = build_table(args.dataset)
    encoder = load_encoder(args.model)
    cache = EmbeddingCache.for_encoder(args.data_dir, encoder)
    embed_images(encoder, cache, [(str(table.root / p), s) for p, s in zip(table.images["path"], table.images["sha256"])])
    labeled = table.labeled_images()
    split = make_split(labeled[["path", "sha256", "shoe"]], [args.shots], args.seed)
    classes = table.shoes["shoe"].tolist()
    train, test = split.train(args.shots), split.test()
    train_x, test_x = cache.matrix(train["sha256"].tolist()), cache.matrix(test["sha256"].tolist())
    train_y = np.array([classes.index(s) for s in train["shoe"]])
    test_y = np.array([classes.index(s) for s in test["shoe"]])
    print(f"{args.dataset}: {len(classes)} shoes, {len(train)} training and {len(test)} held-out photos "
          f"({args.model}, {args.shots} shots, seed {args.seed})")
    for i in range(args.repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        probe = LinearProbe.fit(train_x, train_y, classes)
        top1 = float((probe.logits(test_x).argmax(axis=1) == test_y).mean())
        print(f"repeat {i + 1}: fit + held-out score {time.perf_counter() - wall:.2f} s wall, "
              f"{time.process_time() - cpu:.2f} s CPU; top-1 {top1:.4f} (penalty {probe.decay:g})", flush=True)


if __name__ == "__main__":
    main()
