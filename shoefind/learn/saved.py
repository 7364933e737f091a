"""Learned classifiers on disk, and the one inference should use: `best_method`.

`shoefind learn` saves, per model and dataset, in DATA_DIR/learned/<model id>/<dataset>/:
- manifest.json: format version, model id and cache key, the classes each task was trained
  for, the comparison on the held-out split and the best method per task;
- fewshot-<task>.npz: the k-shot support photos' embeddings and labels, with Tip-Adapter's
  cache keys and blend weights (and Tip-Adapter-F's trained keys and weights), and the linear
  probe's weights, bias, classes and feature mean; the prototype classifier is rebuilt from the
  same photos;
- coop-<task>.pt / cocoop-<task>.pt: the context vectors (and CoCoOp's meta-network), see
  shoefind.learn.coop.

Loading rebuilds every classifier for the *current* catalog: a shoe added after training is
scored by its zero-shot prompts (with a CLIP model), so nothing fails on new classes.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from shoefind.learn.methods import Comparison, TaskSpec, task_specs
from shoefind.learn.fewshot import LinearProbe, PrototypeClassifier, TipAdapter, ZeroShotClassifier
from shoefind.features.table import FeatureTable
from shoefind.scoring.zeroshot import Identification, softmax
from shoefind.errors import UserError
from shoefind.learn.finite import require_finite_weights
from shoefind.settings import DataLayout

MANIFEST_FORMAT = "shoefind-learned"
MANIFEST_VERSION = 1
LEARNED_METHODS = ("prototype", "tip-adapter", "tip-adapter-f", "linear-probe", "coop", "cocoop")
TIP_METHODS = {"tip-adapter": "", "tip-adapter-f": "_f"}   # method -> suffix of its arrays in fewshot-<task>.npz


def _learned_weights(comparison: Comparison):
    """(name, array or tensor) of every number save_learned writes."""
    for task, (x, _labels) in comparison.support.items():
        yield f"support embeddings ({task})", x
    for method, per_task in comparison.fitted.items():
        for task, clf in per_task.items():
            where = f"{method} ({task})"
            for attr in ("keys", "alpha", "beta", "weights", "bias", "logit_scale", "ctx", "text", "prototypes"):
                value = getattr(clf, attr, None)
                if isinstance(value, (int, float)) or hasattr(value, "shape"):
                    yield f"{where} {attr}", value
            mean = getattr(getattr(clf, "space", None), "mean", None)
            if mean is not None:
                yield f"{where} mean", mean
            meta = getattr(getattr(clf, "learner", None), "meta_net", None)
            if getattr(clf, "conditional", False) and meta is not None:
                yield from ((f"{where} meta_net.{k}", v) for k, v in meta.state_dict().items())


def learned_dir(data_dir: str | os.PathLike, model_id: str, dataset: str) -> Path:
    return DataLayout(Path(data_dir)).learned_dir(model_id, dataset)


def save_learned(data_dir: str | os.PathLike, comparison: Comparison, encoder, dataset: str) -> Path:
    """Write the largest-k classifiers of a comparison and its manifest; returns the folder."""
    # a diverged classifier is refused before any file is written: the previous ones stay
    require_finite_weights(list(_learned_weights(comparison)), "learning the classifiers")
    out = learned_dir(data_dir, encoder.model_id, dataset)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, dict[str, str]] = {}
    for task, (x, labels) in comparison.support.items():
        arrays = {"embeddings": x.astype(np.float32), "labels": np.array(labels),
                  "alpha": np.float32(1.0), "beta": np.float32(5.5)}
        for method, suffix in TIP_METHODS.items():
            tip = comparison.fitted.get(method, {}).get(task)
            if isinstance(tip, TipAdapter):
                arrays.update({f"alpha{suffix}": np.float32(tip.alpha), f"beta{suffix}": np.float32(tip.beta),
                               f"keys{suffix}": tip.keys.astype(np.float32)})
        probe = comparison.fitted.get("linear-probe", {}).get(task)
        if isinstance(probe, LinearProbe):
            arrays.update({"probe_weights": probe.weights.astype(np.float32), "probe_bias": probe.bias.astype(np.float32),
                           "probe_classes": np.array(probe.classes), "probe_scale": np.float32(probe.logit_scale),
                           "probe_decay": np.float32(probe.decay)})
            if probe.space.mean is not None:
                arrays["probe_mean"] = probe.space.mean.astype(np.float32)
        np.savez(out / f".fewshot-{task}.npz.tmp.npz", **arrays)
        os.replace(out / f".fewshot-{task}.npz.tmp.npz", out / f"fewshot-{task}.npz")
        for method in ("prototype", *TIP_METHODS, "linear-probe"):
            if task in comparison.fitted.get(method, {}):
                files.setdefault(method, {})[task] = f"fewshot-{task}.npz"
    for method in ("coop", "cocoop"):
        for task, clf in comparison.fitted.get(method, {}).items():
            if not hasattr(clf, "save"):
                continue   # a task without training photos kept its zero-shot prompts
            clf.save(out / f"{method}-{task}.pt")
            files.setdefault(method, {})[task] = f"{method}-{task}.pt"
    metrics = comparison.metrics
    best = {t: comparison.best(t) for t in sorted(set(metrics["task"]))}
    manifest = {"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "model_id": encoder.model_id,
                "cache_key": encoder.cache_key, "has_text": bool(encoder.has_text), "dataset": str(dataset),
                "created": datetime.now(timezone.utc).isoformat(), "shots": comparison.split.shots,
                "seed": comparison.split.seed, "best": best, "files": files,
                "classes": {t: sorted(set(labels)) for t, (_x, labels) in comparison.support.items()},
                "comparison": json.loads(metrics.to_json(orient="records")),
                "zeroshot_options": comparison.options}
    tmp = out / ".manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2))
    os.replace(tmp, out / "manifest.json")
    return out


def read_manifest(folder: Path) -> dict | None:
    path = folder / "manifest.json"
    if not path.is_file():
        return None
    manifest = json.loads(path.read_text())
    if manifest.get("format") != MANIFEST_FORMAT or int(manifest.get("version", 0)) > MANIFEST_VERSION:
        raise UserError(f"{path} is not a learned-classifier manifest this shoefind can read")
    return manifest


def _support(folder: Path, file: str, spec: TaskSpec, suffix: str = "") -> tuple:
    """Support photos whose label is still a class of the current catalog, as indices, with the
    Tip-Adapter variant's (suffix) blend weights and cache keys (None in files older than keys)."""
    with np.load(folder / file, allow_pickle=False) as z:
        x, labels = z["embeddings"], [str(v) for v in z["labels"]]
        alpha, beta = float(z.get(f"alpha{suffix}", z["alpha"])), float(z.get(f"beta{suffix}", z["beta"]))
        keys = z[f"keys{suffix}"] if f"keys{suffix}" in z.files else None
    index = {c: i for i, c in enumerate(spec.classes)}
    keep = np.array([lab in index for lab in labels], bool)
    y = np.array([index[lab] for lab, k in zip(labels, keep) if k], dtype=int)
    return x[keep], y, alpha, beta, None if keys is None else keys[keep]


