"""The learning loop, measured: does a night of expansion make identification better, and at what cost
in a person's time?

    .venv/bin/python benchmarks/expansion.py --pool ../shared/data/nike-silhouettes \\
        --distractors ../shared/data/converse-crawl --seed-shots 4 --rounds 5 --review-budget 20 \\
        --learner linear-probe [--model efficientnet-lite0] [--reviewer-error 0.05] [--json]

1. A fixed held-out split of the pool (about a fifth of every shoe, whole colourways where the file
   names tell them) is kept out of the search source and of training; the dataset starts from
   --seed-shots photos per shoe of the rest, and its first model is trained (round 0).
2. Each round runs the real `expand-dataset` flow, through a real (temporary) Prefect server, against
   the offline search source (tests/helpers/search_source.py): the crawler (Chromium) crawls
   --per-round more results per shoe, the filter and the current model triage them, the learner is
   retrained, scored on the held-out split and promoted when not worse. As a real engine does, a shoe's
   photo fetched from another shoe's page (one of its "other shoes") is listed once more on its own
   shoe's page; the crawler records it as listed for two shoes (--no-relist: never listed again, the
   source before 2026-12-06).
3. A simulated reviewer then decides --review-budget of the waiting photos, most informative first,
   from the pool's ground truth, through the review queue's own API (what `shoefind review` and its
   page call); with --reviewer-error p it gets each decision wrong with probability p.

Per round: dataset size, photos the model accepted and their label precision, photos the reviewer
admitted and theirs, reviews spent, held-out top-1/top-5 of the model current after the round, and
whether the round's model was promoted (with the paired difference's standard error). Two ceilings:
the same learner trained on 16 hand-labeled photos per shoe of the pool, and on a hand-labeled set as
large as the final dataset. `--json` prints one object (see `result`).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from shoefind.errors import UserError  # noqa: E402

CRAWL_SETTINGS = dict(allow_loopback=True, read_timeout=10, results_timeout=10, preview_timeout=5, scroll_timeout=2,
                      per_host_interval=0, poll_interval=0.05, concurrency=2)
CEILING_SHOTS = 16


def parse_args(argv=None) -> argparse.Namespace:
    from shoefind.registry.learners import LEARNERS
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pool", required=True, help="labeled folder, one subfolder per shoe")
    ap.add_argument("--distractors", default=None, help="folder of photos of no pool shoe (other brands, non-shoes)")
    ap.add_argument("--seed-shots", type=int, default=4, help="labeled photos per shoe the dataset starts from")
    ap.add_argument("--rounds", type=int, default=5, help="expansion runs")
    ap.add_argument("--review-budget", type=int, default=20, help="photos the reviewer decides per round")
    ap.add_argument("--learner", default="linear-probe", choices=LEARNERS)
    ap.add_argument("--model", default="efficientnet-lite0", help="the backbone the learner reads")
    ap.add_argument("--per-round", type=int, default=30,
                    help="new search results crawled per shoe and round (a nightly crawl's size)")
    ap.add_argument("--reviewer-error", type=float, default=0.0, help="probability the reviewer decides wrong")
    ap.add_argument("--no-relist", action="store_true",
                    help="the search source never lists a fetched photo again (as before 2026-12-06): a shoe's photo "
                         "fetched as another query's result is not listed for its own shoe")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--brand", default=None, help="brand of the pool's shoes when the folder names do not say one")
    ap.add_argument("--work", default=None, help="keep the data folder here (default: a temporary folder)")
    ap.add_argument("--json", action="store_true", help="print one JSON object on stdout (progress on stderr)")
    args = ap.parse_args(argv)
    for name, low in (("seed_shots", 1), ("rounds", 1), ("review_budget", 1), ("per_round", 1)):
        if getattr(args, name) < low:
            flag = "--" + name.replace("_", "-")
            raise UserError(f"{flag} must be at least {low}, not {getattr(args, name)}"
                            + (": a round without review cannot teach the model what it is unsure of"
                               if name == "review_budget" else ""))
    if not 0 <= args.reviewer_error < 0.5:
        raise UserError(f"--reviewer-error must be in [0, 0.5), not {args.reviewer_error}")
    return args


# --- the pool: held-out split, seed photos, what the crawl catalog calls its shoes ------------------------
def read_pool(args) -> dict:
    from shoefind.features.table import build_table
    from shoefind.registry.heldout import heldout_share
    pool = Path(args.pool).expanduser().resolve()
    if not pool.is_dir():
        raise UserError(f"--pool {pool} is not a folder (a labeled folder: one subfolder of photos per shoe)")
    if args.distractors and not Path(args.distractors).is_dir():
        raise UserError(f"--distractors {args.distractors} is not a folder")
    table = build_table(pool)
    counts = table.images.groupby("shoe").size() if len(table.images) else {}
    if len(table.images) == 0:
        raise UserError(f"--pool {pool} has no photos in shoe folders: it needs one subfolder of photos per shoe")
    if len(counts) < 2:
        raise UserError(f"--pool {pool} has photos of {len(counts)} shoe: identification needs at least two shoes")
    images = table.images.drop_duplicates("sha256").reset_index(drop=True)
    held_by = heldout_share(images, args.seed)
    images = images.assign(heldout=held_by != "", folder=images["shoe"].map(dict(zip(table.shoes["shoe"],
                                                                                       table.shoes["folder"]))))
    short = {s: int(n) for s, n in images[~images["heldout"]].groupby("shoe").size().items()
             if n < args.seed_shots + 1}
    if short:
        raise UserError(f"--pool {pool}: {len(short)} shoes have too few photos outside the held-out split for "
                        f"--seed-shots {args.seed_shots} and anything left to crawl (e.g. {next(iter(short))}: "
                        f"{next(iter(short.values()))}); lower --seed-shots")
    return {"root": pool, "table": table, "images": images}


def catalog_for(args, pool: dict, work: Path) -> dict[str, str]:
    """Write the crawl catalog of the pool; pool folder -> the dataset's shoe folder."""
    from tests.helpers.search_source import write_pool_catalog
    try:
        shoes = write_pool_catalog(pool["root"], work / "catalog.csv", brand=args.brand)
    except UserError as exc:
        if args.brand or "brand" not in str(exc):
            raise
        say(f"note: {exc}; using the placeholder brand Nike (names, not brands, are identified here)")
        shoes = write_pool_catalog(pool["root"], work / "catalog.csv", brand="Nike")
    return {s.pool_class: s.shoe.folder for s in shoes}


