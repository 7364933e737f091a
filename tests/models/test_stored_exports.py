"""ONNX exports are verified before use (issue 25 part 3, and part 6's tampered meta.json).

The hostile cases: another model's `image-int8r.onnx` dropped into the export folder was used and its
vectors (cosine -0.02 to the real model's) stayed in the cache after the export was repaired; a tampered
`logit_scale` lifted a top probability from 0.14 to 1.0; `context_length: 5` cut prompts; `embed_dim 999`
sent valid shards to damaged/ and re-encoded everything; a bad `input_resolution` or a string or null
`min_cosine` gave tracebacks. The model layer is real: tiny random CLIPs exported to ONNX.
"""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from shoefind.encoders.load import forget_loaded, load_model
from shoefind.encoders.families.tiny import make_tiny
from shoefind.encoders.runtimes.fidelity import record_path
from shoefind.features.cache import EmbeddingCache
from shoefind.features.embed import embed_images
from shoefind.features.table import build_table

from tests.helpers import make_labeled_dataset
from tests.helpers.cli import shoefind

import onnxruntime  # noqa: F401  (requirements.txt installs it: missing is a failure)


@pytest.fixture
def models(tmp_path):
    """Two tiny CLIPs of one architecture (so one's graphs fit the other's folder), both exported."""
    a = make_tiny(tmp_path / "a" / "w.pt", seed=11)
    b = make_tiny(tmp_path / "b" / "w.pt", seed=12)
    forget_loaded()
    for weights in (a, b):
        load_model(str(weights), runtime="onnx-int8")
    forget_loaded()
    return a, b


def export_folder(weights):
    (folder,) = (weights.parent / "onnx").iterdir()
    return folder


def photos_of(table):
    return [(str(table.root / p), s) for p, s in zip(table.images.path, table.images.sha256)]


def cosines_to_torch(weights, cache, table) -> np.ndarray:
    """Each cached vector's cosine to the real model's fp32 embedding of the same photo."""
    exact = load_model(str(weights), runtime="torch").encode_images([p for p, _ in photos_of(table)])
    return (cache.matrix(table.images.sha256.tolist()) * exact).sum(1)


def warnings_in(err: str, text: str) -> list[str]:
    return [line for line in err.splitlines() if text in line]


def test_another_models_graph_dropped_into_the_export_is_never_used(models, tmp_path, data_dir):
    a, b = models
    dataset = make_labeled_dataset(tmp_path / "catalog", n_per_shoe=2)
    shutil.copy(export_folder(b) / "image-int8r.onnx", export_folder(a) / "image-int8r.onnx")
    args = ["embed", str(dataset), "--model", str(a), "--runtime", "onnx-int8", "--data-dir", str(data_dir), "--json"]
    env = {**os.environ, "SHOEFIND_DATA": str(data_dir)}
    code, out, err = shoefind(*args, env=env)
    assert code == 0, err
    assert len(warnings_in(err, "is not the file its manifest records")) == 1, err
    assert "exporting it again" in err and "Traceback" not in err
    table = build_table(dataset)
    key = load_model(str(a), runtime="onnx-int8").cache_key
    cosines = cosines_to_torch(a, EmbeddingCache(data_dir / "embeddings", key), table)
    assert cosines.min() > 0.98, cosines           # the real model's vectors (another model's: about 0)
    # repaired: the next run finds everything cached and checked, says nothing, and runs without torch
    code, out, err = shoefind(*args, env=env)
    assert code == 0 and json.loads(out)["encoded"] == 0 and "manifest" not in err, err


def test_embeddings_an_unchecked_foreign_graph_made_are_dropped(models, tmp_path, data_dir, caplog):
    """What an older shoefind left: an export folder without a file list, another model's graph in it,
    and that graph's vectors in the caches of two data folders. The graph is exported again, and in each
    data folder, when the cache is next opened, the vectors are dropped and encoded again."""
    a, b = models
    key = load_model(str(a), runtime="onnx-int8").cache_key
    forget_loaded()
    folder = export_folder(a)
    meta = json.loads((folder / "meta.json").read_text())
    (folder / "meta.json").write_text(json.dumps({k: meta[k] for k in ("input_resolution", "embed_dim",
                                                                          "logit_scale", "context_length")}))
    shutil.copy(export_folder(b) / "image-int8r.onnx", folder / "image-int8r.onnx")
    table = build_table(make_labeled_dataset(tmp_path / "catalog", n_per_shoe=2))
    foreign = load_model(str(b), runtime="onnx-int8")
    other = tmp_path / "other-data"
    for root in (data_dir, other):     # B's vectors under A's key
        embed_images(foreign, EmbeddingCache(root / "embeddings", key), photos_of(table))
    assert cosines_to_torch(a, EmbeddingCache(data_dir / "embeddings", key), table).max() < 0.9
    forget_loaded()
    with caplog.at_level("WARNING"):
        encoder = load_model(str(a), runtime="onnx-int8")
    said = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(said) == 2 and "was exported by an older shoefind" in said[0], said   # one line each
    assert "the image graph replaced in" in said[1] and "was not this model's" in said[1], said
    cache = EmbeddingCache.for_encoder(data_dir, encoder)
    assert len(cache) == 0 and list(cache.dir.glob("invalidated/*/shard-*.npz"))
    embed_images(encoder, cache, photos_of(table))
    assert cosines_to_torch(a, cache, table).min() > 0.98
    # the other data folder, opened later by a torch-free process: dropped there too, then nothing more
    forget_loaded()
    light = load_model(str(a), runtime="onnx-int8")
    assert type(light).__name__ == "SessionEncoder" and light.suspect_embeddings
    assert len(EmbeddingCache.for_encoder(other, light)) == 0
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert len(EmbeddingCache.for_encoder(data_dir, light)) == len(table.images), "encoded after: kept"
    assert not caplog.records


