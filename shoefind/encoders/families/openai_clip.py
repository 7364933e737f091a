"""The CLIP model layer: load by name or checkpoint, encode images and prompt ensembles.

Weights come from the standard cache (~/.cache/clip), a checkpoint path (`--model PATH`) or
$SHOEFIND_MODEL, read the way `clip.load` reads them but without importing torchvision
(shoefind.encoders.families.clip_parts). When they are missing and cannot be downloaded,
`ModelUnavailable` says which file to put where.
"""
from __future__ import annotations

import urllib.error
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import warnings

import numpy as np
import torch

from shoefind.encoders.families import clip_parts
from shoefind.encoders.base import ModelUnavailable, encode_in_batches, ensemble_means, weights_id
from shoefind.images import open_image
from shoefind.settings import current

from shoefind.encoders.families.clip_parts import PREPROCESS_VERSION, TINY_MARK, is_tiny  # noqa: F401  (this module's API)


def clip_cache() -> Path:
    """The standard CLIP download folder (~/.cache/clip, or $SHOEFIND_CLIP_CACHE)."""
    return current().clip_cache


def _missing_weights_message(name: str, target: Path) -> str:
    url = clip_parts.model_urls()[name]
    return (
        f"CLIP weights for {name} are not on this machine (shoefind loads models only from local "
        f"caches). On a machine with internet, download {url} (e.g. `curl -L -o {target.name} {url}`) "
        f"and copy the file {target.name} to {target} here - or anywhere, then pass --model "
        f"/path/to/{target.name} or set SHOEFIND_MODEL=/path/to/{target.name}. To let shoefind fetch it "
        "itself on a connected machine, add --download (or set SHOEFIND_DOWNLOAD=1). For a quick try "
        "without real weights, `shoefind model make-tiny data/models/tiny.pt` writes a tiny random model "
        "(its answers are meaningless)."
    )


def resolve_checkpoint(spec: str) -> Path | None:
    """The on-disk file for a model name or path, or None when a named model is not cached."""
    if spec in clip_parts.available_models():
        target = clip_cache() / clip_parts.weights_file_name(spec)
        return target if target.is_file() else None
    path = Path(spec).expanduser()
    if not path.is_file():
        raise ModelUnavailable(
            f"Model '{spec}' is neither a CLIP model name ({', '.join(clip_parts.available_models())}) "
            "nor an existing checkpoint file."
        )
    return path


def _import_clip():
    """The real clip package (only to download weights: it imports torchvision)."""
    with warnings.catch_warnings():
        # clip imports pkg_resources (hence setuptools<81); the warning is not the user's business
        warnings.simplefilter("ignore")
        import clip
    return clip


def _load_clip(spec: str, device: str):
    """The model and its preprocessing, as clip.load(jit=False) gives them; a missing or wrong
    file is a ModelUnavailable saying what to do (downloads only with --download)."""
    if spec in clip_parts.available_models():
        target = clip_cache() / clip_parts.weights_file_name(spec)
        url = clip_parts.model_urls()[spec]
        present = target.is_file()
        if present and clip_parts.checksum_ok(target, url.split("/")[-2]):
            pass
        elif not current().download:
            if present:
                raise ModelUnavailable(f"{target} is not the right file for {spec} (checksum mismatch); "
                                       + _missing_weights_message(spec, target))
            raise ModelUnavailable(_missing_weights_message(spec, target))
        else:   # clip.load downloads it (again, when the checksum is wrong)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load probe inside clip.load
                    return _import_clip().load(spec, device=device, jit=False, download_root=str(clip_cache()))
            except (urllib.error.URLError, OSError, TimeoutError) as exc:
                # a half-written download is not a model
                if target.is_file() and target.stat().st_size == 0:
                    target.unlink()
                raise ModelUnavailable(_missing_weights_message(spec, target)) from exc
            except RuntimeError as exc:
                if "SHA256" in str(exc):
                    raise ModelUnavailable(f"{target} is not the right file for {spec} (checksum mismatch); "
                                           + _missing_weights_message(spec, target)) from exc
                raise
        path = target
    else:
        from shoefind.encoders.checkpoint_manifest import verify_checkpoint
        path = resolve_checkpoint(spec)
        verify_checkpoint(path)     # a checkpoint `shoefind learn` wrote is the file its manifest names
    try:
        return clip_parts.load_checkpoint(path, device)
    except Exception as exc:  # torch raises many kinds for a file that is not a checkpoint
        # torch's own text advises turning off weights_only, i.e. unsafe loading: never shown
        from shoefind.artifacts.torch_files import CodeCarryingFile, refusal
        refused = refusal(exc, path, "CLIP checkpoint")
        if isinstance(refused, CodeCarryingFile):
            raise refused from None
        raise ModelUnavailable(f"{path} is not a CLIP checkpoint: neither a TorchScript archive nor a CLIP "
                               f"state dict ({type(exc).__name__}); pass a CLIP model name or a real "
                               "checkpoint file") from None


