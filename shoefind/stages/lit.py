"""`learn --method lit` as the CLI, the demo and the flows run it: table -> embeddings -> held-out
split -> captions -> text tower -> checkpoint + manifest, with held-out scores before and after.

The base model decides what is trained and what is written:
- an image-only backbone (efficientnet-lite0): a small CLIP-architecture text tower from scratch;
  the checkpoint is `NAME.lit.pt` (backbone name + weights id + the tower);
- a LiT checkpoint: its tower trained further on this dataset (same backbone);
- an OpenAI CLIP model or checkpoint: CLIP's own text tower, the image tower untouched; the
  checkpoint is a CLIP state dict `clip.load` reads (`NAME.pt`).
"""
from __future__ import annotations

import copy
import os
import re
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np

from shoefind.errors import UserError
from shoefind.learn.finite import require_finite_weights, require_sound_base
from shoefind.learn.hyperparameters import check_hyperparameters

Log = Callable[[str], None]
CLIP_NOTE = ("image tower unchanged (locked); the text tower is CLIP's own, trained on the dataset's captions")


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "model"


def default_checkpoint(data_dir: str | os.PathLike, dataset: str | os.PathLike, base_id: str, lit_file: bool) -> Path:
    """DATA_DIR/models/<dataset>-<base>-lit(.lit.pt | .pt)."""
    from shoefind.settings import layout
    name = f"{_safe(Path(dataset).resolve().name)}-{_safe(base_id)}-lit"
    return layout(data_dir).models / (name + (".lit.pt" if lit_file else ".pt"))


class _Base:
    """What LiT starts from: the image side that fills the cache, the tower to train, how to save."""

    def __init__(self, encoder, spec: str, device: str, settings):
        from shoefind.encoders.families.lit import BackboneImages, backbone_base, image_precision
        from shoefind.encoders.families.text_tower import TextTower, TowerConfig
        self.encoder = encoder
        family = getattr(encoder, "family", "")
        if family == "backbone":
            self.kind = "backbone"
            self.images = BackboneImages(encoder, image_precision(encoder))
            import torch
            with torch.random.fork_rng():
                torch.manual_seed(settings.seed)      # the same seed starts from the same tower
                self.tower = TextTower(TowerConfig(int(encoder.embed_dim), settings.width, settings.layers,
                                                   settings.heads))
            self.base = backbone_base(encoder)
            self.before = None
        elif family == "lit":
            self.kind = "backbone"
            self.images = encoder.images
            self.tower = copy.deepcopy(encoder.tower)
            self.base = dict(encoder.base) | {"continued_from": str(encoder.path)}
            self.before = encoder
        elif family == "clip" and getattr(encoder, "runtime", "torch") == "torch":
            self.kind = "clip"
            self.images = encoder
            self.tower = copy.deepcopy(encoder.model)      # the loaded model stays as it was
            self.base = _clip_base(encoder, spec)
            self.before = encoder
        else:
            raise UserError(
                f"LiT trains OpenAI CLIP's text tower (clip: models and checkpoints, run by torch) or a new text "
                f"tower for an image-only backbone (efficientnet-lite0); {encoder.model_id} is a "
                f"{family or 'different'} model{' run by ' + encoder.runtime if family == 'clip' else ''}. "
                "Use --model efficientnet-lite0, a clip: model with --runtime torch, or a LiT checkpoint.")

    @property
    def id(self) -> str:
        return self.base.get("spec", "model")

    def trained_encoder(self, path: Path):
        """The encoder the trained tower makes (in memory), for the held-out scores."""
        if self.kind == "clip":
            from shoefind.encoders.families.openai_clip import ClipEncoder
            return ClipEncoder(self.tower, self.encoder.preprocess, f"lit-training-{path.stem}",
                               device=self.encoder.device)
        from shoefind.encoders.families.lit import LitEncoder
        return LitEncoder(self.images, self.tower, f"lit-training-{path.stem}", path, dict(self.base),
                          device=self.images.device)

    def writer(self, extra: dict) -> Callable[[Path], None]:
        if self.kind == "clip":
            import torch
            state = {k: v.detach().cpu() for k, v in self.tower.state_dict().items()}
            return lambda tmp: torch.save(state, tmp)
        from shoefind.encoders.families.lit import write_lit
        return lambda tmp: write_lit(tmp, self.tower, self.base, extra)


