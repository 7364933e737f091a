"""Retrain, evaluate, promote: one round of the learning loop on a dataset.

1. The dataset's table and embeddings (only new photos are encoded), and the held-out split fixed
   at registration (registered now if the dataset is new: heldout.py).
2. The configured learner is fitted on every photo of the dataset except the held-out ones.
3. Triage thresholds are calibrated on photos each fit did not see (calibrate.py).
4. The model answers the held-out photos; its per-photo answers are kept, so the next model is
   compared photo by photo (compare.py).
5. The model is written into the registry (atomically, store.py) and promoted only when its
   held-out top-1 is not lower than the current model's.
A process killed anywhere leaves the current model as it was; the next run starts over.
"""
from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from shoefind.errors import UserError
from shoefind.faults import crash_point
from shoefind.registry import learners
from shoefind.registry.calibrate import Thresholds, choose_thresholds, nearest_photo
from shoefind.registry.compare import paired, should_promote
from shoefind.registry.heldout import heldout_from_dataset, heldout_from_folder, read_heldout, save_heldout
from shoefind.registry.table import dataset_table, images_of
from shoefind.registry.store import MODEL_FORMAT, VERSION, ModelRegistry, file_sha256, now, write_json

Log = Callable[[str], None]
CALIBRATION_SHARE = 0.2       # one-fit learners: the share of each shoe's photos kept out for calibration
PREDICTIONS = "heldout.csv"   # a model's answers on the held-out photos
TRAINING = "train.csv"        # the photos it was trained on
SUPPORT = "support.npz"       # their embeddings (the novelty check compares new photos with them)


class NotEnoughData(UserError):
    """The dataset cannot train a model yet."""


def register(registry: ModelRegistry, table, learner: str, model: str, heldout: str | None,
             settings: dict | None = None, seed: int = 0) -> dict:
    """Fix the dataset's held-out split and learner (once: the first retraining does it)."""
    if heldout:
        frame = heldout_from_folder(heldout, table, registry.root / "heldout")
        source = str(Path(heldout).expanduser().resolve())
    else:
        frame = heldout_from_dataset(table, seed)
        source = "dataset"
    registry.root.mkdir(parents=True, exist_ok=True)
    digest = save_heldout(frame, registry.heldout_path)
    config = registry.write_config({
        "dataset": str(registry.dataset), "registered": now(), "seed": seed,
        "learner": {"name": learner, "model": model, "settings": dict(settings or {})},
        "heldout": {"file": registry.heldout_path.name, "sha256": digest, "photos": int(len(frame)),
                    "shoes": int(frame["folder"].nunique()), "source": source,
                    "by": sorted(set(frame["held_by"]))}})
    registry.log({"event": "registered", "heldout_photos": int(len(frame)), "learner": config["learner"]})
    return config


def configured(registry: ModelRegistry, learner: str | None, model: str | None,
               settings: dict | None) -> tuple[dict, bool]:
    """The registry's configuration with a learner, model or settings given now, and whether that changed
    it (keep_configuration writes the change, once the learner is known to run on the model)."""
    config = registry.config()
    wanted = dict(config["learner"])
    if learner:
        wanted["name"] = learner
    if model:
        wanted["model"] = model
    if settings:
        wanted["settings"] = dict(wanted.get("settings", {})) | dict(settings)
    return config | {"learner": wanted}, wanted != registry.config()["learner"]


def keep_configuration(registry: ModelRegistry, config: dict) -> None:
    registry.log({"event": "learner changed", "from": registry.config()["learner"], "to": config["learner"]})
    registry.write_config({k: v for k, v in config.items() if k not in ("format", "version", "checksum")})