@dataclass
class ClipEncoder:
    """A loaded CLIP model with batched, normalised encoders."""

    model: torch.nn.Module
    preprocess: Callable
    model_id: str
    is_random: bool = False
    batch_size: int = 32
    device: str = "cpu"
    _text_cache: dict = field(default_factory=dict, repr=False)

    has_text = True
    runtime = "torch"
    family = "clip"
    supports_prompt_learning = True   # CoOp feeds context vectors through this text tower
    logit_bias = None                 # softmax-trained: no sigmoid bias

    @property
    def input_resolution(self) -> int:
        return int(self.model.visual.input_resolution)

    @property
    def cache_key(self) -> str:
        """What embeddings depend on: the weights and the preprocessing."""
        return f"{self.model_id}|{PREPROCESS_VERSION}"

    def load_image(self, src) -> torch.Tensor:
        """Decode (with JPEG draft at the model's resolution) and preprocess one image."""
        return self.preprocess(open_image(src, size_hint=self.input_resolution))

    @torch.no_grad()
    def encode_tensors(self, batch: torch.Tensor) -> np.ndarray:
        feats = self.model.encode_image(batch.to(self.device)).float()
        return torch.nn.functional.normalize(feats, dim=-1).cpu().numpy()

    def encode_images(self, images: Sequence, batch_size: int | None = None, progress=None) -> np.ndarray:
        """Normalised embeddings for paths, bytes or PIL images, in batches.

        Raises ImageError for the first unreadable image; callers that must go on
        (the embedding cache) decode with `load_image` themselves.
        """
        return encode_in_batches(self, images, batch_size or self.batch_size, progress)

    @property
    def embed_dim(self) -> int:
        return int(self.model.text_projection.shape[1])

    @torch.no_grad()
    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Normalised text embeddings (memoised per process: prompts repeat a lot)."""
        todo = [t for t in dict.fromkeys(texts) if t not in self._text_cache]
        for start in range(0, len(todo), 256):
            chunk = todo[start:start + 256]
            feats = self._text_features(clip_parts.tokenize(chunk, truncate=True))
            for t, f in zip(chunk, feats):
                self._text_cache[t] = f
        if not texts:
            return np.zeros((0, self.embed_dim), dtype=np.float32)
        return np.stack([self._text_cache[t] for t in texts]).astype(np.float32)

    @torch.no_grad()
    def _text_features(self, tokens: torch.Tensor) -> np.ndarray:
        """clip.model.CLIP.encode_text, run only up to the longest prompt's end-of-text token.

        The text transformer is causal and read at end-of-text, so the padding after it (77
        positions in all, a prompt uses ~10) cannot change the result: same embeddings,
        several times faster on a CPU. Prompts of similar length are batched together.
        """
        out = np.zeros((len(tokens), self.embed_dim), np.float32)
        order = tokens.argmax(dim=-1).argsort()  # end-of-text has the largest token id
        for start in range(0, len(tokens), 64):
            idx = order[start:start + 64]
            out[idx.numpy()] = _short_text_features(self.model, tokens[idx].to(self.device)).cpu().numpy()
        return out

    def encode_ensemble(self, prompt_lists: Sequence[Sequence[str]]) -> np.ndarray:
        """One embedding per class: the renormalised mean of its normalised prompt embeddings."""
        flat = [p for prompts in prompt_lists for p in prompts]
        return ensemble_means(self.encode_texts(flat), prompt_lists, self.embed_dim)

    @property
    def logit_scale(self) -> float:
        return float(self.model.logit_scale.exp().item())


def _short_text_features(model, tokens: torch.Tensor) -> torch.Tensor:
    return text_features(model, tokens)


def text_features(model, tokens: torch.Tensor, normalise: bool = True) -> torch.Tensor:
    """CLIP's text pass on any module with CLIP's text parts (a CLIP model, a LiT text tower),
    cut after the longest end-of-text token; differentiable (LiT trains through it)."""
    length = int(tokens.argmax(dim=-1).max()) + 1
    tokens = tokens[:, :length]
    mask = torch.full((length, length), float("-inf"), device=tokens.device).triu_(1)
    feats = text_pass(model, tokens, mask)
    return torch.nn.functional.normalize(feats.float(), dim=-1) if normalise else feats


def text_pass(model, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """CLIP's text transformer over tokens already cut to their length, with its causal mask
    (that length square); unnormalised features. The ONNX text export traces this very code."""
    dtype = model.text_projection.dtype
    x = model.token_embedding(tokens).type(dtype) + model.positional_embedding[:tokens.shape[1]].type(dtype)
    x = x.permute(1, 0, 2)  # (length, batch, width), as CLIP's blocks expect
    for block in model.transformer.resblocks:
        h = block.ln_1(x)
        x = x + block.attn(h, h, h, need_weights=False, attn_mask=mask.to(h.dtype))[0]
        x = x + block.mlp(block.ln_2(x))
    x = model.ln_final(x.permute(1, 0, 2)).type(dtype)
    return x[torch.arange(x.shape[0]), tokens.argmax(dim=-1)] @ model.text_projection


def load_clip_encoder(spec: str, device: str) -> ClipEncoder:
    """A fresh ClipEncoder for a CLIP name or checkpoint path (callers cache it)."""
    # fp32 on every device (clip.load would make a CUDA model fp16): fp16 is the `fp16` runtime's
    # autocast, admitted by its fidelity check, and torch fp32 on CUDA stays exact
    model, preprocess = _load_clip(spec, "cpu")
    model = model.to(device).eval()
    path = resolve_checkpoint(spec)
    is_random = False
    if spec in clip_parts.available_models():
        model_id = spec.replace("/", "-")
    else:
        model_id = f"{Path(spec).stem}-{weights_id(path)}"
        is_random = is_tiny(path)
    return ClipEncoder(model, preprocess, model_id, is_random=is_random, device=device)
