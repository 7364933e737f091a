"""ONNX Runtime encoders: the CLIP towers exported once from the loaded torch model.

On this project's CPUs ONNX Runtime runs the same fp32 graph several times faster than torch
(see benchmarks/embed.py), with embeddings equal up to float rounding (cosine > 0.99999), so
`onnx` shares torch's embedding cache. `onnx-int8` (dynamic quantisation of the matrix
products) is faster still but approximate: its error depends on the weights (real CLIP has
activation outliers that per-tensor int8 handles worse than random weights do), so it gets
its own cache key rather than silently mixing with exact embeddings.
Weights are quantised to 7 bits (`reduce_range`): on CPUs without VNNI (AVX2 only, AVX512 without
VNNI) ONNX Runtime's u8*s8 kernels saturate with 8-bit weights, which cost the tiny CLIP's text
tower a min cosine of 0.976 against fp32 on an AVX2 EPYC (0.9992 with 7 bits); one setting for
every CPU keeps int8 embeddings the same wherever they are computed.

Exports are cached next to the weights (`<weights dir>/onnx/<sha256>-v<N>/`), or under
DATA/models/onnx/ when that folder is not writable, keyed by the weights' full sha256, and
written under temporary names then renamed, so concurrent workers never read half a file.
"""
from __future__ import annotations

import json
import logging
import os
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from shoefind.encoders.families import clip_parts as clip
from shoefind.encoders.families.openai_clip import ClipEncoder
from shoefind.encoders.runtimes.capability import onnx_available  # noqa: F401  (part of this module's API)
from shoefind.encoders.runtimes.onnx_files import (EXPORT_VERSION, INT8_OPS, INT8_SUFFIX, META_FILE, OPSET,  # noqa: F401
                                          export_dir, normalise as _normalise, open_session as _session,
                                          run_text_session, tower_path, weights_sha256)

log = logging.getLogger("shoefind.onnx")


class _ImageTower(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, pixels):
        return self.model.encode_image(pixels)