def retrain(dataset: str | os.PathLike, data_dir: str | os.PathLike, learner: str | None = None,
            model: str | None = None, heldout: str | None = None, settings: dict | None = None,
            seed: int = 0, force: bool = False, log: Log | None = None) -> dict:
    """One round (see the module docstring); returns what was done, for the flow's summary."""
    from shoefind.encoders.load import load_encoder
    from shoefind.encoders.spec import spec_text
    say = log or (lambda _m: None)
    if learner is not None:
        learner = str(learner).strip() or None
    if learner and learner not in learners.LEARNERS:
        raise UserError(f"unknown learner '{learner}': choose one of {', '.join(learners.LEARNERS)}")
    registry = ModelRegistry(data_dir, dataset)
    began = time.perf_counter()
    with registry.lock():
        table = dataset_table(dataset, data_dir)
        photos_per_shoe = table.images.groupby("shoe").size()
        if (photos_per_shoe >= 1).sum() < 2:
            raise NotEnoughData(f"the dataset {table.root} has photos of {int((photos_per_shoe >= 1).sum())} shoe(s): "
                                "a model needs photos of at least two shoes")
        if not registry.registered:
            register(registry, table, learner or learners.DEFAULT_LEARNER, spec_text(model), heldout,
                     settings, seed)
            say(f"registered {table.root} in {registry.root}: the held-out split is fixed from now on")
        elif heldout:
            say(f"the held-out split of {table.root} was fixed when it was registered: {heldout} is not used "
                f"(move {registry.root} aside to register the dataset again)")
        config, changed = configured(registry, learner, model, settings)
        name, spec, options = config["learner"]["name"], config["learner"]["model"], config["learner"]["settings"]
        seed = int(config.get("seed", seed))
        encoder = load_encoder(spec, runtime="torch" if name not in learners.FEWSHOT else None)
        learners.check_learner(name, encoder)
        if changed:
            keep_configuration(registry, config)
        data = _embedded(encoder, table, registry, data_dir, say)
        current = registry.current()
        snapshot = _snapshot(data, name, spec, options, table)
        latest = registry.manifest(registry.model_ids()[-1]) if registry.model_ids() else None
        if latest is not None and not force and latest["data"]["snapshot"] == snapshot["snapshot"]:
            say(f"nothing new to learn: model {latest['id']} was trained on these photos with this learner")
            if _undecided(registry, latest, current):      # a run killed before its promotion: decide now
                return _decide(registry, latest, current, say)
            return _summary(latest, current, False, f"unchanged: model {latest['id']} learned these very photos "
                            "with this learner", None, registry)
        return _train_and_promote(registry, name, spec, options, seed, encoder, table, data, snapshot, current, say,
                                  began)


def _embedded(encoder, table, registry: ModelRegistry, data_dir, say: Log) -> dict:
    """Training photos (dataset minus held out) and held-out photos, with their embeddings."""
    from shoefind.features.cache import EmbeddingCache
    from shoefind.features.embed import embed_images
    held = read_heldout(registry.heldout_path)
    cache = EmbeddingCache.for_encoder(data_dir, encoder)
    items = images_of(table) + [(p, s) for p, s in zip(held["path"], held["sha256"]) if Path(p).is_file()]
    report = embed_images(encoder, cache, items)
    if report.encoded:
        say(f"embedded {report.encoded} new photos ({report.cached} already cached)")
    folder_of = dict(zip(table.shoes["shoe"], table.shoes["folder"]))
    row_of_folder = {f: i for i, f in enumerate(table.shoes["folder"]) if f}
    held_shas = set(held["sha256"])
    images = table.images[table.images["sha256"].map(lambda s: s in cache and s not in held_shas)]
    images = images.drop_duplicates("sha256").reset_index(drop=True)
    row_of_shoe = {s: i for i, s in enumerate(table.shoes["shoe"])}
    train_y = images["shoe"].map(row_of_shoe).to_numpy(dtype=int)
    kept = held[held["folder"].isin(row_of_folder) & held["sha256"].map(lambda s: s in cache)].reset_index(drop=True)
    by_model = admitted_by_model(data_dir)
    return {"by_model": images["sha256"].map(lambda s: s in by_model).to_numpy(dtype=bool),
            "train": images.assign(folder=images["shoe"].map(folder_of)), "train_x": cache.matrix(images["sha256"].tolist()),
            "train_y": train_y, "held": kept, "held_x": cache.matrix(kept["sha256"].tolist()),
            "held_y": kept["folder"].map(row_of_folder).to_numpy(dtype=int), "held_total": int(len(held))}


