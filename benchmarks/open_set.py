"""Open-set flag rates: how often "not like any shoe in this catalog" fires on held-out photos of catalog
shoes (it should be rare) and on photos of shoes outside the catalog (it should be nearly always).

Held-out photos of catalog shoes:
- two-fold leave-one-out (any catalog): the threshold calibrated on half of the catalog's photos, the
  rate measured on the other half (each photo held out of the search), and the other way round;
- a demo catalog (`shoefind demo`): new drawings of every catalog shoe (photo numbers past the
  catalog's), never in the catalog.
Photos of shoes outside the catalog: every photo under each --outside folder (e.g. the real photos
of ../shared/data against the demo's drawings) and, for a demo catalog, its models drawn in colours
the catalog lacks (same style, shoes it does not have: the hard case, reported, not a target).
    .venv/bin/python benchmarks/open_set.py --model data/demo/model/demo.lit.pt --dataset data/demo/catalog \\
        --outside ../shared/data/findyourshoes-labeled ../shared/data/nike-silhouettes [--json]
"""
from __future__ import annotations

import argparse
import json
import random
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from shoefind.images import is_image_name  # noqa: E402
from shoefind.retrieve.open_set import (conformal_quantile, held_out_similarities, nearest_similarity,  # noqa: E402
                                        threshold_for)

NEW_COLORS = {"Purple": (120, 50, 160), "Brown": (110, 70, 40), "Grey": (128, 128, 128)}


def rate(sims: np.ndarray, threshold: float) -> dict:
    flagged = int((np.asarray(sims) < threshold).sum())
    return {"photos": int(len(sims)), "flagged": flagged, "rate": round(flagged / max(1, len(sims)), 4),
            "similarity_median": round(float(np.median(sims)), 4) if len(sims) else None}


def two_fold_loo(catalog, seed: int = 0) -> dict:
    """Threshold from one half's leave-one-out similarities, rate on the other half's (both ways)."""
    n = len(catalog.photos)
    order = np.random.default_rng(seed).permutation(n)
    halves = order[: n // 2], order[n // 2:]
    sims = [held_out_similarities(catalog, np.sort(h)) for h in halves]
    flagged = sum(int((sims[1 - i] < conformal_quantile(sims[i])).sum()) for i in range(2))
    return {"photos": n, "flagged": flagged, "rate": round(flagged / n, 4)}


def similarities(encoder, catalog, images) -> np.ndarray:
    return np.array([nearest_similarity(catalog, v) for v in encoder.encode_images(images)]) if images else \
        np.zeros(0)


def demo_drawings(catalog_dir: Path, per_shoe: int, colors: dict | None = None) -> list:
    """New drawings of a demo catalog's shoes (photo numbers past the catalog's), or of its models in
    other colours."""
    from shoefind.demo import drawings
    spec = json.loads((catalog_dir / ".shoefind-demo.json").read_text())
    shoes, images = drawings.demo_shoes(), []
    if colors:        # the drawing reads colours from its table: lend it the new ones
        drawings.COLORS.update(colors)
        models = {(s.brand, s.hightop): s for s in shoes}
        shoes = [replace(s, color=c, name=f"{s.name.rsplit(' ', 1)[0]} {c}") for s in models.values() for c in colors]
    for shoe in shoes:
        for k in range(spec["photos_per_shoe"], spec["photos_per_shoe"] + per_shoe):
            images.append(drawings.draw_shoe(shoe, random.Random(f"{spec['seed']}|{shoe.folder}|{k}"), spec["size"]))
    return images


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--data-dir", default=str(REPO / "data"))
    ap.add_argument("--outside", nargs="*", default=[], help="folders of photos of shoes outside the catalog")
    ap.add_argument("--drawings", type=int, default=4, help="new drawings per shoe of a demo catalog")
    ap.add_argument("--every", type=int, default=1, help="use every n-th photo of the --outside folders")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from shoefind.stages.infer import open_model_and_catalog
    encoder, catalog = open_model_and_catalog(args.model, args.dataset, args.data_dir)
    found = threshold_for(catalog)
    rows = [{"set": "catalog photos, two-fold leave-one-out", "kind": "held-out"} | two_fold_loo(catalog)]
    catalog_dir = Path(args.dataset)
    if (catalog_dir / ".shoefind-demo.json").is_file():
        rows.append({"set": f"new drawings of catalog shoes ({args.drawings} per shoe)", "kind": "held-out"}
                    | rate(similarities(encoder, catalog, demo_drawings(catalog_dir, args.drawings)), found.threshold))
        rows.append({"set": "catalog models in colours the catalog lacks (hard case)", "kind": "outside"}
                    | rate(similarities(encoder, catalog, demo_drawings(catalog_dir, 2, NEW_COLORS)), found.threshold))
    for folder in args.outside:
        paths = sorted(str(p) for p in Path(folder).rglob("*") if p.is_file() and is_image_name(p))[::args.every]
        rows.append({"set": Path(folder).name, "kind": "outside"}
                    | rate(similarities(encoder, catalog, paths), found.threshold))
    result = {"model": encoder.model_id, "catalog": str(catalog.root), "catalog_photos": len(catalog.photos),
              "threshold": found.threshold, "calibration": found.describe(), "rates": rows}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{encoder.model_id} on {catalog.root}: threshold {found.threshold} ({found.describe()})")
    for r in rows:
        print(f"  {r['kind']:9s} {r['set']:58s} {r['flagged']:5d} / {r['photos']:5d} flagged ({r['rate']:.1%})")


if __name__ == "__main__":
    main()