class _TextTower(torch.nn.Module):
    """encode_text over tokens cut after the longest end-of-text token (any length up to the
    context): the causal transformer is read at end-of-text, so the padding never mattered."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        context = int(model.positional_embedding.shape[0])
        self.register_buffer("mask", torch.full((context, context), float("-inf")).triu_(1), persistent=False)

    def forward(self, tokens):
        # CLIP's text pass (shoefind.encoders.families.openai_clip.text_pass) with attention written out:
        # nn.MultiheadAttention's traced reshapes keep the example's length as a constant
        m = self.model
        length = tokens.shape[1]
        dtype = m.text_projection.dtype
        x = m.token_embedding(tokens).type(dtype) + m.positional_embedding[:length].type(dtype)
        mask = self.mask[:length, :length]
        for block in m.transformer.resblocks:
            x = x + _attention(block.attn, block.ln_1(x), mask)
            x = x + block.mlp(block.ln_2(x))
        x = m.ln_final(x).type(dtype)
        return x[torch.arange(x.shape[0]), tokens.argmax(dim=-1)] @ m.text_projection


def _attention(attn: torch.nn.MultiheadAttention, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """attn(x, x, x, attn_mask=mask)[0] for x of shape (batch, length, width), shapes left symbolic."""
    heads, width = attn.num_heads, attn.embed_dim
    q, k, v = torch.nn.functional.linear(x, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
    q, k, v = (t.reshape(t.shape[0], -1, heads, width // heads).transpose(1, 2) for t in (q, k, v))
    weights = torch.softmax(q @ k.transpose(-1, -2) * (width // heads) ** -0.5 + mask, dim=-1)
    out = (weights @ v).transpose(1, 2).reshape(x.shape[0], -1, width)
    return attn.out_proj(out)


def _publish(write, target: Path) -> Path:
    """Run write(tmp_path), then rename into place (atomic; concurrent writers both succeed)."""
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _export(tower: torch.nn.Module, example: torch.Tensor, input_name: str, target: Path) -> Path:
    axes = {0: "batch", 1: "length"} if input_name == "tokens" else {0: "batch"}

    def write(tmp: Path):
        with torch.no_grad(), warnings.catch_warnings():
            # the TorchScript-based exporter is deprecated but writes one self-contained file,
            # which a rename can publish atomically (the dynamo exporter splits out the weights)
            warnings.simplefilter("ignore")
            torch.onnx.export(tower.eval(), (example,), str(tmp), input_names=[input_name],
                              output_names=["features"], opset_version=OPSET, dynamo=False,
                              dynamic_axes={input_name: axes, "features": {0: "batch"}})
    return _publish(write, target)


def _write_meta(model, folder: Path) -> None:
    """What a torch-free process needs besides the graphs (shoefind.encoders.runtimes.onnx_sessions)."""
    if (folder / META_FILE).is_file():
        return
    meta = {"input_resolution": int(model.visual.input_resolution),
            "embed_dim": int(model.text_projection.shape[1]),
            "logit_scale": float(model.logit_scale.exp().item()),
            "context_length": int(model.positional_embedding.shape[0]), "export_version": EXPORT_VERSION}
    _publish(lambda tmp: tmp.write_text(json.dumps(meta, indent=2)), folder / META_FILE)


def _quantise(source: Path, target: Path) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    def write(tmp: Path):
        import logging
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # "consider pre-processing" advice, logged on the root logger
        try:
            quantize_dynamic(str(source), str(tmp), weight_type=QuantType.QInt8, per_channel=True,
                             reduce_range=True, op_types_to_quantize=INT8_OPS)
        finally:
            root.setLevel(level)
    return _publish(write, target)


def exported_towers(model, checkpoint: Path, int8: bool, data_dir: Path | None = None) -> tuple[Path, Path]:
    """(image tower, text tower) .onnx paths for these weights, exporting what is missing."""
    folder = export_dir(checkpoint, data_dir)
    res = int(model.visual.input_resolution)
    paths = {}
    # examples made only when exporting: the tokenizer alone takes ~0.4 s to build
    for tower, example, input_name in (
        ("image", lambda: torch.zeros(2, 3, res, res), "pixels"),
        # cut after the end-of-text token, as every caller gives them
        ("text", lambda: clip.tokenize(["a shoe", "a photo of a shoe"])[:, :7], "tokens"),
    ):
        fp32 = tower_path(folder, tower, int8=False)
        if not fp32.is_file():
            module = _ImageTower(model) if tower == "image" else _TextTower(model)
            _export(module, example(), input_name, fp32)
        paths[tower] = fp32
        if int8:
            q = tower_path(folder, tower, int8=True)
            if not q.is_file():
                _quantise(fp32, q)
            paths[tower] = q
    _write_meta(model, folder)   # last: its presence says the folder is complete for fp32
    return paths["image"], paths["text"]


@dataclass
class OnnxClipEncoder(ClipEncoder):
    """ClipEncoder whose towers run in ONNX Runtime (the torch model stays for its metadata)."""

    runtime: str = "onnx"
    image_session: Any = field(default=None, repr=False)
    text_session: Any = field(default=None, repr=False)

    @property
    def cache_key(self) -> str:
        base = super().cache_key
        return f"{base}|{INT8_SUFFIX}" if self.runtime == "onnx-int8" else base

    def encode_tensors(self, batch: torch.Tensor) -> np.ndarray:
        pixels = batch.detach().to("cpu", torch.float32).contiguous().numpy()
        return _normalise(self.image_session.run(None, {"pixels": pixels})[0])

    def _text_features(self, tokens: torch.Tensor) -> np.ndarray:
        # fp32: the short-context torch pass is exact and faster than a 77-position graph;
        # int8 keeps its quantised tower so text and images stay in one approximation
        if self.runtime != "onnx-int8":
            return super()._text_features(tokens)
        return run_text_session(self.text_session, tokens.to(torch.int64).numpy())


def onnx_encoder(base: ClipEncoder, checkpoint: Path, runtime: str, threads: int | None = None,
                 data_dir: Path | None = None) -> OnnxClipEncoder:
    """An ONNX Runtime encoder for the weights `base` was loaded from."""
    int8 = runtime == "onnx-int8"
    for attempt in (1, 2):
        image, text = exported_towers(base.model, checkpoint, int8=int8, data_dir=data_dir)
        try:
            sessions = _session(image, threads), _session(text, threads)
            break
        except Exception as exc:   # a damaged export (truncated, overwritten): export again, once
            if attempt == 2:
                raise
            log.warning("ONNX export in %s cannot be opened (%s): exporting it again", image.parent, exc)
            for path in {image, text, image.parent / "image.onnx", image.parent / "text.onnx"}:
                path.unlink(missing_ok=True)
    return OnnxClipEncoder(model=base.model, preprocess=base.preprocess, model_id=base.model_id,
                           is_random=base.is_random, batch_size=base.batch_size, device=base.device,
                           runtime=runtime, image_session=sessions[0], text_session=sessions[1])
