"""The vector store and its faiss index verify themselves: every catalog photo gets its own vector
through the approximate path (a cache shared with another dataset, a stored photo the catalog no
longer has, a photo filed twice), and a damaged store or index is rebuilt with one warning line and
answers as exact search does."""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from shoefind.features.cache import EmbeddingCache
from shoefind.features.catalog import catalog_from_table
from shoefind.features.table import build_table
from shoefind.features.vector_index import INDEX_FILE, STORE_DIR, AnnIndex, VectorStore
from tests.helpers import make_labeled_dataset

import faiss  # noqa: F401,E402  (requirements.txt installs it: a missing one is a failure)
DIM = 64
THRESHOLD = 10     # SHOEFIND_ANN_THRESHOLD=10: the approximate path on a small catalog


def unit(v):
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


@pytest.fixture
def shared(tmp_path):
    """84 photos (4 shoes x 21) plus one filed twice; the cache stored, in this order, the first 40
    photos, one the catalog has since lost, the rest, and 30 photos of another dataset."""
    ds = make_labeled_dataset(tmp_path / "ds", n_per_shoe=21)
    first = sorted(ds.rglob("*.jpg"))[0]
    twin = next(p for p in sorted(ds.iterdir()) if p != first.parent) / "same photo.jpg"
    shutil.copyfile(first, twin)
    table = build_table(ds)
    shas = list(dict.fromkeys(table.images["sha256"]))
    assert len(table.images) == 85 and len(shas) == 84
    rng = np.random.default_rng(0)
    vectors = {s: unit(rng.standard_normal(DIM)) for s in shas}
    lost, others = "e" * 64, [f"{i:064x}" for i in range(30)]
    vectors |= {s: unit(rng.standard_normal(DIM)) for s in [lost, *others]}
    cache = EmbeddingCache(tmp_path / "embeddings", "model|pre")
    for batch in (shas[:40] + [lost] + shas[40:], others):
        cache.add(batch, np.stack([vectors[s] for s in batch]))
    return table, cache, vectors


def own_vectors_and_exact_answers(big, exact, vectors):
    """Each photo's vector is its own; nearest photos and shoe ranking agree with exact search."""
    assert big.search.approximate and not exact.search.approximate
    assert len(big) == len(exact) == 85 and sorted(big.photos["path"]) == sorted(exact.photos["path"])
    for i, sha in enumerate(big.photos["sha256"]):
        np.testing.assert_allclose(np.asarray(big.embeddings[i], np.float32), vectors[sha], atol=2e-3)
    for sha in exact.photos["sha256"]:
        q = vectors[sha]
        got, want = big.nearest_photos(q, 5), exact.nearest_photos(q, 5)
        assert sorted(big.photos["sha256"].iloc[got[0]]) == sorted(exact.photos["sha256"].iloc[want[0]])
        np.testing.assert_allclose(got[1], want[1], atol=2e-3)
        assert big.photos["sha256"].iat[got[0][0]] == sha and got[1][0] > 0.998
        b, e = big.shoe_scores(q), exact.shoe_scores(q)
        np.testing.assert_allclose(b[0], e[0], atol=2e-3)


def test_every_photo_gets_its_own_vector_through_the_index(shared):
    table, cache, vectors = shared
    big = catalog_from_table(table, cache, threshold=THRESHOLD)
    exact = catalog_from_table(table, cache, threshold=10 ** 9)
    own_vectors_and_exact_answers(big, exact, vectors)
    twin = big.photos[big.photos["sha256"] == big.photos["sha256"].iat[0]]
    assert len(twin) == 2     # both paths of the photo filed twice are answers


def store_file(cache, name):
    return cache.dir / STORE_DIR / name