def admitted_by_model(data_dir) -> set[str]:
    """The photos a model accepted on its own (the review queue's decisions): never calibration photos."""
    from shoefind.settings import layout
    if not layout(data_dir).filter_queue.is_file():
        return set()
    from shoefind.curate.queue import ReviewQueue
    return {i.sha256 for i in ReviewQueue(data_dir).items("accepted") if (i.decided_by or "").startswith("model:")}


def _snapshot(data: dict, name: str, spec: str, options: dict, table) -> dict:
    """What a model learned from, in a form two rounds can be compared by."""
    train = data["train"]
    digest = hashlib.sha256("\n".join(sorted(f"{s}|{f}" for s, f in zip(train["sha256"], train["folder"])))
                            .encode()).hexdigest()
    learned = hashlib.sha256(f"{digest}|{name}|{spec}|{sorted(options.items())}|{list(table.shoes['shoe'])}"
                             .encode()).hexdigest()
    return {"dataset": str(table.root), "photos": int(len(train)), "shoes": int(train["folder"].nunique()),
            "per_shoe": {str(k): int(v) for k, v in train["folder"].value_counts().sort_index().items()},
            "photos_sha256": digest, "snapshot": learned, "heldout_photos": int(len(data["held"])),
            "heldout_excluded": int(data["held_total"])}


def _train_and_promote(registry, name, spec, options, seed, encoder, table, data, snapshot, current, say,
                       began: float) -> dict:
    if len(np.unique(data["train_y"])) < 2:
        raise NotEnoughData("the training photos (the dataset without its held-out photos) show fewer than two "
                            "shoes: add photos before training")
    timing = {}
    start = _lit_start(registry, current) if name == "lit" else None
    fitted = None
    if learners.calibration_folds(name) > 1:     # the model first: its folds keep its hyperparameters
        started = time.perf_counter()
        fitted = learners.fit(name, encoder, table, data["train_x"], data["train_y"], seed, options, say)
        timing["fit_s"] = round(time.perf_counter() - started, 2)
    started = time.perf_counter()
    thresholds, one_fit = _calibrate(name, encoder, table, data, seed, options, say, start, fitted)
    timing["calibrate_s"] = round(time.perf_counter() - started, 2)
    fitted = fitted or one_fit
    crash_point("registry:fitted")
    started = time.perf_counter()
    scores, answers = _evaluate(fitted, table, data)
    references = _references(encoder, table, data)
    timing["evaluate_s"] = round(time.perf_counter() - started, 2)
    comparison = None
    if current is not None:
        comparison = paired(dict(zip(answers["sha256"], answers["correct"].astype(bool))),
                            _right_by_photo(registry, current["id"]))
    promote, reason = should_promote(comparison)
    timing["total_s"] = round(time.perf_counter() - began, 2)     # table, new embeddings, fits, scores
    say(f"{name} on {snapshot['photos']} photos: held-out top-1 {scores['top1']:.3f} "
        f"({scores['photos']} photos); {reason}")
    with registry.new_model() as (model_id, folder):
        saved = learners.save(name, fitted, folder, model_id, data["train_x"],
                              [table.shoes["shoe"].iat[i] for i in data["train_y"]])
        answers.to_csv(folder / PREDICTIONS, index=False)
        data["train"][["sha256", "folder"]].to_csv(folder / TRAINING, index=False)
        with open(folder / SUPPORT, "wb") as fh:
            np.savez(fh, embeddings=data["train_x"].astype(np.float16))
        files = saved["files"] + [PREDICTIONS, TRAINING, SUPPORT]
        manifest = write_json(folder / "manifest.json", {
            "format": MODEL_FORMAT, "version": VERSION, "id": model_id, "created": now(),
            "learner": {"name": name, "model": spec, "settings": options, "seed": seed,
                        "details": fitted.details},
            "encoder": {"spec": saved["spec"] or spec, "in_folder": bool(saved["spec"]),
                        "image_model": encoder.model_id, "cache_key": encoder.cache_key,
                        "model_id": None if saved["spec"] else encoder.model_id},
            "classes": [{"shoe": s, "folder": f} for s, f in zip(table.shoes["shoe"], table.shoes["folder"])],
            "data": snapshot, "heldout": scores, "references": references,
            "thresholds": thresholds.as_dict(), "timing": timing,
            "comparison": comparison.as_dict() if comparison else None, "compared_with": current and current["id"],
            "files": {f: file_sha256(folder / f) for f in files}})
        crash_point("registry:writing")       # every file written, the folder not yet renamed into place
    registry.log({"event": "trained", "model": model_id, "heldout": scores, "learner": name,
                  "photos": snapshot["photos"], "timing": timing})
    crash_point("registry:promoting")
    return _decide(registry, manifest, current, say, comparison, (promote, reason)) | {"trained": True}