def rank(seed: int, key: str) -> str:
    import hashlib
    return hashlib.sha256(f"{seed}|{key}".encode()).hexdigest()


def place(pool: dict, folders: dict[str, str], data_dir: Path, work: Path, k: int, seed: int) -> tuple[list, list]:
    """Copy k seed photos per shoe into the dataset and the held-out photos into work/heldout; returns
    (seed paths, held-out paths) of the pool (the search source never serves them)."""
    root, images = pool["root"], pool["images"]
    seeds, held = [], []
    for _, row in images.iterrows():
        if row["heldout"]:
            dst = work / "heldout" / folders[row["folder"]] / Path(row["path"]).name
            held.append(root / row["path"])
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / row["path"], dst)
    for shoe, group in images[~images["heldout"]].groupby("folder"):
        chosen = sorted(group["path"], key=lambda p: rank(seed, f"seed|{p}"))[:k]
        for rel in chosen:
            dst = data_dir / "images" / folders[shoe] / Path(rel).name
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / rel, dst)
            seeds.append(root / rel)
    return seeds, held


# --- the simulated reviewer --------------------------------------------------------------------------
class Reviewer:
    """Decides waiting photos from the ground truth through ReviewQueue.decide (the CLI's and page's API)."""

    def __init__(self, folders: dict[str, str], error: float, seed: int):
        self.folder_of_class = folders
        self.error = error
        self.rng = random.Random(seed)

    def right_folder(self, served) -> str | None:
        return None if served is None or served.truth is None else self.folder_of_class.get(served.truth)

    def review(self, queue, truth: dict, budget: int) -> list[dict]:
        done = []
        for item in queue.items("review", order="informative")[:budget]:
            right = self.right_folder(truth.get(item.sha256))
            wrong = self.rng.random() < self.error
            if right is None:       # no pool shoe: reject (a careless reviewer accepts it as crawled)
                decision, label = ("accept", None) if wrong else ("reject", None)
            elif wrong:             # a careless reviewer rejects a good photo, or files it as crawled
                decision, label = ("reject", None) if right == item.shoe else ("accept", None)
            else:
                decision, label = "accept", (None if right == item.shoe else right)
            if decision == "accept" and not item.shoe and label is None:
                decision = "reject"     # a loose photo cannot be accepted without a shoe
            after = queue.decide(item.id, decision, reviewer="simulated-reviewer", label=label)
            done.append({"id": item.id, "decision": decision, "folder": after.folder,
                         "right": after.status == "rejected" or after.folder == right})
        return done


