"""Big catalogs: the float16 memory-mapped vector store, its approximate index (recall against
exact search, grown by adding), and identify / search / change going through it."""
from __future__ import annotations

import faiss  # noqa: F401  requirements.txt installs it: missing, the set-up is broken (no skip)
import numpy as np
import pytest

from shoefind.features.cache import EmbeddingCache
from shoefind.features.catalog import open_catalog
from shoefind.features.vector_index import AnnIndex, PhotoSearch, VectorStore, recall_at_k
from shoefind.encoders.load import load_model
from shoefind.retrieve.answer import answer_photos
from shoefind.retrieve.text_search import search_catalog

from tests.helpers import make_labeled_dataset

DIM = 128


def unit(v):
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


def shoe_photos(n, seed=0, shoes=None):
    """Embeddings like a catalog's: families of shoes, several photos per shoe."""
    rng = np.random.default_rng(seed)
    shoes = shoes or max(1, n // 5)
    fam = unit(np.random.default_rng(99).standard_normal((max(1, shoes // 20), DIM)))
    centre = unit(fam[np.arange(shoes) % len(fam)] + 0.8 * unit(np.random.default_rng(98).standard_normal((shoes, DIM))))
    return unit(centre[rng.integers(0, shoes, n)] + 0.5 * unit(rng.standard_normal((n, DIM))))


def shas(start, n):
    return [f"{i:064x}" for i in range(start, start + n)]


def test_store_is_float16_memory_mapped_and_synced_from_cache_shards(tmp_path):
    cache = EmbeddingCache(tmp_path, "model|pre")
    vectors = shoe_photos(300)
    cache.add(shas(0, 200), vectors[:200])
    cache.add(shas(200, 100), vectors[200:])
    store = VectorStore.for_cache(cache.dir)
    assert store.rows == 300 and isinstance(store.vectors, np.memmap) and store.vectors.dtype == np.float16
    np.testing.assert_allclose(store.vectors[250], vectors[250], atol=1e-3)
    assert store.rows_of([shas(250, 1)[0], "f" * 64, shas(3, 1)[0]]).tolist() == [250, -1, 3]
    assert [store.row_of(s) for s in (shas(250, 1)[0], "f" * 64, shas(0, 1)[0], shas(299, 1)[0])] == [250, -1, 0, 299]
    # written once: a second look adds nothing, a re-encoded (already stored) photo is skipped
    assert VectorStore.for_cache(cache.dir).rows == 300
    cache.add(shas(300, 10), shoe_photos(10, seed=1))
    assert VectorStore.for_cache(cache.dir).sync(cache.dir) == 0
    assert VectorStore.for_cache(cache.dir).rows == 310


def test_ann_recall_at_10_against_exact_search_and_incremental_add(tmp_path):
    cache = EmbeddingCache(tmp_path, "model|pre")
    vectors = shoe_photos(6000)
    for start in range(0, 5000, 1000):
        cache.add(shas(start, 1000), vectors[start:start + 1000])
    store = VectorStore.for_cache(cache.dir)
    ann = AnnIndex(store).ensure()
    search = PhotoSearch(store.vectors, np.arange(store.rows), ann, exact_subset=0)
    queries = shoe_photos(50, seed=7, shoes=1200)
    assert recall_at_k(search, queries, 10) >= 0.95
    centroids = ann.index.quantizer.reconstruct_n(0, ann.index.nlist)

    # the cache grows: the new photos are added to the saved index, not a rebuild
    cache.add(shas(5000, 1000), vectors[5000:])
    store = VectorStore.for_cache(cache.dir)
    grown = AnnIndex(store).ensure()
    assert grown.index.ntotal == 6000
    np.testing.assert_array_equal(grown.index.quantizer.reconstruct_n(0, grown.index.nlist), centroids)
    search = PhotoSearch(store.vectors, np.arange(store.rows), grown, exact_subset=0)
    photos, sims = search.top(vectors[5500], 3)
    assert photos[0] == 5500 and sims[0] > 0.999
    assert recall_at_k(search, queries, 10) >= 0.95


def test_identify_search_and_change_use_the_index_above_the_threshold(tiny_model, tmp_path, monkeypatch):
    ds = make_labeled_dataset(tmp_path / "ds", n_per_shoe=6)
    encoder = load_model(tiny_model, runtime="torch")
    exact = open_catalog(encoder, ds, tmp_path / "data")
    monkeypatch.setenv("SHOEFIND_ANN_THRESHOLD", "10")
    big = open_catalog(encoder, ds, tmp_path / "data2")
    assert big.search.approximate and not exact.search.approximate
    assert isinstance(big.embeddings, np.memmap) and big.embeddings.dtype == np.float16
    photo = exact.photos["path"].iat[0]
    for catalog in (exact, big):
        answer = answer_photos(encoder, catalog, [photo], change="not red")["answers"][0]
        catalog.answer = answer
        catalog.found = search_catalog(encoder, catalog, "red high-top sneaker")["results"]
    assert [s["name"] for s in big.answer["top_shoes"]] == [s["name"] for s in exact.answer["top_shoes"]]
    # the tiny random model maps photos of one shoe to near-identical vectors (float16 ties): compare as sets
    assert {p["path"] for p in big.answer["nearest_photos"]} == {p["path"] for p in exact.answer["nearest_photos"]}
    assert big.answer["nearest_photos"][0]["similarity"] >= 0.999
    changed = [{s["name"] for s in c.answer["change"]["results"]} for c in (big, exact)]
    assert changed[0] == changed[1] and changed[0]
    assert {s["name"] for s in big.found} == {s["name"] for s in exact.found} and big.found


def test_a_filter_is_applied_inside_the_index_and_shoes_rank_by_their_best_photo(tmp_path):
    cache = EmbeddingCache(tmp_path, "model|pre")
    cache.add(shas(0, 5000), shoe_photos(5000))
    store = VectorStore.for_cache(cache.dir)
    search = PhotoSearch(store.vectors, np.arange(store.rows), AnnIndex(store).ensure(), exact_subset=0)
    exact = PhotoSearch(np.asarray(store.vectors, np.float32))
    group = np.arange(store.rows) % 100
    allowed = group % 10 == 0            # 10% of the photos, spread over the whole index
    hits = []
    for q in shoe_photos(30, seed=7, shoes=1200):
        want = exact._exact_top(q, 10, np.flatnonzero(allowed))[0]
        got, sims = search.top(q, 10, allowed)
        assert allowed[got].all() and len(got) == 10 and (np.diff(sims) <= 0).all()
        hits.append(len(set(want) & set(got)) / 10)
        # each group's best photo, best first: the same 5 groups as exact search, with exact scores
        photos, best = search.best_per_group(q, group, 500, allowed)
        scores = np.where(allowed, exact.scores(q), -np.inf)
        exact_best = np.full(100, -np.inf)
        np.maximum.at(exact_best, group, scores)
        assert group[photos[:5]].tolist() == np.argsort(-exact_best)[:5].tolist()
        np.testing.assert_allclose(best[:5], np.sort(exact_best)[::-1][:5], atol=2e-3)
    assert np.mean(hits) >= 0.95