def load_classifier(folder: Path, manifest: dict, method: str, spec: TaskSpec, encoder):
    """One task's saved classifier, rebuilt for the classes of `spec`; None when not saved."""
    file = manifest["files"].get(method, {}).get(spec.task)
    if file is None:
        return None
    scale = encoder.logit_scale if encoder.has_text else 100.0
    if method in ("coop", "cocoop"):
        from shoefind.learn.coop import load_coop
        return load_coop(folder / file, encoder, spec)
    if method == "linear-probe":
        return _probe(folder / file, spec)
    x, y, alpha, beta, keys = _support(folder, file, spec, TIP_METHODS.get(method, ""))
    if method in TIP_METHODS:
        return TipAdapter.build(x, y, spec.classes, spec.text, scale, alpha=alpha, beta=beta, keys=keys,
                                finetuned=method == "tip-adapter-f")
    return PrototypeClassifier.fit(x, y, spec.classes, spec.text, scale)


def _probe(path: Path, spec: TaskSpec) -> LinearProbe | None:
    """The saved linear probe, its columns put in the current catalog's class order. A class it was
    not trained on keeps its prompt (with a text side, as in training) or can never win (image-only)."""
    from shoefind.learn.fewshot import FeatureSpace
    with np.load(path, allow_pickle=False) as z:
        if "probe_weights" not in z.files:
            return None
        w, b, saved = z["probe_weights"], z["probe_bias"], [str(c) for c in z["probe_classes"]]
        scale, decay = float(z["probe_scale"]), float(z["probe_decay"])
        mean = z["probe_mean"] if "probe_mean" in z.files else None
    column = {c: i for i, c in enumerate(saved)}
    known = np.array([c in column for c in spec.classes], bool)
    weights = np.zeros((w.shape[0], len(spec.classes)), np.float32)
    bias = np.zeros(len(spec.classes), np.float32)
    order = [column[c] for c in np.array(spec.classes)[known]]
    weights[:, known], bias[known] = w[:, order], b[order]
    if not known.all():
        if spec.text is not None:
            weights[:, ~known] = np.asarray(spec.text, np.float32)[~known].T
            bias[~known] = b.mean()
        else:
            bias[~known] = b.min() - 10.0
    return LinearProbe(list(spec.classes), weights, bias, scale, FeatureSpace(mean), decay,
                       {"by": "saved", "decay": decay})


