"""Test models: a tiny randomly initialised CLIP (and a full-size random one for benchmarks).

Built with `clip.model.CLIP` itself and saved as a state dict that `clip.load(path)` reads,
so tests run the exact loading and encoding path of the real models. A sidecar .txt marks
them as random, and reports say so.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch


from shoefind.encoders.families.clip_parts import clip_model as _clip_model
from shoefind.encoders.families.openai_clip import TINY_MARK


def make_tiny(path: str | os.PathLike, seed: int = 0, embed_dim: int = 32, resolution: int = 32) -> Path:
    """Write a tiny randomly initialised CLIP state dict that `clip.load(path)` reads.

    Built with clip.model.CLIP itself (1 vision and 1 text layer, width 64), so it runs the
    exact code path of the real models; its answers are random. A sidecar .txt says so.
    """
    torch.manual_seed(seed)
    m = _clip_model().CLIP(
        embed_dim=embed_dim, image_resolution=resolution, vision_layers=1, vision_width=64,
        vision_patch_size=16, context_length=77, vocab_size=49408, transformer_width=64,
        transformer_heads=1, transformer_layers=1,
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".part")
    torch.save(m.state_dict(), tmp)
    os.replace(tmp, path)
    path.with_suffix(path.suffix + ".txt").write_text(
        f"{TINY_MARK}: a tiny CLIP with RANDOM weights (seed {seed}) for tests; its answers mean nothing.\n"
    )
    return path


def make_full_random(path: str | os.PathLike, name: str = "ViT-B/32", seed: int = 0) -> Path:
    """A full-size architecture with random weights (for speed benchmarks only)."""
    torch.manual_seed(seed)
    cfg = {"ViT-B/32": dict(embed_dim=512, image_resolution=224, vision_layers=12, vision_width=768,
                            vision_patch_size=32, context_length=77, vocab_size=49408,
                            transformer_width=512, transformer_heads=8, transformer_layers=12)}[name]
    m = _clip_model().CLIP(**cfg)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(m.state_dict(), path)
    path.with_suffix(path.suffix + ".txt").write_text(f"{TINY_MARK}: {name} architecture, RANDOM weights.\n")
    return path


TINY_FAMILIES = ("clip", "open_clip", "hf", "siglip")


def make_tiny_model(path: str | os.PathLike, family: str = "clip", seed: int = 0) -> Path:
    """A tiny random model of `family`, written in that family's own on-disk format.

    clip: an OpenAI CLIP state dict (.pt); open_clip: open_clip's hub folder (config json +
    safetensors); hf / siglip: a transformers CLIPModel / SiglipModel folder (save_pretrained)
    with a locally built tokenizer and image processor. Load any of them with --model PATH.
    """
    if family == "clip":
        return make_tiny(path, seed=seed)
    if family == "open_clip":
        from shoefind.encoders.families.open_clip import make_tiny_open_clip
        return make_tiny_open_clip(path, seed=seed)
    if family in ("hf", "siglip"):
        from shoefind.encoders.families.hf import make_tiny_hf
        return make_tiny_hf(path, "clip" if family == "hf" else "siglip", seed=seed)
    raise ValueError(f"unknown family '{family}': choose one of {', '.join(TINY_FAMILIES)}")
