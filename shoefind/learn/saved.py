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

Nothing is trusted on sight: the manifest records each file's sha256, and loading refuses, with one
line naming the folder (DamagedLearned, exit code 2), a manifest that is truncated or edited, a file that
is not the one the manifest names, one that cannot be read whole, that carries code or holds NaN. It
never falls back to zero-shot in silence.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from shoefind.learn.methods import Comparison, TaskSpec, task_specs
from shoefind.learn.fewshot import LinearProbe, PrototypeClassifier, TipAdapter, ZeroShotClassifier
from shoefind.features.table import FeatureTable
from shoefind.scoring.zeroshot import Identification, softmax
from shoefind.errors import UserError
from shoefind.images import sha256_file
from shoefind.learn.finite import require_finite_weights
from shoefind.settings import DataLayout

MANIFEST_FORMAT = "shoefind-learned"
MANIFEST_VERSION = 2   # 2: the held-out references (nearest catalog photo, zero-shot)
LEARNED_METHODS = ("prototype", "tip-adapter", "tip-adapter-f", "linear-probe", "coop", "cocoop")
TIP_METHODS = {"tip-adapter": "", "tip-adapter-f": "_f"}   # method -> suffix of its arrays in fewshot-<task>.npz
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")   # a file in the folder, never a path out of it
_SHA256 = re.compile(r"[0-9a-f]{64}")


class DamagedLearned(UserError):
    """Saved classifiers that cannot be used as they are (truncated, edited, not the files learn wrote)."""


class LearnedForAnotherModel(UserError):
    """Saved classifiers whose manifest names another model than the one loaded."""


def _damaged(folder: Path, why: str) -> DamagedLearned:
    return DamagedLearned(f"the classifiers learned in {folder} cannot be used: {why}. Run `shoefind learn` "
                          "again, or delete that folder to use zero-shot")


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
    digests: dict[str, str] = {}   # what loading compares each file with
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
        digests[f"fewshot-{task}.npz"] = sha256_file(out / f"fewshot-{task}.npz")
        for method in ("prototype", *TIP_METHODS, "linear-probe"):
            if task in comparison.fitted.get(method, {}):
                files.setdefault(method, {})[task] = f"fewshot-{task}.npz"
    for method in ("coop", "cocoop"):
        for task, clf in comparison.fitted.get(method, {}).items():
            if not hasattr(clf, "save"):
                continue   # a task without training photos kept its zero-shot prompts
            clf.save(out / f"{method}-{task}.pt")
            files.setdefault(method, {})[task] = f"{method}-{task}.pt"
            digests[f"{method}-{task}.pt"] = sha256_file(out / f"{method}-{task}.pt")
    metrics = comparison.metrics
    best = {t: comparison.best(t) for t in sorted(set(metrics["task"]))}
    manifest = {"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "model_id": encoder.model_id,
                "cache_key": encoder.cache_key, "has_text": bool(encoder.has_text), "dataset": str(dataset),
                "created": datetime.now(timezone.utc).isoformat(), "shots": comparison.split.shots,
                "seed": comparison.split.seed, "best": best, "files": files, "sha256": digests,
                "classes": {t: sorted(set(labels)) for t, (_x, labels) in comparison.support.items()},
                "comparison": json.loads(metrics.to_json(orient="records")),
                "references": comparison.references,
                "zeroshot_options": comparison.options}
    tmp = out / ".manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2))
    os.replace(tmp, out / "manifest.json")
    return out