# --- measuring a round -------------------------------------------------------------------------------------
def decided_by_model(queue) -> dict[str, object]:
    return {i.sha256: i for i in queue.items() if (i.decided_by or "").startswith("model:")}


def label_right(item, truth: dict, folder_of_class: dict[str, str]) -> bool:
    served = truth.get(item.sha256)
    return served is not None and served.truth is not None and folder_of_class.get(served.truth) == item.folder


def count_images(folder: Path) -> int:
    from shoefind.images import is_image_name
    return sum(1 for p in folder.rglob("*") if p.is_file() and is_image_name(p) and not p.name.startswith(".")) \
        if folder.is_dir() else 0


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def run_round(r: int, args, data_dir: Path, work: Path, source, reviewer: Reviewer, folders: dict) -> dict:
    from flows.expand import expand_dataset_flow
    from shoefind.curate.queue import ReviewQueue
    from shoefind.registry.store import ModelRegistry
    from tests.helpers.search_source import load_truth
    queue = ReviewQueue(data_dir)
    before = decided_by_model(queue)
    started = time.perf_counter()
    crawl = {} if r == 0 else dict(catalog=str(work / "catalog.csv"), per_query=r * args.per_round,
                                   engine="localtest", base_url=source.base_url, settings=CRAWL_SETTINGS)
    summary = expand_dataset_flow(data_dir=str(data_dir), model="none", learner=args.learner,
                                  learner_model=args.model, heldout=str(work / "heldout"), **crawl)
    seconds = time.perf_counter() - started
    truth = load_truth(work / "truth.jsonl") if (work / "truth.jsonl").is_file() else {}
    queue = ReviewQueue(data_dir)
    now = decided_by_model(queue)
    # a photo a model decided again (reopened when listed for another shoe) counts in the round it was decided
    new = [i for s, i in now.items() if s not in before or before[s].decided_at != i.decided_at]
    auto_acc = [i for i in new if i.status == "accepted"]
    auto_rej = [i for i in new if i.status == "rejected"]
    auto_right = sum(label_right(i, truth, folders) for i in auto_acc)
    reviewed = reviewer.review(queue, truth, args.review_budget) if r else []
    admitted = [d for d in reviewed if d["decision"] == "accept"]
    registry = ModelRegistry(data_dir, data_dir / "images")
    current = registry.current()
    model = summary.get("model") or {}
    return {"round": r, "dataset_photos": model.get("train_photos", count_images(data_dir / "images")),
            "auto_accepted": len(auto_acc), "auto_right": auto_right,
            "auto_precision": round(auto_right / len(auto_acc), 4) if auto_acc else None,
            "auto_rejected": len(auto_rej), "queued": summary.get("review_waiting", 0),
            "reviewed": len(reviewed), "reviewed_admitted": len(admitted),
            "reviewed_precision": round(sum(d["right"] for d in admitted) / len(admitted), 4) if admitted else None,
            "reviewed_right": sum(d["right"] for d in admitted),
            "heldout_top1": current["heldout"]["top1"] if current else None,
            "heldout_top5": current["heldout"]["top5"] if current else None,
            "model": model.get("model"), "current": current["id"] if current else None,
            "promoted": bool(model.get("promoted")), "trained_top1": (model.get("heldout") or {}).get("top1"),
            "comparison": model.get("comparison"), "trained": bool(model.get("trained")),
            # before triage, the reviews of the last round are learned (the flow's catch-up retraining)
            "catch_up": _trained(summary.get("model_before_triage")),
            # a round whose dataset did not change trains nothing (its model is the last one)
            "retrain_seconds": _seconds(model, summary.get("model_before_triage"), key="total_s"),
            "fit_seconds": _seconds(model, summary.get("model_before_triage")),
            "round_seconds": round(seconds, 1), "stages": summary.get("stages", {})}


