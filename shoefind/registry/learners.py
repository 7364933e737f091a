"""The learners a dataset can be configured with, behind one interface: fit on embeddings, save into a
model folder, load back for the current catalog.

- few-shot heads over the configured backbone's image embeddings: `linear-probe` (the default: the
  best offline learner, see docs/fewshot-offline.md), `prototype`, `tip-adapter`, `tip-adapter-f`;
- `lit`: a text tower trained against the frozen image-only backbone (shoefind.learn.lit); the
  model is the LiT checkpoint, identifying by its name prompts;
- `coop`, `cocoop`: context vectors learned through a CLIP model's text tower.

Every head answers `predict_proba(x)` over the catalog's shoes (the feature table's `shoe` names) and
is saved in the files `shoefind learn` writes (shoefind.learn.saved), so loading rebuilds it for the
catalog as it is then: a shoe added later cannot win an image-only head and keeps its prompt with a
text side.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from shoefind.errors import UserError
from shoefind.features.table import FeatureTable
from shoefind.learn.methods import TaskSpec

FEWSHOT = ("linear-probe", "prototype", "tip-adapter", "tip-adapter-f")
PROMPT_LEARNING = ("coop", "cocoop")
LEARNERS = FEWSHOT + ("lit",) + PROMPT_LEARNING
DEFAULT_LEARNER = "linear-probe"
HEAD_FILE = "head.npz"


@dataclass
class Fitted:
    """A trained head, the encoder whose image embeddings it reads, and what training reported."""
    head: object                       # classes, predict_proba(x)
    encoder: object
    details: dict = field(default_factory=dict)


def name_spec(encoder, table: FeatureTable, prompts: str | None = None) -> TaskSpec:
    """The shoe-name task over the table's shoes, with their prompt embeddings when the encoder has text."""
    from shoefind.learn.methods import task_specs
    from shoefind.scoring.zeroshot import ZeroShotOptions
    if encoder.has_text:
        options = ZeroShotOptions.parse(prompts=prompts) if prompts else ZeroShotOptions()
        return next(s for s in task_specs(encoder, table, options) if s.task == "name")
    return TaskSpec("name", table.shoes["shoe"].tolist(), "shoe")


def check_learner(name: str, encoder) -> None:
    """One clear error before any work when the learner cannot run on this model."""
    if name not in LEARNERS:
        raise UserError(f"unknown learner '{name}': choose one of {', '.join(LEARNERS)}")
    if name == "lit" and getattr(encoder, "family", "") != "backbone":
        raise UserError(f"the lit learner trains a text tower for an image-only backbone (efficientnet-lite0); "
                        f"{encoder.model_id} is a {getattr(encoder, 'family', 'different')} model: configure "
                        "--model efficientnet-lite0, or the linear-probe learner")
    if name in PROMPT_LEARNING:
        from shoefind.encoders.base import require_prompt_learning
        require_prompt_learning(encoder, name)


def calibration_folds(name: str) -> int:
    """Fits made on part of the photos to score the rest, for the triage thresholds: the few-shot heads
    fit in well under a second, so each photo is scored once by a fit without it (5 folds) and the model
    is fitted on all of them; LiT and CoOp train for minutes, so one share of the photos is kept out of
    their single fit, which is the model (those photos calibrate, and are never trained on)."""
    return 5 if name in FEWSHOT else 1


LIT_CONTINUE_STEPS = 50     # a LiT tower trained further from the current model's (see _fit_lit)


def fit(name: str, encoder, table: FeatureTable, x: np.ndarray, y: np.ndarray, seed: int = 0,
        settings: dict | None = None, log=None, start=None, like=None) -> Fitted:
    """Train learner `name` on embeddings x with labels y (rows of table.shoes). start: the current
    model's encoder, which LiT continues from (others start afresh: they fit in well under a second).
    like: a fitted model whose chosen hyperparameters to keep (the linear probe's penalty), so fits on
    parts of the photos answer with the same confidence as it (calibration)."""
    settings = dict(settings or {})
    if name == "lit":
        return _fit_lit(encoder, table, x, y, seed, settings, log, start)
    from shoefind.learn.methods import fit_classifier
    spec = name_spec(encoder, table, settings.get("prompts"))
    if name == "linear-probe" and like is not None:
        from shoefind.learn.fewshot import LinearProbe
        scale = encoder.logit_scale if encoder.has_text else 100.0
        head = LinearProbe.fit(np.asarray(x, np.float32), np.asarray(y), spec.classes, spec.text, scale,
                               decay=like.head.decay)
        return Fitted(head, encoder, _plain(head.selection))
    coop = {k: v for k, v in settings.items() if k in ("n_ctx", "epochs", "lr", "schedule", "ctx_init")}
    head = fit_classifier(name, spec, np.asarray(x, np.float32), np.asarray(y), encoder, coop or None)
    details = dict(getattr(head, "selection", None) or getattr(head, "training", None) or {})
    return Fitted(head, encoder, _plain(details))


