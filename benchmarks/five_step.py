"""Zero-shot 5-step accuracy under each setting: prompt set, step-1 vocabulary, step-2 filter and
empty-filter fallback, on one labeled dataset and model. Prints the attribute, name and both
5-step rows (the deployable rule and the seed's oracle) per setting.

    .venv/bin/python benchmarks/five_step.py DATASET --model MODEL [--data-dir DIR] [--heldout SPLIT_CSV] [--json]

--heldout scores only the photos a LiT checkpoint never trained on (role heldout in the
<checkpoint>.split.csv it writes), e.g. the demo model on the demo catalog.

Settings: `before` is shoefind's earlier behaviour (every vocabulary value, sole in the filter,
relaxing attributes); `default` is now (catalog values, brand/colour/top, best name match);
`seed` is the default with the seed's prompts. With a random tiny model the figures mean nothing.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from shoefind.encoders.load import load_model  # noqa: E402
from shoefind.evaluate.attributes import evaluate_zero_shot  # noqa: E402
from shoefind.features.cache import EmbeddingCache  # noqa: E402
from shoefind.features.embed import embed_images  # noqa: E402
from shoefind.features.table import FeatureTable, build_table  # noqa: E402
from shoefind.scoring.zeroshot import ZeroShotOptions  # noqa: E402

SETTINGS = {
    "before": dict(prompts="shoefind", vocabulary="full", filter_attributes="brand,color,hightop,sole",
                   fallback="relax"),
    "default": dict(),
    "default+relax": dict(fallback="relax"),
    "default+sole": dict(filter_attributes="brand,color,hightop,sole"),
    "seed": dict(prompts="seed"),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dataset")
    ap.add_argument("--model", required=True)
    ap.add_argument("--data-dir", help="where the embedding cache goes (default: a temporary folder)")
    ap.add_argument("--settings", default=",".join(SETTINGS))
    ap.add_argument("--heldout", help="a LiT checkpoint's split csv: score only its held-out photos")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    encoder = load_model(args.model)
    table = build_table(args.dataset)
    if args.heldout:
        import pandas as pd
        split = pd.read_csv(args.heldout, dtype={"sha256": str}, keep_default_na=False)
        held = set(split.loc[split["role"] == "heldout", "sha256"])
        table = FeatureTable(table.root, table.shoes, table.images[table.images["sha256"].isin(held)]
                             .reset_index(drop=True), [], table.layout)
    with tempfile.TemporaryDirectory() as tmp:
        cache = EmbeddingCache(Path(args.data_dir or tmp) / "embeddings", encoder.cache_key)
        embed_images(encoder, cache, [(str(table.root / p), s) for p, s in zip(table.images.path, table.images.sha256)])
        out = {}
        for name in args.settings.split(","):
            ev = evaluate_zero_shot(encoder, table, cache, ZeroShotOptions.parse(**SETTINGS[name]))
            out[name] = {r.task: {"top1": round(r.top1, 4), "top5": None if r.top5 != r.top5 else round(r.top5, 4),
                                  "classes": int(r.classes)} for r in ev.metrics.itertuples()}
    if args.json:
        print(json.dumps({"model": encoder.model_id, "dataset": args.dataset,
                          "random_weights": bool(getattr(encoder, "is_random", False)), "settings": out}, indent=2))
        return
    print(f"model {encoder.model_id}, dataset {args.dataset}, {len(table.images)} photos"
          + (" (held-out only)" if args.heldout else "")
          + (" (RANDOM weights: the figures mean nothing)" if getattr(encoder, "is_random", False) else ""))
    tasks = list(next(iter(out.values())))
    print(f"{'task':36s}" + "".join(f"{n:>15s}" for n in out))
    for task in tasks:
        print(f"{task:36s}" + "".join(f"{out[n].get(task, {}).get('top1', float('nan')):>15.1%}" for n in out))


if __name__ == "__main__":
    main()