def _clip_base(encoder, spec: str) -> dict:
    from shoefind.images import sha256_file
    from shoefind.encoders.load import parse_spec
    from shoefind.encoders.families.openai_clip import resolve_checkpoint
    path = resolve_checkpoint(parse_spec(spec).target)
    return {"family": "clip", "spec": spec, "model_id": encoder.model_id, "cache_key": encoder.cache_key,
            "sha256": sha256_file(path) if path else "", "is_random": bool(encoder.is_random)}


def learn_lit_dataset(dataset: str | os.PathLike, data_dir: str | os.PathLike, model: str | None = None,
                      catalog: str | os.PathLike | None = None, out: str | os.PathLike | None = None,
                      steps: int | None = None, seed: int = 0, batch_size: int = 32, device: str | None = None,
                      zeroshot: dict | None = None, settings=None, progress=None, log: Log | None = None) -> dict:
    """Train LiT on a labeled dataset; returns {"checkpoint", "manifest", "heldout", "heldout_before",
    "training", "split"} and writes the checkpoint with its manifest (see module docstring)."""
    from shoefind.encoders.load import load_encoder
    from shoefind.features.cache import EmbeddingCache
    from shoefind.features.embed import embed_images
    from shoefind.features.heldout import heldout_split
    from shoefind.stages.features import images_of, save_table
    from shoefind.learn.captions import build_captions, require_labels, shoe_labels
    from shoefind.learn.checkpoint import table_hash, write_model
    from shoefind.learn.lit import LitSettings, train_text_tower
    from shoefind.learn.heldout import heldout_metrics
    from shoefind.evaluate.baselines import heldout_baselines
    from shoefind.scoring.zeroshot import ZeroShotOptions

    say = log or (lambda _m: None)
    started = time.perf_counter()
    check_hyperparameters(steps=steps, seed=seed, batch_size=batch_size)   # before any work
    settings = settings or LitSettings()
    if steps:
        settings = replace(settings, steps=int(steps))
    settings = replace(settings, seed=seed)
    check_hyperparameters(**{k: v for k, v in settings.as_dict().items() if k != "precision"})
    options = ZeroShotOptions.of(zeroshot)
    from shoefind.features.table import count_images
    from shoefind.stages.phases import phase
    reading = progress("reading images", count_images(dataset)) if progress and Path(dataset).is_dir() else None
    saved = save_table(dataset, data_dir, catalog=catalog, progress=reading)
    table = saved.table
    labels = shoe_labels(table.shoes)
    require_labels(labels, str(table.root))
    from shoefind.encoders.spec import spec_text
    spec = spec_text(model)
    with phase(f"loading {spec}", progress, say):
        encoder = load_encoder(spec, device=device, batch_size=batch_size, runtime="torch")
        base = _Base(encoder, spec, encoder.device, settings)
    checkpoint = Path(out) if out else default_checkpoint(data_dir, table.root, base.id, base.kind != "clip")
    if base.kind == "clip" and checkpoint.name.endswith(".lit.pt"):    # before minutes of training
        raise UserError(f"{checkpoint}: LiT over a CLIP model writes a CLIP checkpoint (clip.load reads it); "
                        "give a name ending in .pt but not .lit.pt")
    if base.kind != "clip" and not checkpoint.name.endswith(".lit.pt"):
        raise UserError(f"{checkpoint}: a LiT checkpoint over an image backbone is named NAME.lit.pt "
                        "(that is how --model recognises it)")
    cache = EmbeddingCache.for_encoder(data_dir, base.images)
    embed_progress = progress("embedding photos", len(table.images)) if progress else None
    report = embed_images(base.images, cache, images_of(table), batch_size=batch_size, progress=embed_progress)
    for path, reason in report.failed:
        say(f"skipped {reason}")
    images = table.images[table.images["sha256"].map(lambda s: s in cache)]
    split = heldout_split(images, labels, table.layout, seed)
    train, held = split.train(), split.heldout()
    say(f"LiT on {table.root.name}: {len(train)} training photos, {len(held)} held out "
        f"(by {', '.join(split.by)}); base {base.id}")
    shoe_row = {s: i for i, s in enumerate(labels["shoe"])}
    with phase("writing captions", progress, say):
        captions = build_captions(labels, np.array([shoe_row[s] for s in train["shoe"]]), options.prompts, seed)
    train_x = cache.matrix(train["sha256"].tolist())
    held_x = cache.matrix(held["sha256"].tolist())
    shoes = table.shoes
    require_sound_base(base.tower.state_dict(), base.id)
    with phase("scoring held-out photos before training", progress, say):
        before = heldout_metrics(base.before or base.images, shoes, held_x, held["shoe"], train_x, train["shoe"],
                                 options)
    train_progress = progress("training the text tower", settings.steps) if progress else None
    training = train_text_tower(base.tower, train_x, captions, settings, progress=train_progress, log=say)
    require_finite_weights(base.tower.state_dict(), "LiT training", f"learning rate {settings.lr}")
    with phase("scoring held-out photos", progress, say):
        after = heldout_metrics(base.trained_encoder(checkpoint), shoes, held_x, held["shoe"], train_x,
                                train["shoe"], options)
    baselines = heldout_baselines(shoes, held["shoe"])
    warnings = heldout_warnings(len(held), len(images), after, baselines)
    for warning in warnings if progress is None else []:   # a command line shows them with the scores
        say(f"warning: {warning}")
    split_file = checkpoint.with_name(checkpoint.name + ".split.csv")
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    split.save(split_file)
    manifest = {
        "method": "lit", "dataset": str(table.root), "layout": table.layout, "base": base.base,
        "table": str(saved.folder), "table_hash": table_hash(images, labels),
        "split": split.describe() | {"file": str(split_file)},
        "hyperparameters": settings.as_dict() | {"prompts": options.prompts},
        "training": training.as_dict() | {"total_seconds": round(time.perf_counter() - started, 1)},
        "image_precision": getattr(base.images, "precision", "fp32"),
        "heldout_before": before, "heldout": after, "heldout_baselines": baselines, "warnings": warnings,
        "notes": [CLIP_NOTE] if base.kind == "clip" else
        [f"text tower {settings.width} wide, {settings.layers} layers, trained from "
         f"{'the checkpoint it continues' if 'continued_from' in base.base else 'scratch'}; image backbone locked"],
    }
    extra = {"trained": {"dataset": str(table.root), "table_hash": manifest["table_hash"],
                         "image_precision": manifest["image_precision"]}}
    with phase("writing the checkpoint", progress, say):
        written = write_model(checkpoint, base.writer(extra), manifest)
    say(f"LiT checkpoint {checkpoint} ({training.seconds:.0f}s of training); held-out name top-1 "
        f"{after.get('zero_shot_top1')}")
    from shoefind.learn.checkpoint import manifest_paths
    return {"checkpoint": str(checkpoint), "manifest": str(manifest_paths(checkpoint)[0]), "heldout": after,
            "heldout_before": before, "training": written["training"], "split": written["split"],
            "baselines": baselines, "warnings": warnings}


def heldout_warnings(heldout: int, photos: int, scores: dict, baselines: dict) -> list[str]:
    """Too few held-out photos to mean anything (the minimum stated), and the held-out scores no better
    than always answering the majority class."""
    from shoefind.evaluate.baselines import heldout_caveats, small_test_warning
    out = []
    if warning := small_test_warning(heldout, "held out", total=photos, top1=scores.get("zero_shot_top1")):
        out.append(warning)
    return out + heldout_caveats(scores, baselines)
