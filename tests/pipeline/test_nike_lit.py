"""LiT over efficientnet-lite0 on real photos: ../shared/data/nike-silhouettes (issue 15, point 6).

Seven model/top classes; the split holds out whole colourways (file names), so the scores are on
colourways training never saw. The model is trained once per machine (tests/helpers/trained_models.py).
"""
from __future__ import annotations

import numpy as np


def test_text_prompts_name_unseen_colourways(nike_lit):
    heldout = nike_lit.result["heldout"]
    assert nike_lit.result["split"]["by"] == ["colourway"]
    assert heldout["zero_shot_top1"] >= 0.85, heldout
    assert heldout["zero_shot_top1"] >= heldout["prototype_top1"] + 0.10, heldout


def test_search_jordan_1_mid_on_held_out_photos(nike_lit):
    from shoefind.encoders.load import load_encoder
    from shoefind.features.cache import EmbeddingCache
    from shoefind.retrieve.compose import text_query_vector
    encoder = load_encoder(str(nike_lit.model))
    split = nike_lit.split
    held = split[split["role"] == "heldout"]
    x = EmbeddingCache.for_encoder(nike_lit.data_dir, encoder).matrix(held["sha256"].tolist())
    top = np.argsort(-(x @ text_query_vector(encoder, "jordan 1 mid")))[:10]
    precision = float((held["shoe"].to_numpy()[top] == "j1_mid").mean())
    assert precision >= 0.8, precision


def test_sixteen_shot_linear_probe_on_the_offline_backbone(nike_lit):
    """Issue 15, point 7: few-shot on efficientnet-lite0 alone (no text), 16 photos per class, scored on
    the rest (every photo is its own colourway). The probe's penalty is chosen on the training photos."""
    from shoefind.encoders.load import load_encoder
    from shoefind.learn.methods import compare_methods
    from shoefind.features.cache import EmbeddingCache
    from shoefind.features.table import load_table
    lit = load_encoder(str(nike_lit.model))
    table = load_table(nike_lit.data_dir / "tables" / "nike-silhouettes")
    cache = EmbeddingCache.for_encoder(nike_lit.data_dir, lit)          # the frozen backbone's embeddings
    comparison = compare_methods(lit.backbone, table, cache, ["fewshot"], [16])
    top1 = comparison.metrics.set_index("method")["top1"]
    assert top1["linear-probe"] >= 0.75 and top1["linear-probe"] >= top1["prototype"] + 0.05, top1.to_dict()
