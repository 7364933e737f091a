"""OpenAI CLIP's model, tokenizer and preprocessing without `import clip` (which imports torchvision,
and with it torch._dynamo: seconds of start-up that loading a checkpoint never needs).

The `clip` package (clip-anytorch) keeps the model in clip/model.py and the tokenizer in
clip/simple_tokenizer.py, neither of which needs torchvision; only clip/__init__ -> clip/clip.py
does. Here those two files are loaded under their own names (`clip.model`, `clip.simple_tokenizer`)
without running the package's __init__, so a later `import clip` reuses the very same modules
(same classes). `load_checkpoint` is `clip.load(path, jit=False)` and `preprocess(n)` is
`clip.clip._transform(n)`, step for step (tests compare both with clip's own, bit for bit).
The real `clip` is still imported to download weights (`--download`).
"""
from __future__ import annotations

import ast
import functools
import importlib.util
import os
import sys
import warnings
from pathlib import Path

import numpy as np

from shoefind.encoders.weights import known_sha256, remembered_sha256

# Bumped whenever image preprocessing changes, so cached embeddings are recomputed.
PREPROCESS_VERSION = "clip-center-crop-v1"
# Bumped when tokens for the same text change (the LiT text tower reads CLIP's tokens too).
TOKENIZER_VERSION = 1
# In the sidecar .txt of a checkpoint with random weights (shoefind.encoders.families.tiny): reports say so.
TINY_MARK = "shoefind-tiny-random"

# clip.clip._transform's normalisation
MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)


def is_tiny(path: Path) -> bool:
    """Whether a checkpoint is marked as random weights (its sidecar .txt says so)."""
    marker = path.with_suffix(path.suffix + ".txt")
    return marker.is_file() and TINY_MARK in marker.read_text(errors="ignore")


@functools.lru_cache(maxsize=1)
def _package_dir() -> Path:
    spec = importlib.util.find_spec("clip")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the clip package (clip-anytorch) is not installed: pip install -r requirements.txt")
    return Path(list(spec.submodule_search_locations)[0])