@dataclass
class LearnedClassifier:
    """Per-task classifiers with one interface: `predict_proba(task, x)` and `identify(x)`."""
    method: str
    model_id: str
    classifiers: dict[str, object]      # task -> classifier with classes / logits / predict_proba
    folder: Path | None = None

    @property
    def tasks(self) -> list[str]:
        return list(self.classifiers)

    def classes(self, task: str) -> list[str]:
        return self.classifiers[task].classes

    def predict_proba(self, task: str, embeddings: np.ndarray) -> np.ndarray:
        return self.classifiers[task].predict_proba(np.asarray(embeddings, np.float32))

    def identify(self, embeddings: np.ndarray) -> Identification:
        """Like ZeroShotModel.identify: attribute probabilities and shoe scores (catalog order)."""
        x = np.asarray(embeddings, np.float32)
        probs = {t: self.predict_proba(t, x) for t in self.tasks if t != "name"}
        name = softmax(self.classifiers["name"].logits(x))
        return Identification(probs, name, name.copy())


def best_method(data_dir: str | os.PathLike, encoder, table: FeatureTable,
                task: str = "name", among: tuple[str, ...] | None = None) -> LearnedClassifier | None:
    """The learned method that scored best on `task` when `shoefind learn` ran for this model and
    dataset, rebuilt for the table's current shoes; None when nothing was learned (use zero-shot).

    Tasks the best method lacks fall back to zero-shot prompts (CLIP) when possible.
    `among` limits the choice to some saved methods (e.g. the few-shot ones).
    """
    folder = learned_dir(data_dir, encoder.model_id, str(table.root))
    manifest = read_manifest(folder)
    if manifest is None:
        return None
    if manifest["model_id"] != encoder.model_id:
        raise UserError(f"{folder} was learned with {manifest['model_id']}, not {encoder.model_id}")
    method = manifest["best"].get(task) if among is None else _best_among(manifest, task, among)
    if method not in LEARNED_METHODS:
        return None
    return load_method(folder, manifest, method, encoder, table)


def _best_among(manifest: dict, task: str, among: tuple[str, ...]) -> str | None:
    """The saved method of `among` with the best top-1 (then top-5) on `task` at the largest k."""
    rows = [r for r in manifest.get("comparison", []) if r.get("task") == task and r.get("method") in among
            and task in manifest["files"].get(r["method"], {})]
    if not rows:
        return None
    k = max(r["shots"] for r in rows)
    best = max((r for r in rows if r["shots"] == k), key=lambda r: (r["top1"] or 0, r["top5"] or 0))
    return best["method"]


def load_method(folder: Path, manifest: dict, method: str, encoder, table: FeatureTable) -> LearnedClassifier:
    classifiers = {}
    from shoefind.scoring.zeroshot import ZeroShotOptions
    options = ZeroShotOptions.parse(**(manifest.get("zeroshot_options") or {}))   # the prompts it learned with
    for spec in task_specs(encoder, table, options):
        clf = load_classifier(folder, manifest, method, spec, encoder)
        if clf is None and spec.text is not None:
            clf = ZeroShotClassifier(spec.classes, spec.text, encoder.logit_scale)
        if clf is not None:
            classifiers[spec.task] = clf
    return LearnedClassifier(method, encoder.model_id, classifiers, folder)
