"""clip_parts loads CLIP checkpoints, tokenizes and preprocesses exactly as the clip package does,
without importing torchvision (the start-up cost of `import clip`)."""
import subprocess
import sys

import pytest
import torch
from PIL import Image

from shoefind.encoders.families import clip_parts
from tests.helpers import REPO, SHARED_DATA, make_photo


def test_loading_a_checkpoint_imports_neither_clip_nor_torchvision(tiny_model):
    code = ("import sys; from shoefind.encoders.load import load_encoder; "
            f"e = load_encoder({tiny_model!r}, runtime='torch'); e.encode_texts(['a red shoe']); "
            "print(sorted(m for m in ('clip', 'clip.clip', 'torchvision') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stderr


def test_same_model_tokens_and_pixels_as_clip(tiny_model, tmp_path):
    import clip    # after clip_parts loaded clip.model: the package reuses it
    model, preprocess = clip_parts.load_checkpoint(tiny_model)
    ref_model, ref_preprocess = clip.load(tiny_model, device="cpu", jit=False)
    assert type(model) is type(ref_model)
    for name, tensor in ref_model.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor), name
    texts = ["a photo of a red high-top sneaker.", "Nike Dunk Low Panda", "x " * 100]
    assert torch.equal(clip_parts.tokenize(texts, truncate=True), clip.tokenize(texts, truncate=True))
    with pytest.raises(RuntimeError):
        clip_parts.tokenize(texts[-1])
    assert clip_parts.available_models() == clip.available_models()
    photos = [make_photo(tmp_path / "wide.png", size=(333, 211)), make_photo(tmp_path / "tall.jpg", size=(97, 180))]
    if SHARED_DATA.is_dir():   # a real photo too, where there is one
        photos.append(next((SHARED_DATA / "findyourshoes-labeled").rglob("*.jpg")))
    for photo in photos:
        image = Image.open(photo)
        for n_px in (32, 224):
            assert torch.equal(clip_parts.Preprocess(n_px)(image), clip.clip._transform(n_px)(image)), (photo, n_px)
    grey = Image.new("L", (224, 224), 128)
    assert torch.equal(clip_parts.Preprocess(224)(grey), clip.clip._transform(224)(grey))
    # its torchvision form (what augmentation rebuilds) is clip's pipeline too
    from torchvision import transforms as T
    assert torch.equal(T.Compose(clip_parts.Preprocess(32).transforms)(image), clip.clip._transform(32)(image))


def test_a_named_models_checksum_is_computed_once_per_file_version(tmp_path):
    import hashlib
    weights = tmp_path / "ViT-B-32.pt"
    weights.write_bytes(b"weights" * 1000)
    right = hashlib.sha256(weights.read_bytes()).hexdigest()
    assert not clip_parts.checksum_known_ok(weights, right)
    assert clip_parts.checksum_ok(weights, right) and clip_parts.checksum_known_ok(weights, right)
    assert not clip_parts.checksum_ok(weights, "0" * 64)
    weights.write_bytes(b"other weights" * 1000)       # replaced: hashed again, and found wrong
    assert not clip_parts.checksum_known_ok(weights, right) and not clip_parts.checksum_ok(weights, right)
