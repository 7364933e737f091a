"""Golden outputs of the encoders, in the style of open_clip's regression test: a few fixed inputs
encoded by each family with fixed weights, stored in tests/golden/encoders.json beside the version
constant each output belongs to. tests/models/test_golden.py checks them with a tolerance.

A change of an encoder's output must come with a bump of its version constant (which also retrains
the trained test models, tests/helpers/trained_models.py). To record new values after a bump:

    .venv/bin/python -m tests.helpers.golden --write

Writing refuses to change a value whose version constant did not change.
"""
from __future__ import annotations

import importlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from tests.helpers import REPO, make_photo

GOLDEN = REPO / "tests" / "golden" / "encoders.json"
PROMPTS = ["a photo of a red high-top sneaker", "a photo of a white running shoe", "a black boot"]
PHOTOS = [((200, 30, 30), 0), ((30, 60, 200), 1), ((40, 40, 40), 2)]   # (colour, seed) of generated photos
DIMS = 8            # stored components per vector (the first ones), enough to see any change
TOLERANCE = 2e-4    # fp32 results differ by ~1e-6 between CPUs; a real change moves them by far more

# output -> (version constant it belongs to, how it is computed)
ENTRIES = {
    "clip-tiny/images": "shoefind.encoders.families.clip_parts:PREPROCESS_VERSION",
    "clip-tiny/texts": "shoefind.encoders.families.clip_parts:TOKENIZER_VERSION",
    "clip-tiny-onnx/images": "shoefind.encoders.runtimes.onnx_files:EXPORT_VERSION",
    "clip-tiny-onnx/texts": "shoefind.encoders.runtimes.onnx_files:EXPORT_VERSION",
    "efficientnet-lite0/images": "shoefind.encoders.families.backbones:BACKBONE_PREPROCESS_VERSION",
    "lit-tower/texts": "shoefind.encoders.families.text_tower:TOWER_VERSION",
}


def version_of(target: str):
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


def photos(folder: Path) -> list[Path]:
    return [make_photo(folder / f"golden-{i}.png", color=c, seed=s, size=(96, 64)) for i, (c, s) in enumerate(PHOTOS)]


def _lit_checkpoint(folder: Path, backbone) -> Path:
    """A LiT checkpoint whose text tower has seeded random weights (no training: only the tower's code)."""
    import torch

    from shoefind.encoders.families.lit import backbone_base, write_lit
    from shoefind.encoders.families.text_tower import TextTower, TowerConfig
    torch.manual_seed(0)
    tower = TextTower(TowerConfig(embed_dim=backbone.embed_dim, width=64, layers=2, heads=2))
    return write_lit(folder / "golden.lit.pt", tower, backbone_base(backbone))


def compute(folder: Path) -> dict[str, np.ndarray]:
    """Every golden output, computed now with this checkout's code (fp32, torch or ONNX Runtime)."""
    from shoefind.encoders.families.tiny import make_tiny
    from shoefind.encoders.load import forget_loaded, load_encoder
    from shoefind.images import open_image
    images = [open_image(p) for p in photos(folder)]
    tiny = make_tiny(folder / "tiny.pt", seed=0)
    out = {}
    clip = load_encoder(str(tiny), runtime="torch", device="cpu", torch_free=False)
    out["clip-tiny/images"] = clip.encode_images(images)
    out["clip-tiny/texts"] = clip.encode_texts(PROMPTS)
    onnx = load_encoder(str(tiny), runtime="onnx", device="cpu", torch_free=False)
    out["clip-tiny-onnx/images"] = onnx.encode_images(images)
    out["clip-tiny-onnx/texts"] = onnx.encode_texts(PROMPTS)
    backbone = load_encoder("efficientnet-lite0", device="cpu")
    out["efficientnet-lite0/images"] = backbone.encode_images(images)
    lit = load_encoder(str(_lit_checkpoint(folder, backbone)), device="cpu")
    out["lit-tower/texts"] = lit.encode_texts(PROMPTS)
    forget_loaded()
    return {k: np.asarray(v, dtype=np.float32)[:, :DIMS] for k, v in out.items()}


def stored() -> dict:
    return json.loads(GOLDEN.read_text()) if GOLDEN.is_file() else {}


def differences(computed: dict[str, np.ndarray], golden: dict) -> list[str]:
    """What does not match: a missing entry, a version the constants no longer have, values off."""
    problems = []
    for name, target in ENTRIES.items():
        entry = golden.get(name)
        if entry is None:
            problems.append(f"{name}: no golden values (write them: python -m tests.helpers.golden --write)")
            continue
        if str(entry["version"]) != str(version_of(target)):
            problems.append(f"{name}: golden values are for {target} = {entry['version']}, the code has "
                            f"{version_of(target)}: record them again (python -m tests.helpers.golden --write)")
            continue
        diff = float(np.abs(computed[name] - np.asarray(entry["values"], dtype=np.float32)).max())
        if diff > TOLERANCE:
            problems.append(f"{name}: output moved by {diff:.2e} (> {TOLERANCE:g}) with {target} unchanged: "
                            "bump that version if the change is meant")
    return problems


def write() -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        computed = compute(Path(tmp))
    golden = stored()
    refused = [p for p in differences(computed, golden) if "moved by" in p]
    if refused:
        return refused
    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    entries = []
    for name, target in ENTRIES.items():
        rows = ",\n    ".join(json.dumps([round(float(x), 6) for x in row]) for row in computed[name])
        entries.append(f'  {json.dumps(name)}: {{"version": {json.dumps(version_of(target))}, "values": [\n    {rows}]}}')
    GOLDEN.write_text("{\n" + ",\n".join(entries) + "\n}\n")
    return []


if __name__ == "__main__":
    if "--write" not in sys.argv:
        sys.exit("usage: python -m tests.helpers.golden --write")
    if problems := write():
        sys.exit("\n".join(problems))
    print(f"wrote {GOLDEN}")
