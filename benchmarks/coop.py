"""CoOp comparisons on a model with a trained text tower: the fast schedule against the paper's,
and CoOp against CoCoOp on base and new shoes (the CoCoOp paper's protocol), over seeds.

base-new is the CoCoOp paper's protocol (shoefind.evaluate.base_new): the sorted shoe names' first half
are base, the rest new (`--classes seeded` for shoefind's earlier per-seed split); base and new are both
scored on test photos no shot comes from; CoOp and CoCoOp train with their papers' schedules and
per-epoch augmented views (10 cached views per photo) unless `--schedules` / `--views` say otherwise.

    .venv/bin/python benchmarks/coop.py schedules --known demo [--shots 16] [--seeds 0,1,2]
    .venv/bin/python benchmarks/coop.py base-new --known nike [--shots 16] [--seeds 0,1,2]
    .venv/bin/python benchmarks/coop.py schedules DATASET --model MODEL --split SPLIT_CSV

--known demo / nike take the models the tests cache (tests/helpers/trained_models.py: the
demo model, and LiT over efficientnet-lite0 on ../shared/data/nike-silhouettes trained on its
training split), training them once when absent. SPLIT_CSV is the split a LiT checkpoint
writes next to itself (<checkpoint>.split.csv, role train / heldout): the k shots (per shoe, a
seeded draw) come from its training photos and every score is on its held-out photos, which
the text tower never saw. The task is the shoe's name; each seed draws other shots and starts
from another initialisation. `schedules` keeps today's defaults otherwise (4 context tokens from
"a photo of a", no augmented views). Figures on a shared CPU are noisy in time, not in accuracy.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from shoefind.encoders.load import load_model  # noqa: E402
from shoefind.evaluate.base_new import BASE_NEW_METHODS, compare_base_new, pick_shots  # noqa: E402
from shoefind.learn.methods import task_specs  # noqa: E402
from shoefind.features.cache import EmbeddingCache  # noqa: E402
from shoefind.features.embed import embed_images  # noqa: E402
from shoefind.features.splits import make_split  # noqa: E402
from shoefind.features.table import FeatureTable, build_table  # noqa: E402
from shoefind.learn.coop import SCHEDULES, train_coop  # noqa: E402


def known(name: str) -> tuple[Path, str, Path, Path]:
    """(dataset, model, split csv, data dir) of a model the tests cache."""
    from tests.helpers import SHARED_DATA
    from tests.helpers.trained_models import demo_model, nike_lit_model
    log = lambda m: print(m, file=sys.stderr)  # noqa: E731
    trained = demo_model(log) if name == "demo" else nike_lit_model(SHARED_DATA, log)
    return trained.catalog, str(trained.model), Path(trained.result["split"]["file"]), trained.data_dir


def setup(dataset, model, split_csv, data_dir):
    encoder = load_model(model)
    table = build_table(dataset)
    cache = EmbeddingCache.for_encoder(data_dir, encoder)
    embed_images(encoder, cache, [(str(table.root / p), s) for p, s in zip(table.images.path, table.images.sha256)],
                 batch_size=64)
    split = pd.read_csv(split_csv, dtype={"sha256": str}, keep_default_na=False)
    heldout = set(split.loc[split["role"] == "heldout", "sha256"])
    return encoder, table, cache, heldout


def schedules(encoder, table, cache, heldout, shots: int, seeds: list[int], names: list[str]) -> pd.DataFrame:
    spec = task_specs(encoder, table)[-1]
    labeled = table.labeled_images()
    labeled = labeled[labeled["sha256"].map(lambda s: s in cache)].reset_index(drop=True)
    rows = []
    for seed in seeds:
        if heldout is None:   # --protocol heldout: the shots and the test photos split per shoe, by seed
            split = make_split(labeled[["path", "sha256", "shoe"]], [shots], seed)
            tested = labeled["sha256"].isin(set(split.test()["sha256"]))
            train = labeled[~tested]
        else:
            tested = labeled["sha256"].isin(heldout)
            train = pick_shots(labeled[~tested], shots, seed)
        test = labeled[tested]
        x_test, y_test = cache.matrix(test["sha256"].tolist()), spec.labels(test)
        zero_shot = float(((x_test @ spec.text.T).argmax(1) == y_test).mean())
        x, y = cache.matrix(train["sha256"].tolist()), spec.labels(train)
        for name in names:
            started = time.perf_counter()
            clf = train_coop(encoder, spec, x, y, schedule=name, seed=seed, progress=False)
            top1 = float((clf.logits(x_test).argmax(1) == y_test).mean())
            rows.append({"schedule": name, "seed": seed, "shots": shots, "classes": len(spec.classes),
                         "train_images": len(train), "test_images": len(test), "top1": top1,
                         "zeroshot_top1": zero_shot, "epochs": clf.training.get("epochs_run"),
                         "seconds": round(time.perf_counter() - started, 1)})
            print(f"  seed {seed} {name:6s} top-1 {top1:.2%} zero-shot {zero_shot:.2%} "
                  f"({rows[-1]['epochs']} epochs, {rows[-1]['seconds']} s)", file=sys.stderr)
    return pd.DataFrame(rows)


def base_new(encoder, table, cache, heldout, shots: int, seeds: list[int], names: list[str],
             methods=BASE_NEW_METHODS, classes: str = "paper", views: int | None = None) -> pd.DataFrame:
    frames = []
    for seed in seeds:
        options = {"schedule": names[0]} if names else None    # None: both on their papers' schedules
        started = time.perf_counter()
        rows = compare_base_new(encoder, table, cache, methods, shots=shots, seed=seed, coop_options=options,
                                heldout=heldout, split=classes, views=views)
        frames.append(rows.assign(seed=seed, seconds_seed=round(time.perf_counter() - started, 1)))
        for r in rows.itertuples():
            how = f" ({r.schedule}, {r.epochs} epochs, {r.views} views)" if r.method != "zeroshot" else ""
            print(f"  seed {seed} {r.method:8s} base {r.base_top1:.2%} new {r.new_top1:.2%} H {r.harmonic:.2%}{how}",
                  file=sys.stderr)
        print(f"  seed {seed}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return pd.concat(frames, ignore_index=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["schedules", "base-new"])
    ap.add_argument("dataset", nargs="?")
    ap.add_argument("--known", choices=["demo", "nike"])
    ap.add_argument("--model")
    ap.add_argument("--split", help="the LiT checkpoint's <checkpoint>.split.csv")
    ap.add_argument("--data-dir", help="where the embedding cache is (default: ./data)")
    ap.add_argument("--protocol", choices=["train-split", "heldout"], default="train-split",
                    help="train-split: shots from the text tower's training photos, test on its held-out ones; "
                         "heldout: only its held-out photos, split per shoe into shots and test (a shoe keeps "
                         "at least one test photo)")
    ap.add_argument("--shots", type=int, default=16)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--schedules", help="schedules compared (schedules: fast,paper) or the one CoOp and CoCoOp "
                                        "both use (base-new; default: the papers' schedules)")
    ap.add_argument("--classes", choices=["paper", "seeded"], default="paper",
                    help="base-new: the shoes' split (paper: the sorted names' first half base; seeded: shoefind's "
                         "earlier per-seed hash split)")
    ap.add_argument("--views", type=int, help="base-new: augmented views per training photo (default: the "
                                              "official setting of the schedule, 10 for the paper's; 0: none)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1: on a busy small CPU more threads make these tiny steps far slower)")
    ap.add_argument("--methods", default=",".join(BASE_NEW_METHODS), help="base-new: the methods compared")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.known:
        dataset, model, split_csv, data_dir = known(args.known)
    else:
        if not (args.dataset and args.model and args.split):
            ap.error("give --known demo|nike, or DATASET --model MODEL --split SPLIT_CSV")
        dataset, model, split_csv, data_dir = Path(args.dataset), args.model, Path(args.split), \
            Path(args.data_dir or "data")
    torch.set_num_threads(args.threads)
    encoder, table, cache, heldout = setup(dataset, model, split_csv, data_dir)
    if args.protocol == "heldout":
        table = FeatureTable(table.root, table.shoes, table.images[table.images["sha256"].isin(heldout)]
                             .reset_index(drop=True), [], table.layout)
        heldout = None
    seeds = [int(s) for s in args.seeds.split(",")]
    names = [s for s in (args.schedules or ("" if args.what == "base-new" else ",".join(SCHEDULES))).split(",") if s]
    if args.what == "schedules":
        frame = schedules(encoder, table, cache, heldout, args.shots, seeds, names)
    else:
        frame = base_new(encoder, table, cache, heldout, args.shots, seeds, names, args.methods.split(","),
                         args.classes, args.views)
    if args.json:
        print(frame.to_json(orient="records", indent=2))
        return
    print(f"model {encoder.model_id}, dataset {dataset}, {args.shots} shots, seeds {args.seeds}, "
          f"protocol {args.protocol}" + (f", classes {args.classes}" if args.what == "base-new" else ""))
    if args.what == "schedules":
        summary = frame.groupby("schedule", sort=False).agg(
            top1_mean=("top1", "mean"), top1_sd=("top1", "std"), top1_min=("top1", "min"),
            zeroshot=("zeroshot_top1", "mean"), epochs=("epochs", "mean"), seconds=("seconds", "mean"))
        print(frame[["schedule", "seed", "train_images", "test_images", "top1", "zeroshot_top1", "epochs",
                     "seconds"]]
              .to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        print(summary.to_string(float_format=lambda v: f"{v:.4f}"))
        if {"fast", "paper"} <= set(frame["schedule"]):
            gap = summary.loc["paper", "top1_mean"] - summary.loc["fast", "top1_mean"]
            print(f"paper - fast: {gap * 100:+.2f} points (mean over seeds)")
    else:
        summary = frame.groupby("method", sort=False)[["base_top1", "new_top1", "harmonic"]].agg(["mean", "std"])
        print(frame[["method", "seed", "base_classes", "new_classes", "train_images", "base_images", "new_images",
                     "base_top1", "new_top1", "harmonic"]].to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        print(summary.to_string(float_format=lambda v: f"{v:.4f}"))


if __name__ == "__main__":
    main()