@pytest.mark.parametrize("field, value", [("embed_dim", 999), ("logit_scale", 1000.0), ("logit_scale", 20.0),
                                          ("context_length", 5), ("input_resolution", "abc"),
                                          ("input_resolution", None), ("input_resolution", 64),
                                          ("weights_sha256", "0" * 64), ("files", {})])
def test_a_tampered_meta_json_is_judged_against_the_export(models, tmp_path, data_dir, field, value):
    a, _ = models
    table = build_table(make_labeled_dataset(tmp_path / "catalog", n_per_shoe=2))
    exact = load_model(str(a), runtime="onnx-int8")
    truth = (exact.embed_dim, exact.logit_scale, exact.input_resolution)
    cache = EmbeddingCache.for_encoder(data_dir, exact)
    embed_images(exact, cache, photos_of(table))
    shards = sorted(p.name for p in cache.shards())
    meta_path = export_folder(a) / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps(meta | {field: value}))
    forget_loaded()
    again = load_model(str(a), runtime="onnx-int8")      # no traceback; never the tampered numbers
    assert (again.embed_dim, again.logit_scale, again.input_resolution) == pytest.approx(truth)
    assert json.loads(meta_path.read_text())[field] == meta[field], "meta.json written again from the model"
    reopened = EmbeddingCache.for_encoder(data_dir, again)
    assert sorted(p.name for p in reopened.shards()) == shards and not reopened.damaged
    assert embed_images(again, reopened, photos_of(table)).encoded == 0, "nothing encoded again"
    long = "a photo of a red high-top leather sneaker with a white sole and black laces"
    assert np.allclose(again.encode_texts([long]), exact.encode_texts([long]), atol=1e-5), "prompts not cut"
    forget_loaded()
    assert type(load_model(str(a), runtime="onnx-int8")).__name__ == "SessionEncoder", "repaired: torch-free again"


def test_a_tampered_logit_scale_does_not_change_the_answer(models, tmp_path, data_dir):
    """The hostile case through the CLI: `infer`'s top probability with meta.json's logit_scale at 1000."""
    a, _ = models
    dataset = make_labeled_dataset(tmp_path / "catalog", n_per_shoe=2)
    photo = tmp_path / "query.jpg"      # a catalog photo's picture, not its bytes: the method answers, not the label
    photo.write_bytes(next(dataset.glob("Nike_High*/photo 0.jpg")).read_bytes() + b"\0")
    args = ["infer", str(photo), "--dataset", str(dataset), "--model", str(a), "--runtime", "onnx-int8",
            "--method", "zeroshot", "--data-dir", str(data_dir), "--json"]
    env = {**os.environ, "SHOEFIND_DATA": str(data_dir)}
    code, out, err = shoefind(*args, env=env)
    assert code == 0, err
    before = json.loads(out)["answers"][0]["top_shoes"][0]["probability"]
    meta_path = export_folder(a) / "meta.json"
    meta_path.write_text(json.dumps(json.loads(meta_path.read_text()) | {"logit_scale": 1000.0}))
    code, out, err = shoefind(*args, env=env)
    assert code == 0, err
    after = json.loads(out)["answers"][0]["top_shoes"][0]["probability"]
    assert after == pytest.approx(before, abs=1e-3) and after < 0.9, (before, after)
    assert len(warnings_in(err, "says logit_scale 1000.0 where the model's is")) == 1, err


@pytest.mark.parametrize("bad", ["0.999", None])
def test_a_fidelity_record_whose_cosine_is_not_a_number_is_checked_again(models, data_dir, bad, caplog):
    from shoefind.encoders.cache_key import known_cache_key
    a, _ = models
    load_model(str(a), runtime="onnx-int8")
    path = record_path(load_model(str(a), runtime="torch").cache_key)
    record = json.loads(path.read_text())
    (key,) = [k for k in record if k.startswith("onnx-int8")]
    record[key]["min_cosine"] = bad
    path.write_text(json.dumps(record))
    assert known_cache_key(str(a), "onnx-int8", "cpu") is None     # not a traceback: load and check again
    forget_loaded()
    with caplog.at_level("WARNING"):
        encoder = load_model(str(a), runtime="onnx-int8")
    assert f"min_cosine {bad!r} is not a cosine; checking again" in caplog.text, caplog.text
    assert not encoder.runtime_choice["fidelity"]["reused"]
    assert json.loads(path.read_text())[key]["min_cosine"] >= 0.99


def test_a_fidelity_record_of_other_graphs_is_checked_again(models, data_dir):
    a, _ = models
    load_model(str(a), runtime="onnx-int8")
    path = record_path(load_model(str(a), runtime="torch").cache_key)
    record = json.loads(path.read_text())
    (key,) = [k for k in record if k.startswith("onnx-int8")]
    assert set(record[key]["export"]) == {"image-int8r.onnx", "text-int8r.onnx"}
    record[key]["export"] = {"image-int8r.onnx": "0" * 64, "text-int8r.onnx": "1" * 64}
    path.write_text(json.dumps(record))
    forget_loaded()
    encoder = load_model(str(a), runtime="onnx-int8")
    assert type(encoder).__name__ == "OnnxClipEncoder" and not encoder.runtime_choice["fidelity"]["reused"]
    assert json.loads(path.read_text())[key]["export"] == encoder.export_sha256