def _trained(model: dict | None) -> dict | None:
    """A retraining that trained a model: its id, whether it was promoted and its paired comparison."""
    if not model or not model.get("trained"):
        return None
    return {"model": model.get("model"), "promoted": bool(model.get("promoted")),
            "top1": (model.get("heldout") or {}).get("top1"), "comparison": model.get("comparison")}


def _seconds(*models, key: str | None = None) -> float | None:
    """Seconds the round's trainings took (key total_s: with table and embeddings; None: the fits)."""
    done = [m.get("timing") or {} for m in models if m and m.get("trained")]
    if not done:
        return None
    return round(sum(t.get(key, 0) if key else sum(v for k, v in t.items() if k != "total_s") for t in done), 2)


# --- ceilings: the same learner on hand-labeled photos -----------------------------------------------------
def ceilings(args, pool: dict, folders: dict, data_dir: Path, work: Path, final_size: int) -> dict:

    from shoefind.encoders.load import load_encoder
    from shoefind.features.cache import EmbeddingCache
    from shoefind.features.embed import embed_images
    from shoefind.registry import learners
    from shoefind.registry.table import dataset_table
    table = dataset_table(data_dir / "images", data_dir)       # the dataset's shoes, as its models know them
    row = {f: i for i, f in enumerate(table.shoes["folder"])}
    encoder = load_encoder(args.model, runtime=None if args.learner in learners.FEWSHOT else "torch")
    cache = EmbeddingCache.for_encoder(data_dir, encoder)
    images = pool["images"].assign(row=pool["images"]["folder"].map(lambda f: row.get(folders.get(f), -1)))
    images = images[images["row"] >= 0]
    embed_images(encoder, cache, [(str(pool["root"] / p), s) for p, s in zip(images["path"], images["sha256"])])
    held = images[images["heldout"]]
    rest = images[~images["heldout"]]
    order = {s: sorted(g["sha256"], key=lambda h: rank(args.seed, f"ceiling|{h}")) for s, g in rest.groupby("row")}

    def top1(shas: list[str]) -> float:
        train = rest.set_index("sha256").loc[shas]
        fitted = learners.fit(args.learner, encoder, table, cache.matrix(shas), train["row"].to_numpy(), args.seed)
        probs = fitted.head.predict_proba(cache.matrix(held["sha256"].tolist()))
        return round(float((probs.argmax(axis=1) == held["row"].to_numpy()).mean()), 4)

    sixteen = [h for shas in order.values() for h in shas[:CEILING_SHOTS]]
    equal, depth = [], 0
    while len(equal) < final_size and depth < max(len(v) for v in order.values()):
        for shas in order.values():        # round-robin over the shoes: a balanced hand-labeled set
            if depth < len(shas) and len(equal) < final_size:
                equal.append(shas[depth])
        depth += 1
    say(f"ceilings: {args.learner} on {len(sixteen)} hand-labeled photos ({CEILING_SHOTS} per shoe) and on "
        f"{len(equal)} (the final dataset's size)")
    return {"ceiling": {"heldout_top1": top1(sixteen), "photos": len(sixteen)},
            "ceiling_equal_size": {"heldout_top1": top1(equal), "photos": len(equal)}}


