"""`--image-loading seed`: photos decoded as the seed decodes them (Image.open, full size, no EXIF turn, CLIP's
convert("RGB") dropping transparency), carried by the model spec into every stage, in a cache of its own."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from shoefind.encoders.cache_key import known_cache_key
from shoefind.encoders.runtimes.capability import Capability
from shoefind.encoders.image_loading import with_image_loading
from shoefind.encoders.load import load_encoder, parse_spec
from shoefind.encoders.spec import is_image_backbone, split_image_loading
from shoefind.images import ImageError, open_image, open_image_as_seed
from tests.helpers.cli import shoefind_here


def transparent_png(path, size=(60, 40)):
    """A red square on a transparent background whose pixels store black, as many web PNGs do."""
    rgba = np.zeros((size[1], size[0], 4), np.uint8)
    rgba[10:30, 20:40] = (220, 20, 20, 255)
    Image.fromarray(rgba, "RGBA").save(path)
    return path


def test_the_seeds_decoding_keeps_what_the_file_stores(tmp_path):
    path = transparent_png(tmp_path / "shoe.png")
    seed = open_image_as_seed(path)
    assert seed.mode == "RGBA" and seed.convert("RGB").getpixel((0, 0)) == (0, 0, 0)    # CLIP's convert: black
    assert open_image(path).getpixel((0, 0)) == (255, 255, 255)                          # shoefind: on white
    # a JPEG is decoded at full size (shoefind drafts it down to what the model needs)
    Image.new("RGB", (1600, 1200), (10, 200, 30)).save(tmp_path / "big.jpg")
    assert open_image_as_seed(tmp_path / "big.jpg").size == (1600, 1200)
    assert open_image(tmp_path / "big.jpg", size_hint=224).size[0] < 1600
    # the same guards: an HTML page is refused with the same clear error
    (tmp_path / "page.jpg").write_text("<html><body>not found</body></html>")
    with pytest.raises(ImageError, match="HTML"):
        open_image_as_seed(tmp_path / "page.jpg")


def test_the_choice_travels_with_the_model_spec():
    assert with_image_loading("ViT-B/32", "seed") == "ViT-B/32+seed-loading"
    assert with_image_loading("ViT-B/32+seed-loading", "seed") == "ViT-B/32+seed-loading"
    assert with_image_loading("ViT-B/32", "shoefind") == with_image_loading("ViT-B/32", None) == "ViT-B/32"
    assert split_image_loading("efficientnet-lite2+flip+seed-loading") == ("efficientnet-lite2+flip", "seed")
    assert is_image_backbone("efficientnet-lite0+seed-loading")
    assert parse_spec("efficientnet-lite0+seed-loading").family == "backbone"


def test_seed_loading_has_its_own_cache_known_without_loading(tiny_model, data_dir, tmp_path):
    cap = Capability.simulated()
    own = load_encoder(tiny_model, device="cpu", runtime="torch", capability=cap)
    seed = load_encoder(f"{tiny_model}+seed-loading", device="cpu", runtime="torch", capability=cap)
    assert seed.cache_key == own.cache_key + "|seed-loading" and seed.model_id == own.model_id + "+seed-loading"
    known = known_cache_key(f"{tiny_model}+seed-loading", runtime="torch", device="cpu", capability=cap)
    assert (known.key, known.model_id) == (seed.cache_key, seed.model_id)
    path = transparent_png(tmp_path / "shoe.png", size=(96, 64))
    assert seed.batch_size == own.batch_size and seed.embed_dim == own.embed_dim      # the rest is the model's
    a, b = seed.encode_images([path])[0], own.encode_images([path])[0]
    assert float(a @ b) < 0.9999                                  # other pixels: black where shoefind has white


def test_image_loading_option_is_read_while_parsing(tmp_path, capfd):
    code, _out, err = shoefind_here(capfd, "evaluate", tmp_path, "--image-loading", "pil", "--data-dir", tmp_path)
    assert code == 2 and "--image-loading" in err and "Traceback" not in err
