"""Prompt embeddings kept on disk beside a CLIP model's image embeddings, so a new process (a cold
`shoefind infer`) answers without CLIP's tokenizer or text tower for prompts it has seen before.

Only OpenAI CLIP encoders (their cache key names their weights; a LiT checkpoint shares its backbone's
key, not its text side, so it keeps no file here). One file per cache key, `texts-<TEXT_VERSION>.npz`
(texts and their vectors), rewritten whole (temporary name, then renamed) when new prompts were encoded.
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path

import numpy as np

# Bumped whenever the text side changes (tokenising, the short-context pass, the ONNX text export),
# so old files are ignored.
TEXT_VERSION = "v2"


def _file(cache_dir: Path) -> Path:
    return Path(cache_dir) / f"texts-{TEXT_VERSION}.npz"


def _memo(encoder) -> dict | None:
    # the torch ClipEncoders and the torch-free SessionEncoder (same texts, same vectors)
    return vars(encoder).get("_text_cache") if getattr(encoder, "family", None) == "clip" else None


def load_texts(encoder, cache_dir: str | os.PathLike) -> int:
    """Fill the encoder's prompt memo from the file (a damaged or foreign file is ignored); how many."""
    memo = _memo(encoder)
    if memo is None:
        return 0
    try:
        with np.load(_file(cache_dir), allow_pickle=False) as z:
            texts, vectors = [str(t) for t in z["texts"]], np.asarray(z["vectors"], np.float32)
    except Exception:   # missing, truncated, foreign: the prompts are encoded again
        return 0
    if vectors.ndim != 2 or len(texts) != len(vectors) or vectors.shape[1] != encoder.embed_dim:
        return 0
    for text, vec in zip(texts, vectors):
        memo.setdefault(text, vec)
    encoder._texts_on_disk = len(texts)
    return len(texts)


def save_texts(encoder, cache_dir: str | os.PathLike) -> bool:
    """Write the memo when it holds prompts the file lacks (False when nothing new or not writable)."""
    memo = _memo(encoder)
    if not memo or len(memo) <= getattr(encoder, "_texts_on_disk", 0):
        return False
    path = _file(cache_dir)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    texts = list(memo)
    try:
        with open(tmp, "wb") as fh:
            np.savez(fh, texts=np.array(texts), vectors=np.stack([memo[t] for t in texts]).astype(np.float32))
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        return False
    encoder._texts_on_disk = len(texts)
    return True