# --- printing ---------------------------------------------------------------------------------------------
def line(r: dict) -> str:
    def f(v, d=3):
        return "-" if v is None else f"{v:.{d}f}"
    c = r.get("comparison") or {}
    noise = f" ({c['difference']:+.3f} +- {c['se']:.3f} SE, p={c['p_value']:.2f})" if c else ""
    if r.get("catch_up"):   # the model trained before triage on the last round's reviews
        cu = r["catch_up"]
        noise += f"; before triage {cu['model']} {'promoted' if cu['promoted'] else 'kept out'} ({f(cu['top1'])})"
    return (f"{r['round']:>5} {r['dataset_photos']:>7} {r['auto_accepted']:>5} {f(r['auto_precision']):>6} "
            f"{r['auto_rejected']:>5} {r['reviewed']:>5} {r['reviewed_admitted']:>5} {f(r['reviewed_precision']):>6} "
            f"{r['queued']:>6} {f(r['heldout_top1']):>6} {f(r['heldout_top5']):>6} "
            f"{(r['model'] or '-'):>6} {('yes' if r['promoted'] else 'no'):>4} {f(r['retrain_seconds'], 1):>6}"
            f"{noise}")


HEADER = ("round photos auto  prec  auto- revwd  adm  prec   queue  top-1  top-5  model prom retr_s\n"
          "              acc        rej                 (rev)\n")


def admitted_in_the_end(data_dir: Path, truth: dict, folders: dict) -> dict:
    """The photos in the dataset at the end, each once, by who put it there (a model's decision a later
    crawl reopened counts by its last decision, not twice)."""
    from shoefind.curate.model_verdicts import how_it_came
    from shoefind.curate.queue import ReviewQueue
    accepted = ReviewQueue(data_dir).items("accepted")
    auto = [i for i in accepted if (i.decided_by or "").startswith("model:")]
    by_path: dict[str, dict] = {}
    for i in auto:      # where the errors are: one listing, several, a reopened decision
        counts = by_path.setdefault(how_it_came(i), {"accepted": 0, "right": 0})
        counts["accepted"] += 1
        counts["right"] += label_right(i, truth, folders)
    return {"auto": len(auto), "auto_right": sum(c["right"] for c in by_path.values()),
            "reviewer": sum(i.decided_by == "simulated-reviewer" for i in accepted), "auto_by_path": by_path}


