import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np

from shoefind.features.cache import EmbeddingCache
from shoefind.features.embed import embed_images
from shoefind.images import sha256_file
from shoefind.encoders.load import load_model

from tests.helpers import REPO, make_photo


def photos(folder, n):
    paths = [make_photo(folder / f"p{i}.jpg", seed=i, color=(i * 6 % 255, 90, 200)) for i in range(n)]
    return [(str(p), sha256_file(p)) for p in paths]


def test_second_run_encodes_nothing(tiny_model, tmp_path):
    enc = load_model(tiny_model)
    items = photos(tmp_path / "img", 10)
    cache = EmbeddingCache(tmp_path / "emb", enc.cache_key)
    first = embed_images(enc, cache, items, batch_size=4)
    assert (first.encoded, first.cached) == (10, 0)
    again = embed_images(enc, EmbeddingCache(tmp_path / "emb", enc.cache_key), items, batch_size=4)
    assert (again.encoded, again.cached) == (0, 10)
    more = items + photos(tmp_path / "img2", 13)[10:]
    third = embed_images(enc, EmbeddingCache(tmp_path / "emb", enc.cache_key), more, batch_size=4)
    assert (third.encoded, third.cached) == (3, 10)


def test_cached_vectors_equal_fresh_encoding(tiny_model, tmp_path):
    enc = load_model(tiny_model)
    items = photos(tmp_path / "img", 3)
    cache = EmbeddingCache(tmp_path / "emb", enc.cache_key)
    embed_images(enc, cache, items)
    fresh = enc.encode_images([p for p, _ in items])
    np.testing.assert_allclose(EmbeddingCache(tmp_path / "emb", enc.cache_key).matrix([s for _, s in items]), fresh, atol=1e-5)


def test_unreadable_images_are_reported_and_skipped(tiny_model, tmp_path):
    enc = load_model(tiny_model)
    items = photos(tmp_path / "img", 3)
    bad = tmp_path / "img" / "bad.jpg"
    bad.write_bytes(b"<html>404</html>")
    report = embed_images(enc, EmbeddingCache(tmp_path / "emb", enc.cache_key), items + [(str(bad), "f" * 64)])
    assert report.encoded == 3 and len(report.failed) == 1 and "HTML" in report.failed[0][1]


def test_cache_is_keyed_by_model(tiny_model, tmp_path):
    enc = load_model(tiny_model)
    items = photos(tmp_path / "img", 2)
    embed_images(enc, EmbeddingCache(tmp_path / "emb", enc.cache_key), items)
    assert len(EmbeddingCache(tmp_path / "emb", "other-model|v1")) == 0


def test_killed_run_loses_nothing_and_rerun_continues(tiny_model, tmp_path):
    items = photos(tmp_path / "img", 24)
    script = textwrap.dedent(f"""
        import time, sys
        sys.path.insert(0, {str(REPO)!r})
        from shoefind.features.cache import EmbeddingCache
        from shoefind.features.embed import embed_images
        from shoefind.encoders.load import load_model
        enc = load_model({tiny_model!r})
        items = {items!r}
        embed_images(enc, EmbeddingCache({str(tmp_path / 'emb')!r}, enc.cache_key), items, batch_size=4,
                     progress=lambda n: time.sleep(0.15 * n))
    """)
    proc = subprocess.Popen([sys.executable, "-c", script])
    enc = load_model(tiny_model)
    shard_dir = EmbeddingCache(tmp_path / "emb", enc.cache_key).dir
    deadline = time.time() + 60
    while len(list(shard_dir.glob("shard-*.npz"))) < 2 and time.time() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    survived = len(EmbeddingCache(tmp_path / "emb", enc.cache_key))
    assert 8 <= survived < 24
    cache = EmbeddingCache(tmp_path / "emb", enc.cache_key)
    report = embed_images(enc, cache, items, batch_size=4)
    assert report.cached == survived and report.encoded == 24 - survived
    assert len(EmbeddingCache(tmp_path / "emb", enc.cache_key)) == 24


def test_concurrent_writers_lose_nothing(tiny_model, tmp_path):
    items = photos(tmp_path / "img", 16)
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(REPO)!r})
        from shoefind.features.cache import EmbeddingCache
        from shoefind.features.embed import embed_images
        from shoefind.encoders.load import load_model
        enc = load_model({tiny_model!r})
        items = {items!r}
        part = items[int(sys.argv[1])::2] + items[:4]   # overlapping work on purpose
        embed_images(enc, EmbeddingCache({str(tmp_path / 'emb')!r}, enc.cache_key), part, batch_size=2)
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script, str(i)]) for i in (0, 1)]
    assert all(p.wait() == 0 for p in procs)
    enc = load_model(tiny_model)
    cache = EmbeddingCache(tmp_path / "emb", enc.cache_key)
    assert len(cache) == 16 and not cache.missing([s for _, s in items])
    assert cache.compact() == 1 and len(EmbeddingCache(tmp_path / "emb", enc.cache_key)) == 16