def damage(cache, how):
    folder = cache.dir / STORE_DIR
    if how == "swapped shas rows":
        data = bytearray((folder / "shas.s64").read_bytes())
        data[64 * 3:64 * 4], data[64 * 50:64 * 51] = data[64 * 50:64 * 51], data[64 * 3:64 * 4]
        (folder / "shas.s64").write_bytes(bytes(data))
    elif how == "truncated vectors":
        with open(folder / "vectors.f16", "r+b") as fh:
            fh.truncate(DIM * 2 * 81)
    elif how == "corrupted vectors":
        with open(folder / "vectors.f16", "r+b") as fh:
            fh.seek(DIM * 2 * 10)
            fh.write(np.random.default_rng(1).bytes(DIM * 2 * 5))
    elif how == "truncated shas":
        with open(folder / "shas.s64", "r+b") as fh:
            fh.truncate(64 * 80)
    elif how == "missing order":
        for p in folder.glob("order-*.npy"):
            p.unlink()
    elif how == "garbage state":
        (folder / "state.json").write_text("{not json")
    elif how == "truncated index":
        with open(folder / INDEX_FILE, "r+b") as fh:
            fh.truncate((folder / INDEX_FILE).stat().st_size // 2)
    elif how == "corrupted index":
        size = (folder / INDEX_FILE).stat().st_size
        with open(folder / INDEX_FILE, "r+b") as fh:
            fh.seek(size // 2)
            fh.write(b"\xff" * 64)
    elif how == "index of a bigger store":
        # the index of another store of the same dimension, holding more rows than this one
        other = VectorStore(folder.parent / "other-store")
        rng = np.random.default_rng(5)
        other.append([f"{i:064x}" for i in range(300)], unit(rng.standard_normal((300, DIM))))
        AnnIndex(other).ensure()
        shutil.copyfile(other.folder / INDEX_FILE, folder / INDEX_FILE)
        shutil.copyfile(other.folder / "ivf-sq8.json", folder / "ivf-sq8.json")
    else:
        raise AssertionError(how)


STORE_DAMAGE = ["swapped shas rows", "truncated vectors", "corrupted vectors", "truncated shas", "missing order",
                "garbage state"]
INDEX_DAMAGE = ["truncated index", "corrupted index", "index of a bigger store"]


@pytest.mark.parametrize("how", STORE_DAMAGE + INDEX_DAMAGE)
def test_a_damaged_store_or_index_is_rebuilt_with_one_warning(shared, how, caplog):
    table, cache, vectors = shared
    catalog_from_table(table, cache, threshold=THRESHOLD)
    damage(cache, how)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="shoefind"):
        big = catalog_from_table(table, cache, threshold=THRESHOLD)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    kind = "approximate index" if how in INDEX_DAMAGE else "vector store"
    assert warnings[0].startswith(f"damaged {kind}") and "rebuilt" in warnings[0]
    exact = catalog_from_table(table, cache, threshold=10 ** 9)
    own_vectors_and_exact_answers(big, exact, vectors)
    # repaired for good: the next open is silent
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="shoefind"):
        catalog_from_table(table, cache, threshold=THRESHOLD)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_an_intact_store_is_not_hashed_again_and_an_mtime_restoring_edit_is_caught(shared, caplog):
    import os
    table, cache, vectors = shared
    catalog_from_table(table, cache, threshold=THRESHOLD)
    path = store_file(cache, "shas.s64")
    before = os.stat(path)
    data = bytearray(path.read_bytes())
    data[0:64], data[64:128] = data[64:128], data[0:64]
    path.write_bytes(bytes(data))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))   # same size and mtime: only ctime tells
    with caplog.at_level(logging.WARNING, logger="shoefind"):
        big = catalog_from_table(table, cache, threshold=THRESHOLD)
    assert any("damaged vector store" in r.getMessage() for r in caplog.records)
    own_vectors_and_exact_answers(big, catalog_from_table(table, cache, threshold=10 ** 9), vectors)


def test_a_store_whose_order_and_checksums_were_forged_is_still_caught(shared, caplog):
    """Rows swapped and the checksums made to match (no CRC can say no): the catalog's own check of
    each photo's row, and the sortedness of the order, catch it."""
    import json
    from shoefind.features.checked_files import crc32_file, stamp
    table, cache, vectors = shared
    catalog_from_table(table, cache, threshold=THRESHOLD)
    folder = cache.dir / STORE_DIR
    damage(cache, "swapped shas rows")
    state = json.loads((folder / "state.json").read_text())
    state["crc"]["shas.s64"] = crc32_file(folder / "shas.s64")
    state["stamps"]["shas.s64"] = stamp(folder / "shas.s64")
    (folder / "state.json").write_text(json.dumps(state))
    with caplog.at_level(logging.WARNING, logger="shoefind"):
        big = catalog_from_table(table, cache, threshold=THRESHOLD)
    assert [r.getMessage() for r in caplog.records if "damaged vector store" in r.getMessage()]
    own_vectors_and_exact_answers(big, catalog_from_table(table, cache, threshold=10 ** 9), vectors)


def test_augmented_view_keys_never_stand_in_for_their_photo(tmp_path):
    """A view's key ("<sha>#v1s0") is longer than a store row: cut to 64 bytes it would be the photo's."""
    cache = EmbeddingCache(tmp_path, "model|pre")
    rng = np.random.default_rng(3)
    sha = "a" * 64
    view, photo = unit(rng.standard_normal(DIM)), unit(rng.standard_normal(DIM))
    cache.add([f"{sha}#v1s0"], view[None])
    cache.add([sha], photo[None])
    store = VectorStore.for_cache(cache.dir)
    assert store.rows == 1
    np.testing.assert_allclose(np.asarray(store.vectors[store.row_of(sha)], np.float32), photo, atol=2e-3)


def test_a_store_of_an_older_version_is_rebuilt_quietly(shared, caplog):
    import json
    table, cache, vectors = shared
    catalog_from_table(table, cache, threshold=THRESHOLD)
    state_path = store_file(cache, "state.json")
    state = json.loads(state_path.read_text())
    state_path.write_text(json.dumps({"rows": state["rows"], "dim": state["dim"], "shards": state["shards"]}))
    with caplog.at_level(logging.INFO, logger="shoefind"):
        big = catalog_from_table(table, cache, threshold=THRESHOLD)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("outdated vector store" in r.getMessage() for r in caplog.records)
    own_vectors_and_exact_answers(big, catalog_from_table(table, cache, threshold=10 ** 9), vectors)
    assert Path(store_file(cache, "ivf-sq8.json")).is_file()