def _fit_lit(encoder, table: FeatureTable, x, y, seed: int, settings: dict, log, start=None) -> Fitted:
    """A text tower for the backbone: from scratch (LitSettings.steps), or, when the current model is a
    LiT tower over the same backbone, that tower trained LIT_CONTINUE_STEPS more on today's photos
    (settings continue_steps): a round costs a third of a fresh training."""
    import copy

    import torch

    from shoefind.encoders.families.lit import BackboneImages, LitEncoder, backbone_base, image_precision
    from shoefind.encoders.families.text_tower import TextTower, TowerConfig
    from shoefind.learn.captions import build_captions, require_labels, shoe_labels
    from shoefind.learn.finite import require_finite_weights
    from shoefind.learn.lit import LitSettings, train_text_tower
    from shoefind.scoring.zeroshot import ZeroShotOptions
    from dataclasses import replace
    known = set(LitSettings.__dataclass_fields__)
    lit = LitSettings(**{k: v for k, v in settings.items() if k in known} | {"seed": seed})
    labels = shoe_labels(table.shoes)
    require_labels(labels, str(table.root))
    images = BackboneImages(encoder, image_precision(encoder))
    continued = getattr(start, "tower", None) is not None and getattr(start, "base", {}).get("spec") == encoder.model_id
    if continued:
        tower = copy.deepcopy(start.tower)
        for p in tower.parameters():
            p.requires_grad_(True)
        tower.train()
        lit = replace(lit, steps=int(settings.get("continue_steps", LIT_CONTINUE_STEPS)))
    else:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            tower = TextTower(TowerConfig(int(encoder.embed_dim), lit.width, lit.layers, lit.heads))
    options = ZeroShotOptions.parse(prompts=settings["prompts"]) if settings.get("prompts") else ZeroShotOptions()
    captions = build_captions(labels, np.asarray(y), options.prompts, seed)
    report = train_text_tower(tower, np.asarray(x, np.float32), captions, lit, log=log)
    require_finite_weights(tower.state_dict(), "LiT training", f"learning rate {lit.lr}")
    tower.eval()
    trained = LitEncoder(images, tower, "lit-registry-training", Path(table.root), backbone_base(encoder),
                         device=images.device)
    return Fitted(_zero_shot_head(trained, table, settings.get("prompts")), trained,
                  {"lit": lit.as_dict(), "training": report.as_dict(),
                   "continued_from": str(start.path) if continued else None})


def _zero_shot_head(encoder, table: FeatureTable, prompts: str | None):
    from shoefind.learn.fewshot import ZeroShotClassifier
    spec = name_spec(encoder, table, prompts)
    return ZeroShotClassifier(spec.classes, spec.text, encoder.logit_scale)


def save(name: str, fitted: Fitted, folder: Path, model_id: str, x: np.ndarray, labels: list[str]) -> dict:
    """Write the head into folder; returns {"files": [...], "spec": encoder spec or None} (None: the
    configured backbone; a LiT checkpoint: its file name inside the folder)."""
    if name == "lit":
        from shoefind.encoders.families.lit import write_lit
        checkpoint = f"{model_id}.lit.pt"
        write_lit(folder / checkpoint, fitted.encoder.tower, fitted.encoder.base, {"trained": {"registry": model_id}})
        return {"files": [checkpoint], "spec": checkpoint}
    if name in PROMPT_LEARNING:
        fitted.head.save(folder / f"{name}-name.pt")
        return {"files": [f"{name}-name.pt"], "spec": None}
    head = fitted.head
    arrays = {"embeddings": np.asarray(x, np.float32), "labels": np.array(labels),
              "alpha": np.float32(getattr(head, "alpha", 1.0)), "beta": np.float32(getattr(head, "beta", 5.5))}
    if name in ("tip-adapter", "tip-adapter-f"):
        suffix = "_f" if name == "tip-adapter-f" else ""
        arrays |= {f"alpha{suffix}": np.float32(head.alpha), f"beta{suffix}": np.float32(head.beta),
                   f"keys{suffix}": head.keys.astype(np.float32)}
    if name == "linear-probe":
        arrays |= {"probe_weights": head.weights.astype(np.float32), "probe_bias": head.bias.astype(np.float32),
                   "probe_classes": np.array(head.classes), "probe_scale": np.float32(head.logit_scale),
                   "probe_decay": np.float32(head.decay)}
        if head.space.mean is not None:
            arrays["probe_mean"] = head.space.mean.astype(np.float32)
    with open(folder / HEAD_FILE, "wb") as fh:
        np.savez(fh, **arrays)
    return {"files": [HEAD_FILE], "spec": None}


def load(name: str, folder: Path, encoder, table: FeatureTable, settings: dict | None = None):
    """The saved head, rebuilt for the table's shoes as they are now (encoder: the model's own)."""
    from shoefind.learn.saved import load_classifier
    settings = settings or {}
    if name == "lit":
        return _zero_shot_head(encoder, table, settings.get("prompts"))
    spec = name_spec(encoder, table, settings.get("prompts"))
    file = f"{name}-name.pt" if name in PROMPT_LEARNING else HEAD_FILE
    head = load_classifier(folder, {"files": {name: {"name": file}}}, name, spec, encoder)
    if head is None:
        raise UserError(f"{folder / file} holds no {name} head")
    return head


def _plain(obj):
    """JSON-friendly copy of a training report (numpy numbers become Python ones)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist() if obj.size <= 16 else f"array{obj.shape}"
    return obj if isinstance(obj, (str, int, float, bool, type(None))) else str(obj)


def spec_path(folder: Path, spec: str | None, configured: str) -> str:
    """The model spec the head reads: a file of the model folder, else the configured backbone."""
    return str(folder / spec) if spec else configured
