"""shoefind's image loading against the seed's (`--image-loading seed`) on transparent product shots.

Web shops often publish shoes as transparent PNGs whose transparent pixels store black (or noise).
shoefind pastes transparency on white; the seed's `Image.open` + CLIP's `convert("RGB")` keeps whatever
the transparent pixels store. This takes a labeled catalog's held-out photos, saves each as a
transparent PNG (the background, found by its distance to the corner colour, becomes alpha 0 over
black), and scores zero-shot identification (name prompts and the 5-step method) on the originals and
on the transparent copies with both loadings.

    .venv/bin/python benchmarks/image_loading.py --known demo     # the demo model and its held-out photos
    .venv/bin/python benchmarks/image_loading.py DATASET --model MODEL [--split SPLIT_CSV]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from shoefind.encoders.load import load_model  # noqa: E402
from shoefind.features.table import build_table  # noqa: E402
from shoefind.scoring.zeroshot import ZeroShotModel  # noqa: E402

BACKGROUND_TOLERANCE = 24   # per channel, from the corner colour


def transparent_copy(src: Path, dst: Path) -> float:
    """Save src as a PNG whose background is transparent black; returns the background's share."""
    rgb = np.asarray(Image.open(src).convert("RGB")).astype(np.int16)
    corner = np.median(np.stack([rgb[0, 0], rgb[0, -1], rgb[-1, 0], rgb[-1, -1]]), axis=0)
    background = (np.abs(rgb - corner) <= BACKGROUND_TOLERANCE).all(axis=-1)
    rgba = np.dstack([np.where(background[..., None], 0, rgb), np.where(background, 0, 255)]).astype(np.uint8)
    dst.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgba, "RGBA").save(dst)
    return float(background.mean())


def scores(encoder, shoes: pd.DataFrame, paths: list[Path], truth: np.ndarray) -> dict:
    x = encoder.encode_images([str(p) for p in paths])
    result = ZeroShotModel.build(encoder, shoes).identify(x)
    return {"name": float((result.name_scores.argmax(1) == truth).mean()),
            "5-step": float((result.combined_scores.argmax(1) == truth).mean())}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dataset", nargs="?")
    ap.add_argument("--known", choices=["demo"])
    ap.add_argument("--model")
    ap.add_argument("--split", help="a LiT checkpoint's <checkpoint>.split.csv: score its held-out photos only")
    args = ap.parse_args()
    if args.known:
        from tests.helpers.trained_models import demo_model
        trained = demo_model(lambda m: print(m, file=sys.stderr))
        dataset, model, split_csv = trained.catalog, str(trained.model), Path(trained.result["split"]["file"])
    else:
        if not (args.dataset and args.model):
            ap.error("give --known demo, or DATASET --model MODEL [--split SPLIT_CSV]")
        dataset, model, split_csv = Path(args.dataset), args.model, Path(args.split) if args.split else None
    table = build_table(dataset)
    photos = table.images
    if split_csv:
        split = pd.read_csv(split_csv, dtype={"sha256": str}, keep_default_na=False)
        photos = photos[photos["sha256"].isin(set(split.loc[split["role"] == "heldout", "sha256"]))]
    index = {s: i for i, s in enumerate(table.shoes["shoe"])}
    truth = photos["shoe"].map(index).to_numpy()
    originals = [table.root / p for p in photos["path"]]
    own, seed = load_model(model), load_model(f"{model}+seed-loading")
    with tempfile.TemporaryDirectory() as tmp:
        copies = [Path(tmp) / Path(p).with_suffix(".png") for p in photos["path"]]
        share = np.mean([transparent_copy(src, dst) for src, dst in zip(originals, copies)])
        rows = {"originals, shoefind loading": scores(own, table.shoes, originals, truth),
                "originals, seed loading": scores(seed, table.shoes, originals, truth),
                "transparent copies, shoefind loading": scores(own, table.shoes, copies, truth),
                "transparent copies, seed loading": scores(seed, table.shoes, copies, truth)}
    print(f"model {own.model_id}, {len(originals)} photos of {dataset}; background made transparent: "
          f"{share:.0%} of the pixels on average")
    print(pd.DataFrame(rows).T.to_string(float_format=lambda v: f"{v:.2%}"))


if __name__ == "__main__":
    main()
