"""Where a CLIP model's ONNX exports live and how they are opened, without torch.

Exports are cached next to the weights (`<weights dir>/onnx/<sha256>-v<N>/`), or under
DATA/models/onnx/ when that folder is not writable, keyed by the weights' full sha256. Beside
the towers, `meta.json` keeps what a caller needs besides the graphs (input resolution,
embedding size, logit scale), so a process whose model was exported before runs both towers in
ONNX Runtime without importing torch (shoefind.encoders.runtimes.onnx_sessions). Writing the exports
needs torch: shoefind.encoders.runtimes.onnx_runtime.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from shoefind.encoders.weights import remembered_sha256

# Bumped whenever the exported graphs change, so old exports are not reused.
# v2: the text tower takes tokens cut after the longest end-of-text token (any length up to 77),
# as the torch path does: same embeddings, several times less work for a short prompt.
EXPORT_VERSION = 2
OPSET = 17
# Only matrix products are quantised: they are nearly all the work, and quantising the
# patch convolution and token lookup costs fidelity for no speed.
INT8_OPS = ["MatMul", "Gemm"]
INT8_SUFFIX = "int8r"   # 7-bit weights (reduce_range); "int8" files were full-range, not reused
META_FILE = "meta.json"


def weights_sha256(path: Path) -> str:
    return remembered_sha256(path)   # hashed once per version of the file


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def export_name(checkpoint: Path) -> str:
    return f"{weights_sha256(checkpoint)[:32]}-v{EXPORT_VERSION}"


def export_dir(checkpoint: Path, data_dir: Path | None = None) -> Path:
    """Where the exports of these weights live (created)."""
    from shoefind.settings import layout
    name = export_name(checkpoint)
    beside = checkpoint.parent / "onnx" / name
    if _writable(beside):
        return beside
    fallback = layout(data_dir).onnx_exports / name
    fallback.mkdir(parents=True, exist_ok=True)
    return fallback


def existing_export_dir(checkpoint: Path, data_dir: Path | None = None) -> Path | None:
    """The folder that already holds these weights' exports (with their meta.json), else None;
    creates nothing."""
    from shoefind.settings import layout
    name = export_name(checkpoint)
    for folder in (checkpoint.parent / "onnx" / name, layout(data_dir).onnx_exports / name):
        if (folder / META_FILE).is_file():
            return folder
    return None


def tower_path(folder: Path, tower: str, int8: bool) -> Path:
    """image.onnx / text.onnx, or their int8 forms."""
    return folder / (f"{tower}-{INT8_SUFFIX}.onnx" if int8 else f"{tower}.onnx")


def read_meta(folder: Path) -> dict | None:
    try:
        meta = json.loads((folder / META_FILE).read_text())
    except (OSError, ValueError):
        return None
    keys = ("input_resolution", "embed_dim", "logit_scale", "context_length")
    return meta if isinstance(meta, dict) and all(k in meta for k in keys) else None


def default_threads() -> int:
    """torch's default: one thread per core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:   # not Linux
        return max(1, os.cpu_count() or 1)


def open_session(path: Path, threads: int | None):
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads or default_threads()
    opts.inter_op_num_threads = 1
    # don't busy-wait between batches: the decode threads need those cores
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # no memory arena: it keeps the peak of the largest batch for the process's life (~1 GB
    # after a catalog's class prompts with ViT-B/32, measured), which a warm server cannot spare
    opts.enable_cpu_mem_arena = False
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def normalise(feats: np.ndarray) -> np.ndarray:
    feats = feats.astype(np.float32, copy=False)
    return feats / np.maximum(np.linalg.norm(feats, axis=-1, keepdims=True), 1e-12)


def run_text_session(session, tokens: np.ndarray, batch: int = 64) -> np.ndarray:
    """A text tower export over (n, 77) int64 tokens: prompts of similar length batched together,
    each batch cut after its longest end-of-text token (the end-of-text token has the largest id)."""
    tokens = np.asarray(tokens, dtype=np.int64)
    out = None
    ends = tokens.argmax(axis=-1)
    order = np.argsort(ends, kind="stable")
    for start in range(0, len(tokens), batch):
        idx = order[start:start + batch]
        length = int(ends[idx].max()) + 1
        feats = session.run(None, {"tokens": np.ascontiguousarray(tokens[idx, :length])})[0]
        if out is None:
            out = np.zeros((len(tokens), feats.shape[1]), np.float32)
        out[idx] = normalise(feats)
    return out if out is not None else np.zeros((0, 0), np.float32)
