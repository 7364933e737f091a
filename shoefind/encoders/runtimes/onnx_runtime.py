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
Nothing there is used on trust: meta.json records each graph's sha256 and the weights it was made
from, each graph is stamped with the model's facts (shoefind.encoders.runtimes.onnx_manifest), and a
graph that fails (truncated, edited, another model's) is exported again with one warning line. When
the graph it replaces gave other vectors, meta.json marks the embeddings its runtime cached until
then as suspect, and every cache of that key drops them when it is opened (shoefind.features.invalidate).
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import time
import uuid
import warnings
from contextlib import contextmanager
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
                                          read_meta, run_text_session, tower_path, weights_sha256)
from shoefind.encoders.runtimes.onnx_manifest import ExportProblem, check_file, check_session, stamp, suspect_embeddings

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


def _stamp_graph(path: Path, props: dict[str, str]) -> None:
    """Write the export's facts into the graph's own metadata (what meta.json is checked against)."""
    import onnx
    graph = onnx.load(str(path))
    onnx.helper.set_model_props(graph, {p.key: p.value for p in graph.metadata_props} | props)
    onnx.save(graph, str(path))


def _export(tower: torch.nn.Module, example: torch.Tensor, input_name: str, target: Path, props: dict) -> Path:
    axes = {0: "batch", 1: "length"} if input_name == "tokens" else {0: "batch"}

    def write(tmp: Path):
        with torch.no_grad(), warnings.catch_warnings():
            # the TorchScript-based exporter is deprecated but writes one self-contained file,
            # which a rename can publish atomically (the dynamo exporter splits out the weights)
            warnings.simplefilter("ignore")
            torch.onnx.export(tower.eval(), (example,), str(tmp), input_names=[input_name],
                              output_names=["features"], opset_version=OPSET, dynamo=False,
                              dynamic_axes={input_name: axes, "features": {0: "batch"}})
        _stamp_graph(tmp, props)
    return _publish(write, target)


def model_facts(model, weights_sha: str) -> dict:
    """What an export of this model is, read from the torch model: meta.json and every graph's stamp
    (shoefind.encoders.runtimes.onnx_manifest), and what a torch-free process needs besides the graphs."""
    return {"export_version": EXPORT_VERSION, "weights_sha256": weights_sha,
            "input_resolution": int(model.visual.input_resolution),
            "embed_dim": int(model.text_projection.shape[1]),
            "logit_scale": float(model.logit_scale.exp().item()),
            "context_length": int(model.positional_embedding.shape[0])}


def _quantise(source: Path, target: Path, props: dict) -> Path:
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
        _stamp_graph(tmp, props)
    return _publish(write, target)


