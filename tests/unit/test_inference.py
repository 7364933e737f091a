"""Identification, change in words and text search against a small catalog, with the tiny CLIP."""
import numpy as np
import pytest
from PIL import Image

from shoefind.features.catalog import EmptyCatalog, open_catalog
from shoefind.scoring.change_words import parse_change
from shoefind.retrieve.identify import CLASSIFIERS, choose_method, encode_queries, register_classifier
from shoefind.retrieve.answer import answer_photos, expand_photos
from shoefind.encoders.load import load_model
from shoefind.retrieve.compose import BASELINES, METHODS, fuse, negative_vector, text_query_vector
from shoefind.retrieve.text_search import search_catalog

from tests.helpers import make_photo
from tests.helpers.infer_dataset import catalog_photo, make_catalog_dataset

QUERY_SHOE = "Air Test Red"          # Nike, High, Red


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    return make_catalog_dataset(tmp_path_factory.mktemp("catalog"))


@pytest.fixture(scope="module")
def setup(tiny_model, ds, tmp_path_factory):
    encoder = load_model(tiny_model)
    return encoder, open_catalog(encoder, ds, tmp_path_factory.mktemp("data"))


def change(setup, ds, text, method="constraints"):
    encoder, catalog = setup
    answer = answer_photos(encoder, catalog, [str(catalog_photo(ds, QUERY_SHOE))], change=text,
                           change_method=method, results=20)["answers"][0]
    return answer["change"]


def test_identification_gives_top5_attributes_and_nearest_photos(setup, ds):
    encoder, catalog = setup
    answer = answer_photos(encoder, catalog, [str(catalog_photo(ds, QUERY_SHOE))])
    a = answer["answers"][0]
    assert a["error"] is None and a["method"] == "zeroshot" and a["in_catalog"]
    assert len(a["top_shoes"]) == 5 and a["shoe"] == a["top_shoes"][0]
    probs = [s["probability"] for s in a["top_shoes"]]
    assert probs == sorted(probs, reverse=True) and sum(probs) <= 1.0001
    assert set(a["attributes"]) == {"brand", "color", "hightop", "sole"}
    assert all(0 <= v["confidence"] <= 1 for v in a["attributes"].values())
    assert len(a["nearest_photos"]) == 5 and all(p["path"].startswith(str(ds)) for p in a["nearest_photos"])
    assert answer["random_weights"] is True


def test_a_folder_of_any_format_is_answered_in_one_batched_call(setup, tmp_path):
    encoder, catalog = setup
    folder = tmp_path / "queries"
    make_photo(folder / "a.png", fmt="PNG")
    make_photo(folder / "b.webp", fmt="WEBP")
    make_photo(folder / "c.bmp", fmt="BMP")
    make_photo(folder / "d.gif", fmt="GIF")
    make_photo(folder / "sub" / "big.jpg", size=(3000, 2000))
    (folder / "notes.txt").write_text("not a photo")
    photos = expand_photos([folder])
    assert len(photos) == 5
    answers = answer_photos(encoder, catalog, photos)["answers"]
    assert [a["error"] for a in answers] == [None] * 5
    assert all(len(a["top_shoes"]) == 5 for a in answers)


def test_exif_orientation_is_honoured(setup, tmp_path):
    encoder, _ = setup
    upright = make_photo(tmp_path / "upright.png", size=(320, 200), fmt="PNG")
    img = Image.open(upright)
    exif = Image.Exif()
    exif[0x0112] = 6          # "rotate 90 CW to display": store the pixels turned the other way
    img.transpose(Image.Transpose.ROTATE_90).save(tmp_path / "rotated.png", exif=exif)
    a, b = encoder.load_image(upright), encoder.load_image(tmp_path / "rotated.png")
    assert float(np.abs(np.asarray(a) - np.asarray(b)).max()) < 1e-5


def test_one_bad_photo_fails_alone(setup, ds, tmp_path):
    encoder, catalog = setup
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"<html>not found</html>")
    answers = answer_photos(encoder, catalog, [str(bad), str(catalog_photo(ds, QUERY_SHOE)),
                                               str(tmp_path / "missing.jpg")])["answers"]
    assert "HTML" in answers[0]["error"] and answers[1]["error"] is None and "no such file" in answers[2]["error"]


def test_uploaded_bytes_are_answered_like_files(setup, ds):
    encoder, catalog = setup
    data = catalog_photo(ds, QUERY_SHOE).read_bytes()
    a = answer_photos(encoder, catalog, [data])["answers"][0]
    assert a["photo"] == "uploaded photo" and a["in_catalog"] and a["error"] is None


def test_same_brand_but_blue_keeps_brand_changes_colour_never_the_query_shoe(setup, ds):
    c = change(setup, ds, "same brand but blue")
    assert c["method"] == "constraints" and "brand: same as the photo (Nike)" in c["understood"]
    shoes = {r["shoe"] for r in c["results"]}
    assert shoes == {"Dunk Test Blue", "Air Test Blue"}
    assert c["excluded"] == QUERY_SHOE


@pytest.mark.parametrize("text, check", [
    ("not Nike", lambda r: r["brand"] != "Nike"),
    ("another brand", lambda r: r["brand"] != "Nike"),
    ("-red", lambda r: r["color"] != "Red"),
    ("same top, not red", lambda r: r["hightop"] == "High" and r["color"] != "Red"),
    ("high top", lambda r: r["hightop"] == "High"),
    ("same brand, different colour", lambda r: r["brand"] == "Nike" and r["color"] != "Red"),
])
def test_constraints_filter_the_catalog(setup, ds, text, check):
    c = change(setup, ds, text)
    assert c["results"] and all(check(r) for r in c["results"]), c
    assert QUERY_SHOE not in {r["shoe"] for r in c["results"]}


