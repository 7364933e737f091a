"""Method comparison: zero-shot, few-shot (prototype, Tip-Adapter, Tip-Adapter-F, linear probe), CoOp and CoCoOp
on one held-out split.

For every k the methods are fitted on the k-shot training photos and all scored on the
same test photos (see shoefind.features.splits), per task: brand, color, hightop, sole, name.
With `views` > 0, that many augmented views of every training photo are encoded once and
cached (shoefind.features.views): Tip-Adapter averages its keys over them, CoOp, CoCoOp and
Tip-Adapter-F draw one per photo and epoch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from shoefind.encoders.base import require_text
from shoefind.errors import ShoefindError
from shoefind.features.cache import EmbeddingCache
from shoefind.scoring.metrics import accuracy_at, confusion_matrix
from shoefind.learn.fewshot import LinearProbe, PrototypeClassifier, TipAdapter, ZeroShotClassifier
from shoefind.features.splits import Split, make_split, usable_shots
from shoefind.features.table import FeatureTable
from shoefind.scoring.zeroshot import ZeroShotModel, ZeroShotOptions, attribute_classes, top_k
from shoefind.threads import single_threaded_blas
from shoefind.errors import UserError

METHOD_CHOICES = ("zeroshot", "fewshot", "tip-adapter-f", "linear-probe", "coop", "cocoop")
FEWSHOT_METHODS = ("prototype", "tip-adapter", "tip-adapter-f", "linear-probe")   # what 'fewshot' runs
TEXT_METHODS = ("zeroshot", "coop", "cocoop")
VIEW_METHODS = ("tip-adapter", "tip-adapter-f", "coop", "cocoop")   # the methods that use augmented views
METRIC_COLUMNS = ["method", "shots", "task", "classes", "train_images", "images", "top1", "top5"]


def expand_methods(methods: list[str] | str) -> list[str]:
    """CLI method names -> the classifiers run ('fewshot' is the prototype, Tip-Adapter, Tip-Adapter-F and
    the linear probe)."""
    if isinstance(methods, str):
        methods = [m for m in methods.replace(" ", "").split(",") if m]
    out = []
    for m in methods:
        if m not in METHOD_CHOICES:
            raise UserError(f"unknown method '{m}': choose from {', '.join(METHOD_CHOICES)}")
        out += list(FEWSHOT_METHODS) if m == "fewshot" else [m]
    return list(dict.fromkeys(out))


def check_methods(encoder, methods: list[str]) -> None:
    """A clear error before any work when a method needs a text side the encoder lacks."""
    from shoefind.encoders.base import require_prompt_learning
    for m in methods:
        if m in TEXT_METHODS:
            require_text(encoder, m)
        if m == "coop":
            require_prompt_learning(encoder, m)


def default_methods(encoder) -> str:
    if not encoder.has_text:
        return "fewshot"
    return "zeroshot,fewshot,coop" if getattr(encoder, "supports_prompt_learning", False) else "zeroshot,fewshot"


def methods_problem(model: str | None, methods: list[str] | str | None) -> str | None:
    """None when the model can run these methods, else why not (checked before any work, without
    loading the model: only the image-only backbones lack a text side)."""
    from shoefind.encoders.families.backbones import is_image_backbone
    from shoefind.encoders.base import no_text_message
    from shoefind.encoders.spec import spec_text
    try:
        expanded = expand_methods(methods or "fewshot")
    except ValueError as exc:
        return str(exc)
    spec = spec_text(model)
    needs_text = [m for m in expanded if m in TEXT_METHODS]
    if is_image_backbone(spec) and needs_text:
        return no_text_message(spec, needs_text[0])
    if "coop" in expanded:
        from shoefind.encoders.load import parse_spec
        try:
            family = parse_spec(spec).family
        except ShoefindError as exc:
            return str(exc)
        if family in ("open_clip", "hf"):
            return (f"coop trains context vectors through the OpenAI CLIP text tower; {spec} is a {family} "
                    "model, so it cannot run here. Use --method zeroshot,fewshot (Tip-Adapter) with it, "
                    "or a clip: model for CoOp.")
    return None


@dataclass
class TaskSpec:
    """One classification task: its classes, the label column, and the zero-shot class embeddings."""
    task: str
    classes: list[str]
    label_column: str
    text: np.ndarray | None = None
    prompts: str = "shoefind"           # the prompt set of `text` (and of CoOp's class texts)

    def labels(self, frame: pd.DataFrame) -> np.ndarray:
        """Class index per row (-1 where the label is not one of the classes)."""
        index = {c: i for i, c in enumerate(self.classes)}
        return frame[self.label_column].astype(str).map(lambda v: index.get(v, -1)).to_numpy(dtype=int)


def task_specs(encoder, table: FeatureTable, options: ZeroShotOptions | None = None) -> list[TaskSpec]:
    """brand/color/hightop/sole (where the table has labels) and name, with prompt embeddings when possible."""
    return _specs_and_zeroshot(encoder, table, options)[0]


def _specs_and_zeroshot(encoder, table: FeatureTable, options: ZeroShotOptions | None = None):
    """The task specs and the zero-shot model whose prompts they carry (None without a text side)."""
    options = options or ZeroShotOptions()
    if options.prompt_set.as_written:   # the seed's sets: the catalog's own words are the classes
        table = table.in_catalog_words()
    attributes = table.attributes
    zs = ZeroShotModel.build(encoder, table.shoes, attributes=attributes, options=options) if encoder.has_text else None
    specs = [TaskSpec(a, attribute_classes(a, table.shoes[a], options.vocabulary, options.prompt_set.as_written), a,
                      prompts=options.prompts)
             for a in attributes]
    specs.append(TaskSpec("name", table.shoes["shoe"].tolist(), "shoe", prompts=options.prompts))
    if zs is not None:
        for s in specs:
            s.text = zs.class_embeddings[s.task]
    return specs, zs


@dataclass
class Comparison:
    metrics: pd.DataFrame
    split: Split
    fitted: dict[str, dict[str, object]] = field(default_factory=dict)   # method -> task -> classifier (largest k)
    model_id: str = ""
    random_weights: bool = False
    skipped: list[dict] = field(default_factory=list)
    details: dict = field(default_factory=dict)                          # e.g. chosen alpha/beta, CoOp epochs
    support: dict[str, tuple[np.ndarray, list[str]]] = field(default_factory=dict)  # task -> largest-k photos, labels
    # the shoe top-1 a learned method must not fall below: nearest catalog photo, zero-shot (learn.references)
    references: dict = field(default_factory=dict)
    # method -> task -> (classes, confusion matrix) and the test photos' predictions, at the largest k (reports)
    confusion: dict[str, dict[str, tuple[list[str], np.ndarray]]] = field(default_factory=dict)
    predictions: dict[str, pd.DataFrame] = field(default_factory=dict)     # method -> path, <task>_true/_pred
    options: dict = field(default_factory=dict)                          # zero-shot options (prompt set...)

    def best(self, task: str = "name") -> str | None:
        """The learned method with the best top-1 (then top-5) on `task` at the largest k."""
        m = self.metrics[(self.metrics["task"] == task) & (self.metrics["method"] != "zeroshot")]
        if m.empty:
            return None
        m = m[m["shots"] == m["shots"].max()]
        return str(m.sort_values(["top1", "top5"], ascending=False).iloc[0]["method"])


def fit_classifier(method: str, spec: TaskSpec, train_x: np.ndarray, train_y: np.ndarray, encoder,
                   coop_options: dict | None = None, views: np.ndarray | None = None):
    if method == "zeroshot":
        return ZeroShotClassifier(spec.classes, spec.text, encoder.logit_scale)
    text = spec.text
    if len(train_y) == 0:
        # no labeled training photo for this task (e.g. a missing attribute): prompts alone
        if text is None:
            raise UserError(f"no training photo has a {spec.task} label, and {encoder.model_id} has no text side")
        return ZeroShotClassifier(spec.classes, text, encoder.logit_scale)
    scale = encoder.logit_scale if encoder.has_text else 100.0
    if method == "prototype":
        return PrototypeClassifier.fit(train_x, train_y, spec.classes, text, scale)
    if method in ("tip-adapter", "tip-adapter-f"):
        return TipAdapter.fit(train_x, train_y, spec.classes, text, scale, views=views,
                              finetune=method == "tip-adapter-f")
    if method == "linear-probe":
        return LinearProbe.fit(train_x, train_y, spec.classes, text, scale)
    if method in ("coop", "cocoop"):
        from shoefind.learn.coop import train_coop
        return train_coop(encoder, spec, train_x, train_y, views=views, conditional=method == "cocoop",
                          **(coop_options or {}))
    raise UserError(f"unknown method '{method}'")


def score(classifier, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    if len(x) == 0:
        return float("nan"), float("nan")
    return score_ranked(top_k(classifier.logits(x), 5), y)


def score_ranked(ranked: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Top-1 and top-5 of ranked class indices (n x 5)."""
    if len(ranked) == 0:
        return float("nan"), float("nan")
    return accuracy_at(y, ranked, 1), accuracy_at(y, ranked, 5)


