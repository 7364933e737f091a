"""Every model family (OpenAI CLIP, open_clip, transformers CLIP and SigLIP) from its own on-disk format.

Each tiny model is built from its family's own config with random weights, saved the way that
family saves models, loaded back through the spec, and run through every text feature.
"""
import numpy as np
import pytest
from typer.testing import CliRunner

from shoefind.encoders.base import ModelUnavailable, NoPromptLearning, match_probability
from shoefind.encoders.load import forget_loaded, load_model, parse_spec, split_specs
from shoefind.encoders.families.tiny import make_tiny_model
from shoefind.features.catalog import open_catalog
from shoefind.retrieve.answer import answer_photos
from shoefind.retrieve.text_search import search_catalog

from tests.helpers import make_photo
from tests.helpers.infer_dataset import catalog_photo, make_catalog_dataset

FAMILIES = {"clip": "clip", "open_clip": "open_clip", "hf": "hf", "siglip": "hf"}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("families")
    return {fam: str(make_tiny_model(root / fam, family=fam)) for fam in FAMILIES}


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    return make_catalog_dataset(tmp_path_factory.mktemp("catalog"), photos_per_shoe=1)


@pytest.mark.parametrize("fam", FAMILIES)
def test_each_family_loads_from_its_own_format_and_encodes(models, fam, tmp_path):
    parsed = parse_spec(models[fam])
    assert parsed.family == FAMILIES[fam]
    enc = load_model(models[fam])
    assert enc.family == FAMILIES[fam] and enc.has_text and enc.is_random and enc.embed_dim == 32
    assert enc.load_seconds > 0          # the model comparison reports it
    x = enc.encode_images([make_photo(tmp_path / f"{i}.jpg", seed=i) for i in range(3)], batch_size=2)
    t = enc.encode_texts(["a red shoe", "a blue high-top sneaker"])
    assert x.shape == (3, 32) and t.shape == (2, 32)
    np.testing.assert_allclose(np.linalg.norm(np.vstack([x, t]), axis=1), 1, atol=1e-4)
    assert not np.allclose(t[0], t[1])


def test_prefixed_specs_mean_the_same_model(models):
    assert load_model("open_clip:" + models["open_clip"]).cache_key == load_model(models["open_clip"]).cache_key
    assert load_model("hf:" + models["siglip"]).cache_key == load_model(models["siglip"]).cache_key
    assert parse_spec("ViT-B/32") == parse_spec("ViT-B/32")
    assert parse_spec("clip:ViT-B/32").target == parse_spec("ViT-B/32").target == "ViT-B/32"
    assert parse_spec("open_clip:hf-hub:Marqo/marqo-fashionSigLIP").family == "open_clip"
    assert parse_spec("hf:patrickjohncyh/fashion-clip").family == "hf"
    assert parse_spec("efficientnet-lite0").family == "backbone"
    assert split_specs(" a, b ,,c") == ["a", "b", "c"]


def test_cache_keys_name_family_weights_and_preprocessing_and_are_stable(models, tmp_path):
    keys = {fam: load_model(models[fam]).cache_key for fam in FAMILIES}
    assert len(set(keys.values())) == 4
    for fam in ("open_clip", "hf", "siglip"):
        assert keys[fam].startswith(FAMILIES[fam] + ":") and "|w=" in keys[fam] and "|p=" in keys[fam]
    forget_loaded()
    assert {fam: load_model(models[fam]).cache_key for fam in FAMILIES} == keys   # same files, same key
    other = make_tiny_model(tmp_path / "open_clip", family="open_clip", seed=1)
    weights = lambda key: key.split("|w=")[1].split("|")[0]  # noqa: E731
    assert weights(load_model(str(other)).cache_key) != weights(keys["open_clip"])


def test_siglip_has_a_sigmoid_bias_and_the_ranking_uses_its_own_scale(models):
    sig, hf = load_model(models["siglip"]), load_model(models["hf"])
    assert hf.logit_bias is None and match_probability(hf, np.array([0.3])) is None
    assert sig.logit_bias == pytest.approx(-10.0)
    assert sig.logit_scale == pytest.approx(float(sig.model.logit_scale.detach().exp()))
    cos = np.array([0.1, 0.2])
    expected = 1 / (1 + np.exp(-(sig.logit_scale * cos - 10.0)))
    np.testing.assert_allclose(match_probability(sig, cos), expected, rtol=1e-5)