def _undecided(registry: ModelRegistry, model: dict, current: dict | None) -> bool:
    """Was this model written but never promoted or kept out (its run was killed in between)?"""
    if current is not None and current["id"] == model["id"]:
        return False
    return not any(e.get("model") == model["id"] and str(e.get("event", "")).startswith("promoted")
                   or e.get("candidate") == model["id"] for e in registry.events())


def _decide(registry: ModelRegistry, model: dict, current: dict | None, say: Log, comparison=None,
            verdict: tuple[bool, str] | None = None) -> dict:
    """Promote the model when it is not worse than the current one (compared photo by photo), else keep
    the current one; either way the decision is logged."""
    if verdict is None:
        if current is not None:
            comparison = paired(_right_by_photo(registry, model["id"]), _right_by_photo(registry, current["id"]))
        verdict = should_promote(comparison)
        say(f"model {model['id']}: {verdict[1]}")
    promote, reason = verdict
    if promote:
        registry.promote(model["id"], "promoted", {"reason": reason,
                                                   "comparison": comparison.as_dict() if comparison else None})
    else:
        registry.log({"event": "kept", "model": current["id"], "candidate": model["id"], "reason": reason})
    return _summary(registry.manifest(model["id"]), current, promote, reason, comparison, registry)


def _lit_start(registry: ModelRegistry, current: dict | None):
    """The current model's LiT encoder, which the next LiT tower continues from (None: start afresh)."""
    if current is None or current["learner"]["name"] != "lit":
        return None
    from shoefind.encoders.load import load_encoder
    from shoefind.registry.current import model_spec
    return load_encoder(model_spec(registry, current))


def calibration_share(shas, y: np.ndarray, seed: int) -> np.ndarray:
    """The photos a one-fit learner keeps out for calibration: chosen by content hash, so a photo kept
    out once is never trained on later (a LiT tower continued from an earlier one has not seen them);
    a shoe with 3+ photos and none kept out gives its lowest-ranked one."""
    rank = np.array([int(hashlib.sha256(f"{seed}|calibration|{s}".encode()).hexdigest()[:12], 16) / 16 ** 12
                     for s in shas])
    out = rank < CALIBRATION_SHARE
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        if len(idx) >= 3 and not out[idx].any():
            out[idx[np.argmin(rank[idx])]] = True
    return out