def compare_methods(encoder, table: FeatureTable, cache: EmbeddingCache, methods: list[str], shots: list[int],
                    seed: int = 0, coop_options: dict | None = None,
                    log: Callable[[str], None] | None = None, options: ZeroShotOptions | None = None,
                    views: int | None = None) -> Comparison:
    """Fit every method at every usable k and score it on the split's test photos.

    views: augmented views per training photo, encoded once into their own cache (None: each method's
    official setting, see shoefind.features.views.views_plan; 0: none)."""
    methods = expand_methods(methods)
    check_methods(encoder, methods)
    single_threaded_blas()   # the fits' products are small: BLAS threads only wait for each other
    if (options or ZeroShotOptions()).prompt_set.as_written:   # labels in the catalog's own words
        table = table.in_catalog_words()
    labeled = table.labeled_images()
    have = labeled["sha256"].map(lambda s: s in cache)
    skipped = labeled.loc[~have, ["path", "shoe"]].to_dict("records")
    labeled = labeled.loc[have].reset_index(drop=True)
    usable = usable_shots(labeled, shots)
    if not usable and any(m != "zeroshot" for m in methods):
        raise UserError("no shoe has more than one embedded photo: few-shot needs at least one training and one "
                         "test photo per shoe")
    split = make_split(labeled[["path", "sha256", "shoe"]], usable or [1], seed)
    attrs = labeled.drop(columns=["sha256", "shoe"])   # labels joined back by path (unique per image)
    test = split.test().merge(attrs, on="path")
    test_x = cache.matrix(test["sha256"].tolist())
    specs, zeroshot = _specs_and_zeroshot(encoder, table, options)
    rows, fitted, details, support, confusion, predictions = [], {}, {}, {}, {}, {}
    say = log or (lambda _m: None)
    from shoefind.learn.augmented_views import prepare_views
    pool = split.train(max(usable)) if usable else test.iloc[:0]     # every k's shots are among these
    views_of = prepare_views(encoder, cache.dir.parent, table.root, pool, [m for m in methods if m in VIEW_METHODS],
                             views, coop_options, seed, say)

    for method in methods:
        for k in ([0] if method == "zeroshot" else usable):
            train = split.train(k).merge(attrs, on="path") if k else test.iloc[:0]
            train_x = cache.matrix(train["sha256"].tolist()) if len(train) else np.zeros((0, test_x.shape[1]),
                                                                                         np.float32)
            train_views = views_of(method, train)
            for spec in specs:
                ty = spec.labels(test)
                keep = ty >= 0
                tr_y = spec.labels(train)
                tr_keep = tr_y >= 0
                clf = fit_classifier(method, spec, train_x[tr_keep], tr_y[tr_keep], encoder, coop_options,
                                     None if train_views is None else train_views[tr_keep])
                # the test photos are ranked once: the scores and, at the largest k, the report's confusions
                ranked = top_k(clf.logits(test_x[keep]), 5) if keep.any() else np.zeros((0, 5), int)
                top1, top5 = score_ranked(ranked, ty[keep])
                rows.append({"method": method, "shots": k, "task": spec.task, "classes": len(spec.classes),
                             "train_images": int(tr_keep.sum()), "images": int(keep.sum()),
                             "top1": top1, "top5": top5})
                if k == (max(usable) if method != "zeroshot" else 0):
                    fitted.setdefault(method, {})[spec.task] = clf
                    if keep.any():
                        _record_predictions(confusion, predictions, method, spec, ranked[:, 0], test, ty, keep)
                    if k and tr_keep.any():
                        support[spec.task] = (train_x[tr_keep], [spec.classes[i] for i in tr_y[tr_keep]])
                    info = getattr(clf, "selection", None) or getattr(clf, "training", None)
                    if info:
                        details.setdefault(method, {})[spec.task] = info
                say(f"{method:11s} k={k:<2d} {spec.task:8s} top-1 {top1:.1%}  top-5 {top5:.1%}")
    metrics = pd.DataFrame(rows, columns=METRIC_COLUMNS)
    references = _references(encoder, table, specs, zeroshot, labeled, test, test_x, cache, options)
    if references["nearest"]["top1"] is not None:
        say("references on the same test photos: " + ", ".join(
            f"{name} top-1 {r['top1']:.1%}" for name, r in references.items() if r))
    return Comparison(metrics, split, fitted, encoder.model_id, getattr(encoder, "is_random", False), skipped,
                      details, support, references, confusion, predictions,
                      (options or ZeroShotOptions()).describe())


