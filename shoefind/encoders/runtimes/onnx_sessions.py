"""A CLIP model run from its earlier ONNX exports alone: no torch import.

A cold command (`shoefind infer` in a new process) spent most of its time importing torch: 2.6 s
of a 6.2 s run on a 2-core AVX2 EPYC (`python -X importtime`), with only ~0.1 s in the model. When
the runtime resolves to onnx or onnx-int8 from what is recorded on this machine (the choice
shoefind.encoders.cache_key makes without loading anything) and these weights were exported
before (their folder holds the towers and meta.json), load_encoder returns a SessionEncoder: the
same graphs, the same preprocessing (bit for bit, in numpy), prompts tokenised without torch, so
the same embeddings and cache key as the OnnxClipEncoder that made the exports.

Nothing in the export folder is taken on trust: meta.json and both graphs pass every check of
shoefind.encoders.runtimes.onnx_manifest (their sha256, the weights they were made from, the numbers,
each graph's own stamp) before the first photo is encoded; an export that fails is left to the full
load, which exports it again.

Whatever else is asked of it (the torch model for CoOp or learning, a method only the full
encoder has) loads the full encoder once and hands the question to it, so every caller keeps
working; only the commands that need nothing more skip torch.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from shoefind.encoders.base import encode_in_batches, ensemble_means, memoised_texts
from shoefind.encoders.families.clip_parts import Preprocess, tokenize_numpy
from shoefind.encoders.runtimes.onnx_files import existing_export_dir, normalise, open_session, run_text_session
from shoefind.encoders.runtimes.onnx_manifest import ExportProblem, suspect_embeddings, verified_sessions
from shoefind.images import open_image

log = logging.getLogger("shoefind.onnx")


class NumpyPreprocess(Preprocess):
    """CLIP's preprocessing giving float32 numpy arrays (Preprocess.numpy); `transforms` as before."""

    def __call__(self, image) -> np.ndarray:
        return self.numpy(image)


@dataclass
class SessionEncoder:
    """OpenAI CLIP in ONNX Runtime, from exports made before (see the module docstring)."""

    spec: str
    model_id: str
    is_random: bool
    runtime: str
    cache_key: str
    meta: dict
    image_session: Any = field(repr=False)
    text_session: Any = field(repr=False)
    threads: int | None = None
    batch_size: int = 32
    device: str = "cpu"
    runtime_choice: dict = field(default_factory=dict)
    load_seconds: float = 0.0
    load_full: Callable = field(default=None, repr=False)   # (batch_size=) -> the torch-backed encoder
    export_sha256: dict = field(default_factory=dict)       # the graphs it runs, checked against meta.json
    suspect_embeddings: dict = field(default_factory=dict)  # cache key -> cached before then: a foreign graph's
    _text_cache: dict = field(default_factory=dict, repr=False)

    has_text = True
    family = "clip"
    supports_prompt_learning = True   # through the full encoder (loaded when asked for)
    logit_bias = None
    torch_free = True

    def __post_init__(self):
        self.preprocess = NumpyPreprocess(self.input_resolution)

    @property
    def input_resolution(self) -> int:
        return int(self.meta["input_resolution"])

    @property
    def embed_dim(self) -> int:
        return int(self.meta["embed_dim"])

    @property
    def logit_scale(self) -> float:
        return float(self.meta["logit_scale"])

    def load_image(self, src) -> np.ndarray:
        """Decode (with JPEG draft at the model's resolution) and preprocess one image."""
        return self.preprocess(open_image(src, size_hint=self.input_resolution))

    def encode_tensors(self, batch) -> np.ndarray:
        if not isinstance(batch, np.ndarray):   # a torch tensor (augmented views, other callers)
            batch = batch.detach().to("cpu").float().numpy()
        pixels = np.ascontiguousarray(batch, dtype=np.float32)
        return normalise(self.image_session.run(None, {"pixels": pixels})[0])

    def encode_images(self, images: Sequence, batch_size: int | None = None, progress=None) -> np.ndarray:
        return encode_in_batches(self, images, batch_size or self.batch_size, progress)

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Normalised text embeddings (memoised per process)."""
        def encode(chunk: list[str]) -> np.ndarray:
            tokens = tokenize_numpy(chunk, self.meta["context_length"], truncate=True)
            return run_text_session(self.text_session, tokens)
        return memoised_texts(self._text_cache, texts, encode, self.embed_dim)

    def encode_ensemble(self, prompt_lists: Sequence[Sequence[str]]) -> np.ndarray:
        flat = [p for prompts in prompt_lists for p in prompts]
        return ensemble_means(self.encode_texts(flat), prompt_lists, self.embed_dim)

    def full_encoder(self):
        """The torch-backed encoder of the same model and runtime (loaded once, on first need)."""
        full = self.__dict__.get("_full")
        if full is None:
            full = self.load_full(batch_size=self.batch_size)
            self.__dict__["_full"] = full
        return full

    def __getattr__(self, name: str):
        # only for public attributes this class lacks (the torch model, its learning hooks); a private
        # name probed with getattr(enc, "_x", default) must not load torch
        if name.startswith("_") or name in ("spec", "meta", "load_full"):
            raise AttributeError(name)
        return getattr(self.full_encoder(), name)


def session_encoder(spec: str, runtime: str | None, load_full: Callable, threads: int | None = None,
                    capability=None, data_dir: Path | None = None) -> SessionEncoder | None:
    """A SessionEncoder when the runtime is known to be onnx / onnx-int8 on this CPU and the exports
    exist and pass their checks (shoefind.encoders.runtimes.onnx_manifest); None otherwise (the caller
    loads the model the usual way, which exports again what failed). load_full(batch_size=) loads the
    torch-backed encoder of the same model and runtime, for what the sessions lack."""
    from shoefind.encoders.checkpoint_manifest import verify_checkpoint
    from shoefind.encoders.cache_key import known_cache_key
    known = known_cache_key(spec, runtime, "cpu", capability)
    if known is None or known.runtime not in ("onnx", "onnx-int8") or known.checkpoint is None:
        return None
    folder = existing_export_dir(known.checkpoint, data_dir)
    if folder is None:
        return None
    verify_checkpoint(known.checkpoint)   # a fine-tuned checkpoint is the file its manifest names, or refused
    int8 = known.runtime == "onnx-int8"
    try:
        meta, image, text, digests = verified_sessions(folder, known.checkpoint, int8, open_session, threads)
    except ExportProblem as exc:   # said with one line by the full load, which exports it again
        log.info("torch-free load skipped: %s", exc)
        return None
    if int8 and (known.fidelity or {}).get("export") != digests:
        return None    # the recorded fidelity check measured other graphs: the full load checks again
    from shoefind.encoders.runtimes.capability import detect
    cap = capability or detect()
    choice = {"asked": (runtime or "auto").lower(), "runtime": known.runtime, "device": "cpu",
              "machine": cap.describe(), "fidelity": known.fidelity, "fell_back_from": list(known.fell_back_from)}
    return SessionEncoder(spec=spec, model_id=known.model_id, is_random=known.is_random, runtime=known.runtime,
                          cache_key=known.key, meta=meta, image_session=image, text_session=text,
                          threads=threads, runtime_choice=choice, load_full=load_full, export_sha256=digests,
                          suspect_embeddings=suspect_embeddings(meta))