def _calibrate(name, encoder, table, data, seed, options, say, start=None,
               model=None) -> tuple[Thresholds, "learners.Fitted | None"]:
    """Thresholds from answers on photos each fit did not see. One-fit learners (LiT, CoOp) keep a share
    of the photos out of their one fit (calibration_share); that fit is also the model (returned).

    Only photos a person labeled (the seeds, the reviewed ones) are answered for calibration; the photos a
    model admitted itself are trained on but never calibrate: they are the ones it was sure of, and
    cross-fitting over them overstated precision (measured on nike-silhouettes expansion runs: calibration
    accuracy 0.93 where held-out top-1 was 0.80, and auto-accepted precision fell to 95%)."""
    x, y = data["train_x"], data["train_y"]
    person = ~data.get("by_model", np.zeros(len(y), bool))
    folds_n = learners.calibration_folds(name)
    if folds_n > 1:     # each shoe's photos dealt round-robin over the folds, in a seeded order
        rng = np.random.default_rng(seed)
        folds = np.zeros(len(y), int)
        for c in np.unique(y):
            idx = rng.permutation(np.flatnonzero(y == c))
            folds[idx] = np.arange(len(idx)) % folds_n
    else:
        folds = np.where(calibration_share(data["train"]["sha256"], y, seed), 0, 1)
    probs, truth, similarity, neighbour, last = [], [], [], [], None
    for f in range(folds_n):
        val, fit_rows = (folds == f) & person, folds != f
        if not val.any() or len(np.unique(y[fit_rows])) < 2:
            continue
        fitted = learners.fit(name, encoder, table, x[fit_rows], y[fit_rows], seed, options, say, start, like=model)
        probs.append(fitted.head.predict_proba(x[val]))
        truth.append(y[val])
        near, row = nearest_photo(x[val], x[fit_rows])
        similarity.append(near)
        neighbour.append(y[fit_rows][row])
        last = fitted
    if not probs:
        return Thresholds(None, None, calibration={"photos": 0, "folds": folds_n}), None
    thresholds = choose_thresholds(np.concatenate(probs), np.concatenate(truth), np.concatenate(similarity),
                                   folds=folds_n, neighbour=np.concatenate(neighbour))
    say(f"triage thresholds: {thresholds.describe()}")
    return thresholds, (last if folds_n == 1 else None)


def _evaluate(fitted, table, data) -> tuple[dict, pd.DataFrame]:
    """Held-out top-1/top-5 and every held-out photo's answer."""
    held = data["held"]
    folders = table.shoes["folder"].tolist()
    if not len(held):
        return {"photos": 0, "top1": None, "top5": None}, pd.DataFrame(
            columns=["sha256", "folder", "predicted", "correct", "top5"])
    probs = fitted.head.predict_proba(data["held_x"])
    order = np.argsort(-probs, axis=1)[:, :5]
    truth = data["held_y"]
    right = order[:, 0] == truth
    top5 = (order == truth[:, None]).any(axis=1)
    answers = pd.DataFrame({"sha256": held["sha256"], "folder": held["folder"],
                            "predicted": [folders[i] for i in order[:, 0]], "correct": right.astype(int),
                            "top5": top5.astype(int)})
    return {"photos": int(len(held)), "top1": round(float(right.mean()), 4),
            "top5": round(float(top5.mean()), 4)}, answers


def _references(encoder, table, data) -> dict:
    """The held-out photos' shoe top-1 by the nearest training photo (the dataset's photos are the catalog
    `infer` searches) and by zero-shot prompts: the model is used only where it is not lower."""
    from shoefind.learn.references import reference_scores
    return reference_scores(encoder, table.shoes, table.attributes, data["held_x"], data["held_y"],
                            data["train_x"], data["train_y"])


def _right_by_photo(registry: ModelRegistry, model_id: str) -> dict[str, bool]:
    answers = pd.read_csv(registry.model_dir(model_id) / PREDICTIONS, dtype={"sha256": str})
    return dict(zip(answers["sha256"], answers["correct"].astype(bool)))


def _summary(manifest: dict, before: dict | None, promoted: bool, reason: str, comparison, registry) -> dict:
    return {"model": manifest["id"], "learner": manifest["learner"]["name"], "trained": False, "promoted": promoted,
            "reason": reason,
            "current": registry.current_id(), "previous": before["id"] if before else None,
            "heldout": manifest["heldout"], "before": before["heldout"] if before else None,
            "comparison": comparison.as_dict() if comparison else None, "thresholds": manifest["thresholds"],
            "timing": manifest["timing"], "train_photos": manifest["data"]["photos"],
            "registry": str(registry.root)}