def test_a_change_nothing_satisfies_says_so(setup, ds):
    c = change(setup, ds, "same colour, not red")      # the query shoe is red
    assert c["results"] == [] and "no catalog shoe satisfies" in c["notes"][-1]


@pytest.mark.parametrize("method", METHODS + BASELINES)
def test_no_method_returns_the_query_shoe(setup, ds, method):
    c = change(setup, ds, "similar but -red", method)
    assert c["results"] and QUERY_SHOE not in {r["shoe"] for r in c["results"]}


def test_text_it_cannot_read_falls_back_to_fusion_and_says_so(setup, ds):
    c = change(setup, ds, "something sporty")
    assert c["method"] == "constraints" and "fell back to photo + text fusion" in c["notes"][0]
    assert len(c["results"]) == 8       # every shoe but the query shoe


def test_a_negative_word_pushes_the_query_away_from_it(setup):
    encoder, catalog = setup
    photo = catalog.embeddings[0]
    text = text_query_vector(encoder, "a sneaker")
    red = negative_vector(encoder, ["red"])
    plain = fuse(photo, text, None, 0.5, 0.5)
    pushed = fuse(photo, text, red, 0.5, 0.5)
    assert float(pushed @ red) < float(plain @ red)
    assert parse_change("a sneaker -red").avoid_texts() == ["red"]


def test_search_by_text_with_filters(setup):
    encoder, catalog = setup
    found = search_catalog(encoder, catalog, "white high-top converse", {"hightop": "hi", "brand": "nike"}, k=10)
    assert found["filters"] == {"hightop": "High", "brand": "Nike"}
    assert {r["shoe"] for r in found["results"]} == {"Air Test Red", "Air Test Blue"}
    assert all(r["score"] >= s["score"] for r, s in zip(found["results"], found["results"][1:]))
    away = search_catalog(encoder, catalog, "a sneaker, not red", k=10)
    assert away["pushed_away"] == ["red"] and all(r["color"] != "Red" for r in away["results"])
    with pytest.raises(ValueError, match="unknown brand 'Nikke"):
        search_catalog(encoder, catalog, "x", {"brand": "Nikke the great"})


def test_a_learned_classifier_plugs_in_and_auto_prefers_it(setup):
    encoder, catalog = setup
    assert choose_method("auto", encoder, catalog) == "zeroshot"
    register_classifier("always-unavailable", build=None, available=lambda enc, cat: False, rank=99)
    try:
        assert choose_method("auto", encoder, catalog) == "zeroshot"
        register_classifier("test-learned", build=CLASSIFIERS["zeroshot"].build, rank=50)
        assert choose_method("auto", encoder, catalog) == "test-learned"
        answer = answer_photos(encoder, catalog, [catalog.photos["path"].iat[0]])["answers"][0]
        assert answer["method"] == "test-learned"
    finally:
        CLASSIFIERS.pop("always-unavailable", None)
        CLASSIFIERS.pop("test-learned", None)
    with pytest.raises(ValueError, match="'nope' is not an identification method: choose one of auto, zeroshot, "
                                         "fewshot"):
        choose_method("nope", encoder, catalog)
    for method in ("learned", "fewshot"):
        with pytest.raises(ValueError, match=r"No .*classifier has been learned .* Run `shoefind learn "):
            choose_method(method, encoder, catalog)


def test_query_embeddings_of_catalog_photos_come_from_the_cache(setup, ds):
    encoder, catalog = setup
    q = encode_queries(encoder, catalog, [str(catalog_photo(ds, QUERY_SHOE))])
    row = q.catalog_rows[0]
    assert row is not None and np.array_equal(q.embeddings[0], catalog.embeddings[row])


def test_empty_or_missing_catalog_is_a_clear_error(tiny_model, tmp_path):
    encoder = load_model(tiny_model)
    (tmp_path / "empty").mkdir()
    with pytest.raises(EmptyCatalog, match="has no shoes"):
        open_catalog(encoder, tmp_path / "empty", tmp_path / "data")
    with pytest.raises(EmptyCatalog, match="does not exist"):
        open_catalog(encoder, tmp_path / "nope", tmp_path / "data")
    broken = tmp_path / "broken" / "Nike_High_Red_Plain Sole_Only Broken"
    broken.mkdir(parents=True)
    (broken / "a.jpg").write_bytes(b"")
    with pytest.raises(EmptyCatalog, match="no shoe with a usable photo"):
        open_catalog(encoder, tmp_path / "broken", tmp_path / "data")


def test_short_context_text_embeddings_equal_the_full_tower(tiny_model):
    encoder = load_model(tiny_model, runtime="torch")  # exact fp32: equality to 1e-5 is meaningful
    texts = ["a photo of a red shoe.", "Similar to Air Test Red, I want same brand but blue", "x"]
    import clip
    import torch
    with torch.no_grad():
        full = torch.nn.functional.normalize(encoder.model.encode_text(clip.tokenize(texts)).float(), dim=-1)
    np.testing.assert_allclose(encoder.encode_texts(texts), full.numpy(), atol=1e-5)


def test_search_text_may_start_with_a_dash(tiny_model, ds, tmp_path):
    import json
    from typer.testing import CliRunner
    from shoefind.cli.main import app
    out = CliRunner().invoke(app, ["search", "-red shoes", "--dataset", str(ds), "--model", tiny_model,
                                   "--data-dir", str(tmp_path / "data"), "-k", "3", "--json"])
    assert out.exit_code == 0, out.output
    found = json.loads(out.stdout)
    assert found["pushed_away"] == ["red"] and len(found["results"]) == 3
