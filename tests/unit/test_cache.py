import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest

from shoefind.features.cache import EmbeddingCache
from shoefind.features.embed import embed_images
from shoefind.encoders.load import load_model

from tests.helpers import photo_items


def test_second_run_encodes_nothing(tiny_model, tmp_path):
    enc = load_model(tiny_model)
    items = photo_items(tmp_path / "img", 10)
    cache = EmbeddingCache(tmp_path / "emb", enc.cache_key)
    first = embed_images(enc, cache, items, batch_size=4)
    assert (first.encoded, first.cached) == (10, 0)
    again = embed_images(enc, EmbeddingCache(tmp_path / "emb", enc.cache_key), items, batch_size=4)
    assert (again.encoded, again.cached) == (0, 10)
    more = items + photo_items(tmp_path / "img2", 13)[10:]
    third = embed_images(enc, EmbeddingCache(tmp_path / "emb", enc.cache_key), more, batch_size=4)
    assert (third.encoded, third.cached) == (3, 10)


def test_cached_vectors_equal_fresh_encoding(tiny_model, tmp_path):
    enc = load_model(tiny_model)
    items = photo_items(tmp_path / "img", 3)
    cache = EmbeddingCache(tmp_path / "emb", enc.cache_key)
    embed_images(enc, cache, items)
    fresh = enc.encode_images([p for p, _ in items])
    np.testing.assert_allclose(EmbeddingCache(tmp_path / "emb", enc.cache_key).matrix([s for _, s in items]), fresh, atol=1e-5)


def test_unreadable_images_are_reported_and_skipped(tiny_model, tmp_path):
    enc = load_model(tiny_model)
    items = photo_items(tmp_path / "img", 3)
    bad = tmp_path / "img" / "bad.jpg"
    bad.write_bytes(b"<html>404</html>")
    report = embed_images(enc, EmbeddingCache(tmp_path / "emb", enc.cache_key), items + [(str(bad), "f" * 64)])
    assert report.encoded == 3 and len(report.failed) == 1 and "HTML" in report.failed[0][1]


def test_cache_is_keyed_by_model(tiny_model, tmp_path):
    enc = load_model(tiny_model)
    items = photo_items(tmp_path / "img", 2)
    embed_images(enc, EmbeddingCache(tmp_path / "emb", enc.cache_key), items)
    assert len(EmbeddingCache(tmp_path / "emb", "other-model|v1")) == 0


# --- damaged shards: moved aside, their images encoded again, nothing else lost ---------------
def _truncate(shard):
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])


def _flip_a_data_byte(shard):
    data = bytearray(shard.read_bytes())
    data[200] ^= 0xFF   # inside the stored vectors: the zip CRC no longer matches
    shard.write_bytes(bytes(data))


def _foreign_dimension(shard):
    with np.load(shard) as z:
        shas = z["sha256"]
    np.savez(shard.with_suffix(".tmp.npz"), sha256=shas, vectors=np.ones((len(shas), 7), np.float32))
    os.replace(shard.with_suffix(".tmp.npz"), shard)


def _random_bytes(shard):
    shard.write_bytes(os.urandom(3000))


def _empty(shard):
    shard.write_bytes(b"")


def _wrong_arrays(shard):
    np.savez(shard.with_suffix(".tmp.npz"), other=np.zeros(3))
    os.replace(shard.with_suffix(".tmp.npz"), shard)


def _not_finite(shard):
    with np.load(shard) as z:
        shas, vecs = z["sha256"], z["vectors"].copy()
    vecs[0, 0] = np.nan
    np.savez(shard.with_suffix(".tmp.npz"), sha256=shas, vectors=vecs)
    os.replace(shard.with_suffix(".tmp.npz"), shard)


@pytest.mark.parametrize("damage", [_truncate, _flip_a_data_byte, _foreign_dimension, _random_bytes, _empty,
                                    _wrong_arrays, _not_finite])
def test_damaged_shard_is_moved_aside_and_its_images_encoded_again(tiny_model, tmp_path, caplog, damage):
    # exact runtime: onnx-int8 (auto's choice on some CPUs) quantises each batch as a whole, so
    # re-encoding in other batches moves a vector by ~1e-3, more than this comparison allows
    enc = load_model(tiny_model, runtime="torch")
    items = photo_items(tmp_path / "img", 8)
    cache = EmbeddingCache.for_encoder(tmp_path, enc)
    embed_images(enc, cache, items[:4], batch_size=4)
    embed_images(enc, cache, items[4:], batch_size=4)
    first, second = sorted(cache.dir.glob("shard-*.npz"))
    damage(first)
    with caplog.at_level(logging.WARNING, logger="shoefind.cache"):
        healed = EmbeddingCache.for_encoder(tmp_path, enc)
    assert healed.damaged == [cache.dir / "damaged" / first.name] and healed.damaged[0].exists()
    assert first.name in caplog.text and "damaged" in caplog.text
    assert len(healed) == 4 and not healed.missing([s for _, s in items[4:]])   # the good shard kept
    report = embed_images(enc, healed, items, batch_size=4)
    assert (report.encoded, report.cached) == (4, 4)
    np.testing.assert_allclose(EmbeddingCache.for_encoder(tmp_path, enc).matrix([s for _, s in items]),
                               enc.encode_images([p for p, _ in items]), atol=1e-5)


def test_shard_of_another_dimension_goes_even_when_it_is_read_first(tiny_model, tmp_path):
    enc = load_model(tiny_model)
    items = photo_items(tmp_path / "img", 3)
    cache = EmbeddingCache.for_encoder(tmp_path, enc)
    foreign = cache.dir / "shard-00000000000000000001-aaaaaaaa.npz"   # sorts first
    np.savez(foreign, sha256=np.array(["e" * 64]), vectors=np.ones((1, enc.embed_dim + 5), np.float32))
    embed_images(enc, EmbeddingCache.for_encoder(tmp_path, enc), items)
    again = EmbeddingCache.for_encoder(tmp_path, enc)
    assert (again.dir / "damaged" / foreign.name).exists() and len(again) == 3
    assert again.matrix([s for _, s in items]).shape == (3, enc.embed_dim)


def test_embed_command_counts_what_issues_csv_lists_and_heals_the_cache(tiny_model, tmp_path, monkeypatch):
    import pandas as pd
    from typer.testing import CliRunner
    from shoefind.cli.main import app
    from tests.helpers import make_labeled_dataset
    monkeypatch.delenv("PREFECT_API_URL", raising=False)   # the stage in this process
    ds = make_labeled_dataset(tmp_path / "ds", n_per_shoe=1)
    shoe = next(p for p in sorted(ds.iterdir()) if p.is_dir())
    for i in range(3):
        (shoe / f"broken {i}.jpg").write_bytes(b"<html>404</html>")
    args = ["embed", str(ds), "--model", tiny_model, "--data-dir", str(tmp_path / "data"), "--json"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    result = json.loads(first.stdout[first.stdout.index("{"):])
    issues = pd.read_csv(tmp_path / "data" / "tables" / "ds" / "issues.csv")
    assert len(result["failed"]) == (issues.kind == "unreadable-image").sum() == 3
    assert result["total"] == result["cached"] + result["encoded"] + 3
    shard = next(Path(result["cache"]).glob("shard-*.npz"))
    shard.write_bytes(shard.read_bytes()[:100])   # truncated: BadZipFile
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    healed = json.loads(again.stdout[again.stdout.index("{"):])
    assert healed["damaged_shards"] == [str(Path(result["cache"]) / "damaged" / shard.name)]
    assert healed["encoded"] == result["encoded"] and "Traceback" not in again.output