def read_manifest(folder: Path) -> dict | None:
    """The folder's manifest (None when nothing was learned), every field checked for what loading reads."""
    path = folder / "manifest.json"
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise _damaged(folder, f"manifest.json cannot be read ({'truncated or not JSON' if isinstance(exc, ValueError) else exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise UserError(f"{path} is not a learned-classifier manifest this shoefind can read")
    version = manifest.get("version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise _damaged(folder, f"manifest.json says version {version!r}")
    if version > MANIFEST_VERSION:
        raise UserError(f"{path} is not a learned-classifier manifest this shoefind can read")
    _check_manifest(folder, manifest)
    return manifest


def _check_manifest(folder: Path, manifest: dict) -> None:
    """DamagedLearned naming the first field of the manifest that is missing or not what learn writes."""
    def strings(value) -> bool:
        return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
    problems = []
    if not isinstance(manifest.get("model_id"), str):
        problems.append("no model_id")
    if not strings(manifest.get("best")):
        problems.append("its best methods are not names")
    files = manifest.get("files")
    if not isinstance(files, dict) or not all(strings(per_task) and all(_FILE_NAME.fullmatch(f) for f in per_task.values())
                                              for per_task in files.values()):
        problems.append("its files are not file names of the folder")
    digests = manifest.get("sha256", {})   # manifests written before checksums have none
    if not strings(digests) or not all(_SHA256.fullmatch(d) for d in digests.values()):
        problems.append("its sha256 list is not sha256 digests")
    rows = manifest.get("comparison", [])
    if not isinstance(rows, list) or not all(isinstance(r, dict) and isinstance(r.get("shots"), int)
                                             and all(isinstance(r.get(k), (int, float, type(None))) for k in ("top1", "top5"))
                                             for r in rows):
        problems.append("its comparison table is not numbers")
    refs = manifest.get("references", {})      # manifests of version 1 have none
    if not isinstance(refs, dict) or not all(r is None or (isinstance(r, dict) and isinstance(
            r.get("top1"), (int, float, type(None))) and not isinstance(r.get("top1"), bool)) for r in refs.values()):
        problems.append("its references are not scores")
    if not isinstance(manifest.get("zeroshot_options") or {}, dict):
        problems.append("its zero-shot options are not options")
    if problems:
        raise _damaged(folder, f"manifest.json is edited or damaged ({problems[0]})")


def _verified(folder: Path, manifest: dict, file: str) -> Path:
    """folder/file, when it is the file the manifest recorded (manifests without checksums: as it is)."""
    path = folder / file
    if not path.is_file():
        raise _damaged(folder, f"{file} is missing")
    digests = manifest.get("sha256")
    if digests is not None:
        if file not in digests:
            raise _damaged(folder, f"manifest.json records no sha256 for {file}")
        if sha256_file(path) != digests[file]:
            raise _damaged(folder, f"{file} is not the file `shoefind learn` wrote (its sha256 differs from the manifest's)")
    return path


def _support(folder: Path, file: str, spec: TaskSpec, suffix: str = "") -> tuple:
    """Support photos whose label is still a class of the current catalog, as indices, with the
    Tip-Adapter variant's (suffix) blend weights and cache keys (None in files older than keys)."""
    with np.load(folder / file, allow_pickle=False) as z:
        x, labels = z["embeddings"], [str(v) for v in z["labels"]]
        alpha, beta = float(z.get(f"alpha{suffix}", z["alpha"])), float(z.get(f"beta{suffix}", z["beta"]))
        keys = z[f"keys{suffix}"] if f"keys{suffix}" in z.files else None
    _sound(folder / file, {"embeddings": x, "alpha": alpha, "beta": beta, "keys": keys})
    if x.ndim != 2 or len(x) != len(labels) or (keys is not None and keys.shape != x.shape):
        raise ValueError(f"{len(labels)} labels for support embeddings of shape {x.shape}")
    index = {c: i for i, c in enumerate(spec.classes)}
    keep = np.array([lab in index for lab in labels], bool)
    y = np.array([index[lab] for lab, k in zip(labels, keep) if k], dtype=int)
    return x[keep], y, alpha, beta, None if keys is None else keys[keep]


def load_classifier(folder: Path, manifest: dict, method: str, spec: TaskSpec, encoder):
    """One task's saved classifier, rebuilt for the classes of `spec`; None when not saved."""
    file = manifest["files"].get(method, {}).get(spec.task)
    if file is None:
        return None
    path = _verified(folder, manifest, file)
    scale = encoder.logit_scale if encoder.has_text else 100.0
    if method in ("coop", "cocoop"):
        from shoefind.learn.coop import load_coop
        return load_coop(path, encoder, spec)
    try:
        if method == "linear-probe":
            return _probe(path, spec)
        x, y, alpha, beta, keys = _support(folder, file, spec, TIP_METHODS.get(method, ""))
    except UserError:
        raise
    except Exception as exc:   # zipfile, zlib, numpy, a missing array or one of the wrong shape: all "damaged"
        raise _damaged(folder, f"{file} cannot be read whole ({type(exc).__name__}: {str(exc)[:120]})") from None
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
    _sound(path, {"probe_weights": w, "probe_bias": b, "probe_scale": scale, "probe_mean": mean})
    if w.ndim != 2 or w.shape[1] != len(saved) or b.shape != (len(saved),) or \
            (mean is not None and mean.shape != (w.shape[0],)):
        raise ValueError(f"probe weights {w.shape} and bias {b.shape} for {len(saved)} classes")
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


def _sound(path: Path, arrays: dict) -> None:
    """Refuse saved numbers holding NaN or infinities (an older shoefind could write them)."""
    from shoefind.artifacts.finite import require_finite_model
    require_finite_model(arrays, path, "learned classifier", "run `shoefind learn` again")


@dataclass
class LearnedClassifier:
    """Per-task classifiers with one interface: `predict_proba(task, x)` and `identify(x)`."""
    method: str
    model_id: str
    classifiers: dict[str, object]      # task -> classifier with classes / logits / predict_proba
    folder: Path | None = None
    heldout_top1: float | None = None   # its shoe top-1 on learn's test photos, at the largest k
    references: dict | None = None      # the same photos' nearest-photo and zero-shot top-1 (None: not recorded)
    trained_shoes: set | None = None    # the shoes it had a training photo of

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
        raise LearnedForAnotherModel(f"{folder} was learned with {manifest['model_id']}, not {encoder.model_id}")
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
    try:
        options = ZeroShotOptions.parse(**(manifest.get("zeroshot_options") or {}))   # the prompts it learned with
    except (TypeError, ValueError) as exc:
        raise _damaged(folder, f"manifest.json names zero-shot options this shoefind does not have ({exc})") from None
    for spec in task_specs(encoder, table, options):
        clf = load_classifier(folder, manifest, method, spec, encoder)
        if clf is None and spec.text is not None:
            clf = ZeroShotClassifier(spec.classes, spec.text, encoder.logit_scale)
        if clf is not None:
            classifiers[spec.task] = clf
    trained = (manifest.get("classes") or {}).get("name")
    return LearnedClassifier(method, encoder.model_id, classifiers, folder, _heldout_top1(manifest, method),
                             manifest.get("references") if isinstance(manifest.get("references"), dict) else None,
                             set(trained) if isinstance(trained, list) else None)


def _heldout_top1(manifest: dict, method: str) -> float | None:
    rows = [r for r in manifest.get("comparison", []) if r.get("task") == "name" and r.get("method") == method]
    if not rows:
        return None
    return max(rows, key=lambda r: r["shots"]).get("top1")