def result(args, rounds: list[dict], ceil: dict, final: dict) -> dict:
    auto, auto_right, admitted_by_reviewer = final["auto"], final["auto_right"], final["reviewer"]
    admitted = auto + admitted_by_reviewer
    def worse_promoted(m: dict | None) -> bool:
        return bool(m and m["promoted"] and m["comparison"] and m["comparison"]["new_top1"] < m["comparison"]["old_top1"])
    worse = [r["round"] for r in rounds if (r["promoted"] and r["trained"] and worse_promoted(r))
             or worse_promoted(r["catch_up"])]
    return {"pool": args.pool, "distractors": args.distractors, "learner": args.learner, "model": args.model,
            "seed_shots": args.seed_shots, "review_budget": args.review_budget, "per_round": args.per_round,
            "reviewer_error": args.reviewer_error, "relist": not args.no_relist,
            "rounds": [{k: r[k] for k in ("round", "dataset_photos", "auto_accepted", "auto_precision", "reviewed",
                                          "heldout_top1", "promoted", "heldout_top5", "auto_rejected",
                                          "reviewed_admitted", "reviewed_precision", "queued", "model",
                                          "comparison", "trained", "catch_up", "retrain_seconds", "fit_seconds",
                                          "round_seconds")}
                       for r in rounds],
            "ceiling": ceil["ceiling"], "ceiling_equal_size": ceil["ceiling_equal_size"],
            "reviewed_fraction": round(admitted_by_reviewer / admitted, 4) if admitted else None,
            "reviews_spent": sum(r["reviewed"] for r in rounds),
            "auto_precision": round(auto_right / auto, 4) if auto else None,
            "auto_by_path": final["auto_by_path"],
            "admitted": admitted, "promoted_worse": worse,
            "max_retrain_seconds": max((r["retrain_seconds"] or 0) for r in rounds),
            "machine": f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end"}


def main(argv=None) -> int:
    try:
        args = parse_args(argv)
        pool = read_pool(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    work = Path(args.work).expanduser().resolve() if args.work else Path(tempfile.mkdtemp(prefix="expansion-"))
    if work.exists() and any(work.iterdir()):
        print(f"error: --work {work} is not empty: give a new folder (the benchmark starts from scratch)",
              file=sys.stderr)
        return 2
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    for key, value in (("PREFECT_SERVER_ANALYTICS_ENABLED", "false"), ("DO_NOT_TRACK", "1")):
        os.environ.setdefault(key, value)
    data_dir = work / "data"
    os.environ["SHOEFIND_DATA"] = str(data_dir)
    try:
        folders = catalog_for(args, pool, work)
        seeds, held = place(pool, folders, data_dir, work, args.seed_shots, args.seed)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    say(f"{pool['root'].name}: {len(folders)} shoes, {len(held)} held-out photos, {len(seeds)} seed photos "
        f"({args.seed_shots} per shoe); work folder {work}")
    from prefect.testing.utilities import prefect_test_harness

    from tests.helpers.search_source import SearchSource
    reviewer = Reviewer(folders, args.reviewer_error, args.seed)
    rounds: list[dict] = []
    with prefect_test_harness(server_startup_timeout=120), \
            SearchSource(pool["root"], args.distractors, results_per_query=2 * args.per_round, seed=args.seed,
                         exclude=seeds + held, truth_path=work / "truth.jsonl", relist=not args.no_relist) as source:
        if not args.json:
            print(HEADER, end="", flush=True)
        for r in range(args.rounds + 1):
            rounds.append(run_round(r, args, data_dir, work, source, reviewer, folders))
            say(f"round {r}: " + "; ".join(f"{k}: {v}" for k, v in rounds[-1]["stages"].items()))
            if not args.json:
                print(line(rounds[-1]), flush=True)
    ceil = ceilings(args, pool, folders, data_dir, work, rounds[-1]["dataset_photos"])
    from tests.helpers.search_source import load_truth
    out = result(args, rounds, ceil, admitted_in_the_end(data_dir, load_truth(work / "truth.jsonl"), folders))
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"ceiling ({CEILING_SHOTS} hand-labeled photos per shoe): held-out top-1 {out['ceiling']['heldout_top1']}")
        print(f"ceiling at the final dataset's size ({out['ceiling_equal_size']['photos']} hand-labeled photos): "
              f"{out['ceiling_equal_size']['heldout_top1']}")
        print(f"admitted {out['admitted']} photos, {out['reviewed_fraction']} of them by the reviewer "
              f"({out['reviews_spent']} reviews); auto-accepted precision {out['auto_precision']}; "
              f"rounds that promoted a worse model: {out['promoted_worse'] or 'none'}; slowest retraining "
              f"{out['max_retrain_seconds']} s ({out['machine']})")
        print("auto-accepted, right of accepted, by how the photo came: " + "; ".join(
            f"{path} {c['right']}/{c['accepted']}" for path, c in sorted(out["auto_by_path"].items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
