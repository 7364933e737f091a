"""The few-shot figures on real photos stay where issue 21 measured them (efficientnet-lite0 on
../shared/data/nike-silhouettes, the `evaluate --method fewshot` split of seed 0): the linear
probe at 0.559 top-1 with 4 photos per shoe and 0.811 with 16, since it runs on numpy instead of
torch. The embeddings are made once per machine (tests/helpers/trained_models.py)."""
from __future__ import annotations

import pytest

from tests.helpers.trained_models import trained_once

MODEL = "efficientnet-lite0"
# One test photo is 1/599 = 0.17 points; the torch solver itself moved 0.3 points between 1 and 2
# threads (0.808 against 0.811 at 16 shots: rounding changes which penalty wins on the folds).
NOISE = 0.01


@pytest.fixture(scope="module")
def nike_lite0(shared_data):
    from shoefind.encoders.load import load_encoder
    from shoefind.features.cache import EmbeddingCache
    from shoefind.stages.features import embed_dataset
    from shoefind.features.table import load_table
    dataset = shared_data / "nike-silhouettes"
    folder, _ = trained_once("nike-lite0-embeddings", {"dataset": str(dataset), "model": MODEL},
                             lambda f: embed_dataset(dataset, f / "data", MODEL))
    encoder = load_encoder(MODEL)
    return encoder, load_table(folder / "data" / "tables" / dataset.name), EmbeddingCache.for_encoder(folder / "data", encoder)


def test_few_shot_figures_on_nike_silhouettes(nike_lite0):
    import numpy as np

    from shoefind.learn.methods import compare_methods
    from shoefind.learn.fewshot import PrototypeClassifier
    encoder, table, cache = nike_lite0
    comparison = compare_methods(encoder, table, cache, ["linear-probe"], [4, 16], seed=0)   # `evaluate --method`
    metrics = comparison.metrics
    top1 = {k: t for k, t in zip(metrics["shots"], metrics["top1"])}
    assert list(metrics["images"]) == [599, 599]
    assert top1[4] == pytest.approx(0.559, abs=NOISE), top1
    assert top1[16] == pytest.approx(0.811, abs=NOISE), top1
    # the class means involve no optimiser: exactly as before (313 and 400 of the 599 test photos)
    classes = table.shoes["shoe"].tolist()
    test = comparison.split.test()
    test_x, test_y = cache.matrix(test["sha256"].tolist()), np.array([classes.index(s) for s in test["shoe"]])
    for k, right in ((4, 313), (16, 400)):
        train = comparison.split.train(k)
        proto = PrototypeClassifier.fit(cache.matrix(train["sha256"].tolist()),
                                        np.array([classes.index(s) for s in train["shoe"]]), classes)
        assert int((proto.logits(test_x).argmax(1) == test_y).sum()) == right