def _references(encoder, table, specs, zeroshot, labeled, test, test_x, cache, options) -> dict:
    """The test photos' shoe top-1 by the nearest other catalog photo (every labeled photo but its own
    copy: what `infer --method nearest` answers for a new photo of a catalog shoe) and by zero-shot."""
    from shoefind.learn.references import reference_scores
    name = next(s for s in specs if s.task == "name")
    truth, shoe_of = name.labels(test), name.labels(labeled)
    keep, known = truth >= 0, shoe_of >= 0
    return reference_scores(encoder, table.shoes, table.attributes, test_x[keep], truth[keep],
                            cache.matrix(labeled.loc[known, "sha256"].tolist()), shoe_of[known],
                            test.loc[keep, "sha256"].tolist(), labeled.loc[known, "sha256"].tolist(),
                            options, zeroshot)


def _record_predictions(confusion, predictions, method, spec, predicted, test, truth, keep) -> None:
    """The test photos' top-1 answers (`predicted`, for the `keep` rows) of one fitted classifier, for the
    report's confusions."""
    confusion.setdefault(method, {})[spec.task] = (spec.classes,
                                                   confusion_matrix(truth[keep], predicted, len(spec.classes)))
    frame = predictions.setdefault(method, test[["path"]].copy())
    frame[f"{spec.task}_true"] = [spec.classes[i] if i >= 0 else "" for i in truth]
    frame[f"{spec.task}_pred"] = ""
    frame.loc[keep, f"{spec.task}_pred"] = [spec.classes[i] for i in predicted]
