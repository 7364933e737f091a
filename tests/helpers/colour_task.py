"""A task whose answer is known: generated photos whose class is their colour."""
from __future__ import annotations

import pytest

from shoefind.features.cache import EmbeddingCache
from shoefind.features.embed import embed_images
from shoefind.encoders.load import load_model
from shoefind.features.table import build_table

from tests.helpers import make_photo

COLOURS = {"red": (200, 30, 30), "blue": (30, 40, 200), "green": (30, 160, 40), "yellow": (230, 210, 30)}


def colour_dataset(root, per_class: int = 8):
    """One folder per colour ('classes' layout): the class of a photo is its colour."""
    for i, (name, rgb) in enumerate(COLOURS.items()):
        for j in range(per_class):
            make_photo(root / name / f"{j}.png", color=rgb, seed=100 * i + j, size=(96, 72))
    return root


def embedded(encoder, table, folder):
    cache = EmbeddingCache(folder, encoder.cache_key)
    embed_images(encoder, cache, [(str(table.root / p), s) for p, s in zip(table.images["path"], table.images["sha256"])])
    return cache


@pytest.fixture(scope="module")
def colours(tmp_path_factory, tiny_model):
    """(encoder, table, cache) for the colour task, embedded with the tiny CLIP."""
    base = tmp_path_factory.mktemp("colours")
    table = build_table(colour_dataset(base / "photos"))
    encoder = load_model(tiny_model)
    return encoder, table, embedded(encoder, table, base / "embeddings")
