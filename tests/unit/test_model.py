import numpy as np
import pytest
import torch

import clip
from shoefind.encoders.base import ModelUnavailable
from shoefind.encoders.load import load_model
from shoefind.encoders.families.tiny import make_tiny

from tests.helpers import make_photo


def test_tiny_checkpoint_loads_through_clip_load(tiny_model):
    m, preprocess = clip.load(tiny_model, device="cpu", jit=False)
    saved = torch.load(tiny_model, map_location="cpu")
    # clip.load builds the model in fp16 and casts to fp32 on CPU: equal up to half precision
    assert torch.allclose(m.state_dict()["text_projection"], saved["text_projection"].float(), atol=1e-3)
    enc = load_model(tiny_model)
    assert enc.is_random and enc.embed_dim == 32
    assert "random" in open(tiny_model + ".txt").read().lower()


def test_image_and_text_embeddings_are_normalised(tiny_model, tmp_path):
    enc = load_model(tiny_model)
    paths = [make_photo(tmp_path / f"{i}.jpg", seed=i) for i in range(5)]
    x = enc.encode_images(paths, batch_size=2)
    assert x.shape == (5, 32)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1, atol=1e-5)
    t = enc.encode_texts(["a red shoe", "a blue shoe"])
    np.testing.assert_allclose(np.linalg.norm(t, axis=1), 1, atol=1e-5)


def test_batching_does_not_change_embeddings(tiny_model, tmp_path):
    paths = [make_photo(tmp_path / f"{i}.png", seed=i) for i in range(4)]
    enc = load_model(tiny_model, runtime="torch")
    np.testing.assert_allclose(enc.encode_images(paths, batch_size=1), enc.encode_images(paths, batch_size=4), atol=1e-5)
    # auto may pick onnx-int8, which quantises each batch's activations as a whole: within its bar
    auto = load_model(tiny_model)
    one, four = auto.encode_images(paths, batch_size=1), auto.encode_images(paths, batch_size=4)
    assert (one * four).sum(1).min() >= 0.99


def test_prompt_ensemble_is_renormalised_mean(tiny_model):
    enc = load_model(tiny_model)
    prompts = ["a photo of a red shoe.", "red sneakers.", "a red sneaker on white."]
    single = enc.encode_texts(prompts)
    mean = single.mean(axis=0)
    expected = mean / np.linalg.norm(mean)
    got = enc.encode_ensemble([prompts, ["blue"]])
    np.testing.assert_allclose(got[0], expected, atol=1e-5)
    assert got.shape == (2, 32)


def test_missing_named_weights_say_which_file_goes_where(tmp_path, monkeypatch):
    monkeypatch.setenv("SHOEFIND_CLIP_CACHE", str(tmp_path / "clip-cache"))
    monkeypatch.setenv("SHOEFIND_OFFLINE", "1")
    with pytest.raises(ModelUnavailable) as exc:
        load_model("ViT-B/32")
    msg = str(exc.value)
    assert "ViT-B-32.pt" in msg and str(tmp_path / "clip-cache" / "ViT-B-32.pt") in msg
    assert "SHOEFIND_MODEL" in msg and "--model" in msg


def test_failed_download_becomes_the_same_clear_message(tmp_path, monkeypatch):
    # no SHOEFIND_OFFLINE: clip.load really tries to download; this machine has no internet,
    # and a bad proxy makes sure of it where one might.
    monkeypatch.setenv("SHOEFIND_CLIP_CACHE", str(tmp_path / "cc"))
    monkeypatch.delenv("SHOEFIND_OFFLINE", raising=False)
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    with pytest.raises(ModelUnavailable, match="ViT-B-32.pt"):
        load_model("ViT-B/32")


def test_unknown_model_and_non_checkpoint(tmp_path):
    with pytest.raises(ModelUnavailable, match="neither a CLIP model name"):
        load_model(str(tmp_path / "nope.pt"))
    bad = tmp_path / "bad.pt"
    bad.write_text("not a checkpoint")
    with pytest.raises(ModelUnavailable, match="not a CLIP checkpoint"):
        load_model(str(bad))


def test_model_from_environment(tiny_model, monkeypatch):
    monkeypatch.setenv("SHOEFIND_MODEL", tiny_model)
    assert load_model().model_id == load_model(tiny_model).model_id


def test_different_weights_get_different_cache_keys(tmp_path):
    a = load_model(str(make_tiny(tmp_path / "a.pt", seed=1)))
    b = load_model(str(make_tiny(tmp_path / "b.pt", seed=2)))
    assert a.cache_key != b.cache_key


def test_random_bytes_are_not_a_checkpoint_and_unsafe_loading_is_never_suggested(tmp_path):
    import os
    import pickle
    from typer.testing import CliRunner
    from shoefind.cli.main import app
    junk = tmp_path / "weights.pt"
    junk.write_bytes(os.urandom(4096))
    marker = tmp_path / "code-ran"

    class Evil:   # a pickle that runs code (creates `marker`) if loaded unsafely
        def __reduce__(self):
            return (open, (str(marker), "w"))
    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps(Evil()))
    for path in (junk, evil):
        with pytest.raises(ModelUnavailable) as info:
            load_model(str(path))
        assert "not a CLIP checkpoint" in str(info.value) and "weights_only" not in str(info.value)
    assert not marker.exists()
    crawl = tmp_path / "crawl" / "Nike_Low_Red_Plain Sole_Air"
    make_photo(crawl / "a.jpg")
    out = CliRunner().invoke(app, ["filter", str(crawl.parent), "--model", str(junk),
                                   "--data-dir", str(tmp_path / "data")])
    text = " ".join(out.output.split())
    assert out.exit_code == 2 and "not a CLIP checkpoint" in text and "--model none" in text, out.output
    assert "weights_only" not in text and "Traceback" not in text
    assert not (tmp_path / "data" / "filter" / "queue.sqlite").exists()   # nothing was sorted