@contextmanager
def _locked(folder: Path):
    """One process (and thread) at a time checks and completes an export folder."""
    with open(folder / ".export.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


# An export replaced because it failed its checks is compared with the fresh one: below this min cosine
# it was another model, and whatever its runtime cached is dropped (shoefind.features.invalidate).
SAME_EXPORT = 0.999
PROBE_IMAGES = 4


@dataclass
class _Exports:
    """A model's export folder while it is checked and completed, under its lock: every graph used is
    the one the manifest records and is stamped with this model's facts, else it is exported again."""

    folder: Path
    base: ClipEncoder
    truth: dict                         # model_facts of the loaded model
    threads: int | None = None
    recorded: dict = field(default_factory=dict)    # file -> sha256, as meta.json had them
    files: dict = field(default_factory=dict)       # file -> sha256, checked or made now
    older: bool = False                             # exported before manifests listed the graphs
    suspect: dict = field(default_factory=dict)     # cache key -> time (ns) a foreign graph was replaced

    def read(self) -> None:
        meta = read_meta(self.folder)
        if meta is None:
            return
        if "files" not in meta:
            self.older = True
            log.warning("%s was exported by an older shoefind (its meta.json lists no sha256 of its graphs): "
                        "exporting them again, each compared with the graph it replaces", self.folder)
        if meta.get("weights_sha256") == self.truth["weights_sha256"] and isinstance(meta.get("files"), dict):
            self.recorded = {k: v for k, v in meta["files"].items() if isinstance(v, str)}
        self.suspect = suspect_embeddings(meta)
        wrong = [k for k in self.truth if meta.get(k) != self.truth[k]]
        if wrong and "files" in meta:   # (a meta.json without files is an older shoefind's: not worth a line)
            log.warning("%s says %s %r where the model's is %r: written again from the model",
                        self.folder / META_FILE, wrong[0], meta.get(wrong[0]), self.truth[wrong[0]])

    def session(self, tower: str, int8: bool):
        """An ONNX Runtime session of the checked (or freshly made) graph."""
        path = tower_path(self.folder, tower, int8)
        aside = None
        if path.is_file():
            try:
                digest = check_file(path, self.recorded)
                try:
                    session = _session(path, self.threads)
                except Exception as exc:   # ONNX Runtime's own errors: a damaged graph
                    raise ExportProblem(f"{path} cannot be opened ({type(exc).__name__})") from None
                check_session(session, path, self.truth, tower, int8)
                self.files[path.name] = digest
                return session
            except ExportProblem as exc:
                if not self.older:   # (said once for the folder)
                    log.warning("%s: exporting it again", exc)
            aside = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.rejected")
            os.replace(path, aside)
        try:
            self._make(path, tower, int8)
            self.files[path.name] = weights_sha256(path)
            session = _session(path, self.threads)
            if aside is not None:
                self._judge(aside, session, tower, int8)
        finally:
            if aside is not None:
                aside.unlink(missing_ok=True)
        return session

    def _make(self, path: Path, tower: str, int8: bool) -> None:
        props = stamp(self.truth, tower, int8)
        if int8:
            self.session(tower, int8=False)    # quantised from the checked fp32 graph
            _quantise(tower_path(self.folder, tower, False), path, props)
            return
        model, res = self.base.model, self.truth["input_resolution"]
        if tower == "image":
            _export(_ImageTower(model), torch.zeros(2, 3, res, res), "pixels", path, props)
        else:   # cut after the end-of-text token, as every caller gives them
            _export(_TextTower(model), clip.tokenize(["a shoe", "a photo of a shoe"])[:, :7], "tokens", path, props)

    def _probe(self, session, tower: str) -> np.ndarray:
        if tower == "image":
            from shoefind.encoders.runtimes.fidelity import generated_images
            pixels = np.stack([self.base.preprocess(im).numpy() for im in generated_images(PROBE_IMAGES)])
            return _normalise(session.run(None, {"pixels": pixels.astype(np.float32)})[0])
        from shoefind.encoders.runtimes.fidelity import SAMPLE_PROMPTS
        return run_text_session(session, clip.tokenize_numpy(SAMPLE_PROMPTS, self.truth["context_length"], truncate=True))

    def _judge(self, old_path: Path, fresh, tower: str, int8: bool) -> None:
        """When the replaced graph gave other vectors than the fresh one, mark what its runtime cached
        until now as suspect (meta.json's suspect_embeddings: the cache drops it wherever it is opened,
        shoefind.features.invalidate)."""
        try:
            old = _session(old_path, self.threads)
            cosine = float((self._probe(old, tower) * self._probe(fresh, tower)).sum(1).min())
        except Exception:   # it cannot run this model's inputs: it made none of its embeddings
            return
        if cosine >= SAME_EXPORT:
            return
        key = f"{self.base.cache_key}|{INT8_SUFFIX}" if int8 else self.base.cache_key
        self.suspect[key] = time.time_ns()
        log.warning("the %s graph replaced in %s was not this model's (min cosine %.3f to a fresh export): "
                    "the embeddings cached with it are encoded again", tower, self.folder, cosine)

    def write_manifest(self) -> None:
        """meta.json: the model's facts and the sha256 of every graph there (written last, atomically)."""
        files = {n: d for n, d in (self.recorded | self.files).items() if (self.folder / n).is_file()}
        meta = self.truth | {"files": dict(sorted(files.items()))}
        if self.suspect:
            meta["suspect_embeddings"] = dict(sorted(self.suspect.items()))
        if read_meta(self.folder) != meta:
            _publish(lambda tmp: tmp.write_text(json.dumps(meta, indent=2)), self.folder / META_FILE)


@dataclass
class OnnxClipEncoder(ClipEncoder):
    """ClipEncoder whose towers run in ONNX Runtime (the torch model stays for its metadata)."""

    runtime: str = "onnx"
    image_session: Any = field(default=None, repr=False)
    text_session: Any = field(default=None, repr=False)
    export_sha256: dict = field(default_factory=dict)   # the graphs it runs (fidelity records name them)
    suspect_embeddings: dict = field(default_factory=dict)   # cache key -> cached before then: made by a foreign graph

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
    """An ONNX Runtime encoder for the weights `base` was loaded from: their exports, checked against
    their manifest and this model (shoefind.encoders.runtimes.onnx_manifest), made again where they fail."""
    int8 = runtime == "onnx-int8"
    folder = export_dir(checkpoint, data_dir)
    exports = _Exports(folder, base, model_facts(base.model, weights_sha256(checkpoint)), threads)
    with _locked(folder):
        exports.read()
        image, text = exports.session("image", int8), exports.session("text", int8)
        exports.write_manifest()
    used = {p.name: exports.files[p.name] for p in (tower_path(folder, t, int8) for t in ("image", "text"))}
    return OnnxClipEncoder(model=base.model, preprocess=base.preprocess, model_id=base.model_id,
                           is_random=base.is_random, batch_size=base.batch_size, device=base.device,
                           runtime=runtime, image_session=image, text_session=text, export_sha256=used,
                           suspect_embeddings=dict(exports.suspect))