def _submodule(name: str):
    """clip.<name>, loaded from its file without the package __init__ (unless clip is imported already)."""
    full = f"clip.{name}"
    if full in sys.modules:
        return sys.modules[full]
    if "clip" in sys.modules:   # the real package is there: import the usual way
        return importlib.import_module(full)
    spec = importlib.util.spec_from_file_location(full, _package_dir() / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[full] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[full]
        raise
    return module


def clip_model():
    """The clip.model module (CLIP, build_model)."""
    return _submodule("model")


@functools.lru_cache(maxsize=1)
def model_urls() -> dict[str, str]:
    """clip.clip._MODELS (name -> download URL), read from clip/clip.py's source."""
    tree = ast.parse((_package_dir() / "clip.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "_MODELS" for t in node.targets):
            return ast.literal_eval(node.value)
    raise ImportError("clip/clip.py defines no _MODELS: an unexpected clip package version")


def available_models() -> list[str]:
    """clip.available_models()."""
    return list(model_urls())


def weights_file_name(name: str) -> str:
    """The file a named model's weights download to (ViT-B/32 -> ViT-B-32.pt)."""
    return os.path.basename(model_urls()[name])


@functools.lru_cache(maxsize=1)
def _tokenizer():
    return _submodule("simple_tokenizer").SimpleTokenizer()


def tokenize(texts, context_length: int = 77, truncate: bool = False):
    """clip.tokenize: a (len(texts), context_length) int64 tensor."""
    import torch
    return torch.from_numpy(tokenize_numpy(texts, context_length, truncate))


def tokenize_numpy(texts, context_length: int = 77, truncate: bool = False) -> np.ndarray:
    """clip.tokenize as an int64 numpy array (no torch)."""
    if isinstance(texts, str):
        texts = [texts]
    tok = _tokenizer()
    sot, eot = tok.encoder["<|startoftext|>"], tok.encoder["<|endoftext|>"]
    result = np.zeros((len(texts), context_length), dtype=np.int64)
    for i, text in enumerate(texts):
        tokens = [sot] + tok.encode(text) + [eot]
        if len(tokens) > context_length:
            if not truncate:
                raise RuntimeError(f"Input {text} is too long for context length {context_length}")
            tokens = tokens[:context_length]
            tokens[-1] = eot
        result[i, :len(tokens)] = tokens
    return result


class Preprocess:
    """clip.clip._transform(n_px): bicubic resize of the short side, centre crop, RGB, tensor, normalise."""

    def __init__(self, n_px: int):
        self.n_px = int(n_px)

    def __call__(self, image):
        import torch
        n = self.n_px
        pixels = torch.from_numpy(self._rgb(image)).view(n, n, 3).permute((2, 0, 1)).contiguous()
        pixels = pixels.to(dtype=torch.get_default_dtype()).div(255)
        mean = torch.as_tensor(MEAN, dtype=pixels.dtype).view(-1, 1, 1)
        std = torch.as_tensor(STD, dtype=pixels.dtype).view(-1, 1, 1)
        return pixels.sub_(mean).div_(std)

    def numpy(self, image) -> np.ndarray:
        """The same pixels as a float32 (3, n, n) numpy array, without torch (the same float32
        operations in the same order: equal bit for bit)."""
        pixels = self._rgb(image).transpose(2, 0, 1).astype(np.float32)
        pixels /= np.float32(255)
        pixels -= np.asarray(MEAN, np.float32).reshape(-1, 1, 1)
        pixels /= np.asarray(STD, np.float32).reshape(-1, 1, 1)
        return pixels

    def _rgb(self, image) -> np.ndarray:
        """Resized, centre-cropped RGB uint8 pixels (n, n, 3)."""
        from PIL import Image
        n = self.n_px
        w, h = image.size
        short, long = (w, h) if w <= h else (h, w)
        new_w, new_h = (n, int(n * long / short)) if w <= h else (int(n * long / short), n)
        if (new_w, new_h) != (w, h):
            image = image.resize((new_w, new_h), Image.BICUBIC)
        top, left = int(round((new_h - n) / 2.0)), int(round((new_w - n) / 2.0))
        image = image.crop((left, top, left + n, top + n)).convert("RGB")
        return np.array(image, np.uint8, copy=True).reshape(n, n, 3)

    @property
    def transforms(self) -> list:
        """The same steps as torchvision transforms, for code that rebuilds the pipeline (augmented views
        swap the resize and crop for a random one); only this imports torchvision."""
        from torchvision import transforms as T
        return [T.Resize(self.n_px, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(self.n_px),
                _convert_image_to_rgb, T.ToTensor(), T.Normalize(MEAN, STD)]

    def __repr__(self) -> str:
        return f"Preprocess({self.n_px})"


def _convert_image_to_rgb(image):
    return image.convert("RGB")


def checksum_known_ok(path: Path, expected: str) -> bool:
    """Whether this very version of the file (size, mtime, inode) was hashed before, to `expected`."""
    return known_sha256(path) == expected


def checksum_ok(path: Path, expected: str) -> bool:
    """Whether the file's sha256 is `expected` (what clip.load checks on every load), hashed once per
    version of the file (shoefind.encoders.spec.remembered_sha256)."""
    return remembered_sha256(path) == expected


def load_checkpoint(path: str | os.PathLike, device: str = "cpu"):
    """clip.load(path, device, jit=False): (model, preprocess) from a TorchScript archive or a state dict."""
    import torch
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)   # torch.jit.load's deprecation, as in clip.load
        try:
            model = torch.jit.load(str(path), map_location="cpu").eval()
            state_dict = None
        except RuntimeError:
            state_dict = torch.load(str(path), map_location="cpu", weights_only=True)   # never code
    model = clip_model().build_model(state_dict or model.state_dict()).to(device)
    if str(device) == "cpu":
        model.float()
    return model, Preprocess(model.visual.input_resolution)
