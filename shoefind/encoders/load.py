"""`load_encoder(spec)`: one dispatch on the model spec, cached per process.

The spec is parsed once (shoefind.encoders.spec.ModelSpec: the forms a spec takes are listed there)
and its family's registry entry (shoefind.encoders.registry.FAMILIES) loads it. The runtime (torch,
bf16, fp16, onnx, onnx-int8; auto = the fastest that keeps fidelity on this machine, see
shoefind.encoders.runtimes.choose) wraps a loaded OpenAI CLIP model, the one family that runs more
than torch. Each call returns its own handle (its own batch size) over the one shared, loaded model.
"""
from __future__ import annotations

import copy
import threading
import time
from pathlib import Path

from shoefind.cluster import check_threads
from shoefind.encoders.base import Encoder, ModelUnavailable  # noqa: F401  (ModelUnavailable: this API)
from shoefind.encoders.registry import family_of
from shoefind.encoders.runtimes.capability import Capability
from shoefind.encoders.runtimes.choose import choose, resolve_device  # noqa: F401  (resolve_device: this API)
from shoefind.encoders.spec import IMAGE_BACKBONES, ModelSpec, is_image_backbone, parse  # noqa: F401  (this API)
from shoefind.settings import current

_LOADED: dict[tuple, Encoder] = {}
# Worker processes (Dask) may run several tasks in threads: they must still load once.
_LOAD_LOCK = threading.RLock()


def parse_spec(spec: "ModelSpec | str | None") -> ModelSpec:
    """The parsed spec (None: the default); see shoefind.encoders.spec."""
    return ModelSpec.of(spec)


def load_encoder(spec: "ModelSpec | str | None" = None, device: str | None = None, threads: int | None = None,
                 batch_size: int = 32, runtime: str | None = None,
                 capability: Capability | None = None, torch_free: bool = True) -> Encoder:
    """The encoder named by spec / $SHOEFIND_MODEL / ViT-B/32, loaded once per process.

    device: auto | cpu | cuda, default $SHOEFIND_DEVICE else auto (a GPU when torch sees one;
    fp16 on CUDA for open_clip and hf models). runtime: auto | torch | bf16 | fp16 | onnx |
    onnx-int8 for OpenAI CLIP (default $SHOEFIND_RUNTIME, else auto: see
    shoefind.encoders.runtimes.choose). Other families run torch. capability: this machine's
    (detected when None; tests simulate one). torch_free: an OpenAI CLIP model whose ONNX
    runtime is known and exported already runs without importing torch
    (shoefind.encoders.runtimes.onnx_sessions); False always loads the torch model.
    """
    from shoefind.encoders.spec import spec_text, split_image_loading
    base, loading = split_image_loading(spec_text(spec))
    if loading == "seed":        # photos decoded as the seed decodes them (encoders/image_loading.py)
        from shoefind.encoders.image_loading import SeedLoadingEncoder
        return SeedLoadingEncoder(load_encoder(base, device, threads, batch_size, runtime, capability, torch_free))
    parsed = ModelSpec.of(base)
    check_threads(threads)   # thousands of threads thrash and grow without progress
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
    family = family_of(parsed)
    family.check_runtime(parsed, runtime)
    if not family.memo:
        return _timed(family.load, parsed, device)
    key = (parsed.family, parsed.target, device) + _file_version(parsed.target)   # rewritten in place: load again
    if key not in _LOADED:
        _LOADED[key] = _timed(family.load, parsed, device)
    if family.runtimes == ("auto", "torch"):
        return _LOADED[key]
    from shoefind.encoders.families.openai_clip import resolve_checkpoint
    built = _LOADED.setdefault(key + ("runtimes",), {})
    start = time.perf_counter()
    enc = choose(_LOADED[key], resolve_checkpoint(parsed.target), runtime, capability, threads, built)
    if enc is not _LOADED[key] and not hasattr(enc, "load_seconds"):   # torch load + runtime export (or reuse)
        enc.load_seconds = _LOADED[key].load_seconds + time.perf_counter() - start
    return enc


def _file_version(target: str) -> tuple:
    """(mtime, size) of a local weights file, so a file trained again in place is loaded again."""
    path = Path(target).expanduser()
    try:
        stat = path.stat() if path.is_file() else None
    except OSError:
        stat = None
    return (stat.st_mtime_ns, stat.st_size) if stat else ()


def _load_sessions(parsed: ModelSpec, runtime: str | None, threads: int | None,
                   capability: Capability | None) -> Encoder | None:
    """The torch-free encoder of an exported CLIP model, or None (see load_encoder). Asked once per
    process: when it is None, the process keeps the torch-backed encoder it loads instead."""
    from shoefind.encoders.runtimes.onnx_sessions import session_encoder
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


def forget_loaded() -> None:
    """Drop every loaded model (tests that rewrite a checkpoint in place)."""
    with _LOAD_LOCK:
        _LOADED.clear()


def split_specs(text: str | None) -> list[str]:
    """`A,B,C` -> [A, B, C] (a comma inside a path is not supported; a spec never needs one)."""
    return [s.strip() for s in (text or "").split(",") if s.strip()]


# The name most of the library uses.
load_model = load_encoder
