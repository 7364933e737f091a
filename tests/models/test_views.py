"""Augmented views: encoded once into their own cache, reproducible, and used by the learners
without reading pixels again."""
from __future__ import annotations

import numpy as np

from shoefind.learn.methods import compare_methods
from shoefind.features.cache import EmbeddingCache
from shoefind.features.views import embed_views, view_cache, view_matrix

from tests.helpers.colour_task import colours  # noqa: F401  (module fixture: the colour task)


def test_views_are_cached_apart_reproducible_and_differ_from_the_plain_photo(colours, tmp_path):  # noqa: F811
    encoder, table, cache = colours
    items = [(str(table.root / p), s) for p, s in zip(table.images["path"][:3], table.images["sha256"][:3])]
    store = view_cache(tmp_path, encoder)
    assert store.dir != EmbeddingCache(tmp_path, encoder.cache_key).dir          # never mixed with plain ones
    assert embed_views(encoder, store, items, n_views=3) == 9
    assert embed_views(encoder, store, items, n_views=3) == 0                    # cached: no pixels read again
    reopened = view_cache(tmp_path, encoder)                                     # a later run reads them back
    assert embed_views(encoder, reopened, items, n_views=3) == 0 and not reopened.damaged
    v = view_matrix(store, [s for _, s in items], 3)
    assert v.shape == (3, 3, encoder.embed_dim)
    plain = cache.matrix([s for _, s in items])
    assert not np.allclose(v[:, 0], plain, atol=1e-4)                            # a crop, not the photo
    other = view_cache(tmp_path / "again", encoder)
    # the same batches as above: onnx-int8 (auto on some CPUs) quantises a batch as a whole
    embed_views(encoder, other, items, n_views=3)
    assert np.allclose(view_matrix(other, [items[0][1]], 3), v[:1], atol=1e-5)   # same seed, same views


def test_comparison_with_views_averages_tip_keys_and_trains_coop_on_them(colours):  # noqa: F811
    encoder, table, cache = colours
    comparison = compare_methods(encoder, table, cache, ["fewshot", "coop"], [2], views=2,
                                 coop_options={"progress": False, "max_epochs": 10})
    tip = comparison.fitted["tip-adapter"]["name"]
    assert tip.selection["views"] == 2
    x, _labels = comparison.support["name"]
    assert not np.allclose(tip.keys, x)                     # keys: photo and views averaged
    assert comparison.fitted["coop"]["name"].training["views"] == 2