@pytest.mark.parametrize("fam", FAMILIES)
def test_identify_change_and_text_search_with_every_family(models, fam, ds, tmp_path):
    enc = load_model(models[fam])
    catalog = open_catalog(enc, ds, tmp_path / "data")
    answer = answer_photos(enc, catalog, [str(catalog_photo(ds, "Air Test Red"))], change="same brand but blue",
                           results=5)
    a = answer["answers"][0]
    assert a["error"] is None and len(a["top_shoes"]) == 5 and set(a["attributes"]) >= {"brand", "color"}
    assert a["change"]["results"] and all(r["color"] == "Blue" for r in a["change"]["results"])
    found = search_catalog(enc, catalog, "a white converse", {"brand": "converse"}, k=5)
    assert found["results"] and {r["brand"] for r in found["results"]} == {"Converse"}


@pytest.mark.parametrize("fam", ["open_clip", "hf", "siglip"])
def test_coop_and_onnx_say_clearly_they_are_clip_only(models, fam):
    from shoefind.errors import UserError
    from shoefind.learn.methods import default_methods, methods_problem
    from shoefind.learn.coop import train_coop
    enc = load_model(models[fam])
    with pytest.raises(NoPromptLearning, match="Tip-Adapter"):
        train_coop(enc, None, np.zeros((2, 32), np.float32), np.array([0, 1]))
    assert "coop" not in default_methods(enc)
    assert "clip: model for CoOp" in methods_problem(models[fam], "coop")
    with pytest.raises(UserError, match="clip: models only"):
        load_model(models[fam], runtime="onnx")


def test_missing_hub_models_give_the_paragraph_and_exit_2(tmp_path, monkeypatch):
    from shoefind.cli.main import app
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("SHOEFIND_DOWNLOAD", raising=False)
    for spec, repo in (("hf:patrickjohncyh/fashion-clip", "patrickjohncyh/fashion-clip"),
                       ("open_clip:hf-hub:Marqo/marqo-fashionSigLIP", "Marqo/marqo-fashionSigLIP"),
                       ("open_clip:ViT-B-32/laion2b_s34b_b79k", "laion/CLIP-ViT-B-32-laion2B-s34B-b79K")):
        with pytest.raises(ModelUnavailable) as exc:
            load_model(spec)
        msg = str(exc.value)
        assert f"hf download {repo}" in msg and str(tmp_path / "hf" / "hub") in msg and "--download" in msg
    res = CliRunner().invoke(app, ["model", "check", "--model", "hf:patrickjohncyh/fashion-clip"])
    assert res.exit_code == 2 and "hf download patrickjohncyh/fashion-clip" in res.output


def test_model_list_says_what_is_here(models, tmp_path, monkeypatch):
    import json
    from shoefind.cli.main import app
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("SHOEFIND_DATA", str(tmp_path / "data"))
    make_tiny_model(tmp_path / "data" / "models" / "tiny-siglip", family="siglip")
    res = CliRunner().invoke(app, ["model", "list", "--json"])
    assert res.exit_code == 0, res.output
    rows = {r["spec"]: r for r in json.loads(res.stdout)}
    assert rows["efficientnet-lite0"]["available"] is True
    assert rows["hf:patrickjohncyh/fashion-clip"]["available"] is False
    assert rows["open_clip:hf-hub:Marqo/marqo-fashionSigLIP"]["available"] is False
    local = rows[str(tmp_path / "data" / "models" / "tiny-siglip")]
    assert local["available"] is True


def test_make_tiny_cli_writes_each_family(tmp_path):
    from shoefind.cli.main import app
    res = CliRunner().invoke(app, ["model", "make-tiny", str(tmp_path / "oc"), "--family", "open_clip"])
    assert res.exit_code == 0 and (tmp_path / "oc" / "open_clip_config.json").is_file()
    res = CliRunner().invoke(app, ["model", "make-tiny", str(tmp_path / "x"), "--family", "jax"])
    assert res.exit_code == 2


def test_device_choice_is_checked(models):
    import torch

    from shoefind.encoders.load import resolve_device
    from shoefind.errors import UserError
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(UserError, match="choose auto, cpu or cuda"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="no CUDA GPU"):
            load_model(models["hf"], device="cuda")
