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

import os
import tempfile
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from shoefind.encoders.names import remembered_sha256
from shoefind.encoders import clip_parts as clip
from shoefind.encoders.openai_clip import ClipEncoder
from shoefind.encoders.capability import onnx_available  # noqa: F401  (part of this module's API)

# Bumped whenever the exported graphs change, so old exports are not reused.
EXPORT_VERSION = 1
OPSET = 17
# Only matrix products are quantised: they are nearly all the work, and quantising the
# patch convolution and token lookup costs fidelity for no speed.
INT8_OPS = ["MatMul", "Gemm"]
INT8_SUFFIX = "int8r"   # 7-bit weights (reduce_range); "int8" files were full-range, not reused


def weights_sha256(path: Path) -> str:
    return remembered_sha256(path)   # hashed once per version of the file


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def export_dir(checkpoint: Path, data_dir: Path | None = None) -> Path:
    """Where the exports of these weights live (created)."""
    from shoefind.settings import data_dir as default_data_dir
    name = f"{weights_sha256(checkpoint)[:32]}-v{EXPORT_VERSION}"
    beside = checkpoint.parent / "onnx" / name
    if _writable(beside):
        return beside
    fallback = Path(data_dir or default_data_dir()) / "models" / "onnx" / name
    fallback.mkdir(parents=True, exist_ok=True)
    return fallback


class _ImageTower(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, pixels):
        return self.model.encode_image(pixels)


class _TextTower(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, tokens):
        return self.model.encode_text(tokens)


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
    def write(tmp: Path):
        with torch.no_grad(), warnings.catch_warnings():
            # the TorchScript-based exporter is deprecated but writes one self-contained file,
            # which a rename can publish atomically (the dynamo exporter splits out the weights)
            warnings.simplefilter("ignore")
            torch.onnx.export(tower.eval(), (example,), str(tmp), input_names=[input_name],
                              output_names=["features"], opset_version=OPSET, dynamo=False,
                              dynamic_axes={input_name: {0: "batch"}, "features": {0: "batch"}})
    return _publish(write, target)


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
        ("text", lambda: clip.tokenize(["a shoe", "a photo of a shoe"]), "tokens"),
    ):
        fp32 = folder / f"{tower}.onnx"
        if not fp32.is_file():
            module = _ImageTower(model) if tower == "image" else _TextTower(model)
            _export(module, example(), input_name, fp32)
        paths[tower] = fp32
        if int8:
            q = folder / f"{tower}-{INT8_SUFFIX}.onnx"
            if not q.is_file():
                _quantise(fp32, q)
            paths[tower] = q
    return paths["image"], paths["text"]


def _session(path: Path, threads: int | None):
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads or torch.get_num_threads()
    opts.inter_op_num_threads = 1
    # don't busy-wait between batches: the decode threads need those cores
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # no memory arena: it keeps the peak of the largest batch for the process's life (~1 GB
    # after a catalog's class prompts with ViT-B/32, measured), which a warm server cannot spare
    opts.enable_cpu_mem_arena = False
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _normalise(feats: np.ndarray) -> np.ndarray:
    feats = feats.astype(np.float32, copy=False)
    return feats / np.maximum(np.linalg.norm(feats, axis=-1, keepdims=True), 1e-12)


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
        return _normalise(self.text_session.run(None, {"tokens": tokens.to(torch.int64).numpy()})[0])


def onnx_encoder(base: ClipEncoder, checkpoint: Path, runtime: str, threads: int | None = None,
                 data_dir: Path | None = None) -> OnnxClipEncoder:
    """An ONNX Runtime encoder for the weights `base` was loaded from."""
    image, text = exported_towers(base.model, checkpoint, int8=runtime == "onnx-int8", data_dir=data_dir)
    return OnnxClipEncoder(model=base.model, preprocess=base.preprocess, model_id=base.model_id,
                           is_random=base.is_random, batch_size=base.batch_size, device=base.device,
                           runtime=runtime, image_session=_session(image, threads),
                           text_session=_session(text, threads))
