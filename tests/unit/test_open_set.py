"""Open-set answers: the leave-one-out threshold, what an answer says below it, and where it is kept."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shoefind.features.catalog import Catalog
from shoefind.retrieve import open_set
from shoefind.retrieve.open_set import (NOT_IN_CATALOG, OpenSetThreshold, calibrate, held_out_similarities, judge,
                                        threshold_for)

DIM = 64


def unit(v):
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


def catalog_of(vectors, shas=None, shoes_per=5, cache_dir=None) -> Catalog:
    n = len(vectors)
    shoes = pd.DataFrame({"shoe": [f"Shoe {i}" for i in range(max(1, n // shoes_per))]})
    shoes["name"] = shoes["shoe"]
    photos = pd.DataFrame({"path": [f"/c/{i}.png" for i in range(n)],
                           "sha256": shas or [f"{i:064x}" for i in range(n)],
                           "shoe_index": np.arange(n) // shoes_per % len(shoes)})
    cat = Catalog(Path("/c"), shoes, photos, unit(vectors), model_id="m")
    cat.cache_dir = cache_dir
    return cat


def clustered(n, seed=0):
    rng = np.random.default_rng(seed)
    centres = unit(rng.standard_normal((n // 5, DIM)))
    return unit(centres[np.arange(n) // 5] + 0.4 * unit(rng.standard_normal((n, DIM))))


def test_the_threshold_is_the_5th_percentile_of_each_photo_against_the_others():
    vectors = clustered(200)
    found = calibrate(catalog_of(vectors))
    sims = unit(vectors) @ unit(vectors).T
    np.fill_diagonal(sims, -np.inf)
    # the 10th lowest of 200: floor(0.05 * 201) = 10, at most 5% of photos like these below it
    assert found.threshold == pytest.approx(np.sort(sims.max(axis=1))[9], abs=1e-4)
    assert found.photos == 200 and "held out" in found.describe()
    assert open_set.conformal_quantile(np.arange(18.0)) is None and open_set.conformal_quantile(np.arange(19.0)) == 0


def test_a_byte_identical_copy_is_held_out_with_the_photo():
    vectors = clustered(40)
    vectors[1] = vectors[0]                      # the same file twice in the catalog
    shas = [f"{i:064x}" for i in range(40)]
    shas[1] = shas[0]
    sims = held_out_similarities(catalog_of(vectors, shas), np.array([0, 2]))
    assert sims[0] < 0.999                       # not its own copy
    other = catalog_of(vectors)                  # different files that look the same do count
    assert held_out_similarities(other, np.array([0]))[0] == pytest.approx(1.0, abs=1e-5)


def test_a_big_catalog_is_calibrated_on_a_fixed_sample(monkeypatch):
    monkeypatch.setattr(open_set, "SAMPLE", 50)
    cat = catalog_of(clustered(300))
    first = open_set.calibrate(cat, sample=50)
    assert first.photos == 50 and first == open_set.calibrate(cat, sample=50)


def test_too_few_photos_give_no_threshold_and_no_flag():
    found = calibrate(catalog_of(clustered(10)))
    assert found.threshold is None and "fewer than" in found.describe()
    assert judge(-1.0, found, [{"shoe": "A"}])["not_in_catalog"] is False


def test_below_the_threshold_the_answer_says_so_with_the_nearest_shoes():
    found = OpenSetThreshold(0.8, 0.05, 100)
    shoes = [{"shoe": s} for s in "ABCD"]
    far = judge(0.42, found, shoes)
    assert far["not_in_catalog"] is True and far["message"] == NOT_IN_CATALOG == "not like any shoe in this catalog"
    assert far["suggestions"] == ["A", "B", "C"] and far["open_set"]["nearest_similarity"] == 0.42
    near = judge(0.8, found, shoes)
    assert near["not_in_catalog"] is False and "message" not in near and near["open_set"]["threshold"] == 0.8


def test_the_threshold_is_kept_beside_the_cache_and_read_back(tmp_path):
    vectors = clustered(60)
    found = threshold_for(catalog_of(vectors, cache_dir=tmp_path))
    (stored,) = tmp_path.glob("open-set-*.json")
    assert json.loads(stored.read_text())["threshold"] == found.threshold
    stored.write_text(json.dumps(json.loads(stored.read_text()) | {"threshold": 0.123}))
    assert threshold_for(catalog_of(vectors, cache_dir=tmp_path)).threshold == 0.123   # a new process reads it
    stored.write_text("{not json")                                                      # damaged: worked out again
    assert threshold_for(catalog_of(vectors, cache_dir=tmp_path)).threshold == found.threshold
    threshold_for(catalog_of(vectors[:50], cache_dir=tmp_path))                        # other photos: their own file
    assert len(list(tmp_path.glob("open-set-*.json"))) == 2


def test_a_big_catalog_holds_photos_out_through_its_index(tmp_path):
    import faiss  # noqa: F401  (requirements.txt installs it: missing is a failure)
    from shoefind.features.cache import EmbeddingCache
    from shoefind.features.vector_index import AnnIndex, PhotoSearch, VectorStore
    vectors = clustered(3000)
    shas = [f"{i:064x}" for i in range(3000)]
    cache = EmbeddingCache(tmp_path, "model|pre")
    cache.add(shas, vectors)
    store = VectorStore.for_cache(cache.dir)
    exact = catalog_of(np.asarray(store.vectors, np.float32), shas)
    big = catalog_of(np.asarray(store.vectors, np.float32), shas)
    big.search = PhotoSearch(store.vectors, np.arange(store.rows), AnnIndex(store).ensure(), exact_subset=0)
    held = np.arange(0, 3000, 30)
    np.testing.assert_allclose(held_out_similarities(big, held), held_out_similarities(exact, held), atol=2e-3)
