"""Few-shot learning on the offline image backbone (efficientnet-lite0): every few-shot method learns
colours from a few photos, and zero-shot is refused (no text side)."""
from __future__ import annotations

import pytest

from shoefind.encoders.base import NoTextSide
from shoefind.encoders.load import load_model
from shoefind.learn.methods import compare_methods
from shoefind.features.table import build_table

from tests.helpers.colour_task import COLOURS, colour_dataset, embedded


@pytest.fixture(scope="module")
def backbone():
    return load_model("efficientnet-lite0")


def test_fewshot_with_the_backbone_learns_colours(backbone, tmp_path):
    table = build_table(colour_dataset(tmp_path / "photos", per_class=5))
    cache = embedded(backbone, table, tmp_path / "embeddings")
    comparison = compare_methods(backbone, table, cache, ["fewshot"], [1, 4])
    m = comparison.metrics.set_index(["method", "shots"])
    assert set(comparison.metrics["method"]) == {"prototype", "tip-adapter", "tip-adapter-f", "linear-probe"}
    assert m.loc[("prototype", 4), "top1"] >= 0.75 and m.loc[("tip-adapter", 4), "top1"] >= 0.75
    assert m.loc[("linear-probe", 4), "top1"] >= 0.75
    # and far above chance at one shot too (measured values, not constants)
    chance = 1 / len(COLOURS)
    assert m.loc[("prototype", 1), "top1"] >= chance + 0.3 and m.loc[("tip-adapter", 1), "top1"] >= chance + 0.3
    with pytest.raises(NoTextSide, match="no text side"):
        compare_methods(backbone, table, cache, ["zeroshot"], [1])
