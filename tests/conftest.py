"""Shared fixtures: a tiny random CLIP loaded through clip.load, the shared real photos."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest

warnings.filterwarnings("ignore", message="pkg_resources is deprecated")

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (real photos); tests using it skip on a clone without it."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is absent")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    """Path of a tiny randomly initialised CLIP checkpoint (real clip.model.CLIP)."""
    from shoefind.model import make_tiny
    return str(make_tiny(tmp_path_factory.mktemp("model") / "tiny.pt", seed=0))


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    monkeypatch.setenv("SHOEFIND_DATA", str(d))
    return d


def make_photo(path: Path, color=(200, 30, 30), size=(320, 240), fmt=None, seed: int = 0) -> Path:
    """A generated 'photo': a coloured shoe-like blob on white, with a little noise."""
    import random

    from PIL import Image, ImageDraw
    rnd = random.Random(seed)
    img = Image.new("RGB", size, (250, 250, 250))
    d = ImageDraw.Draw(img)
    w, h = size
    x0, y0 = rnd.randint(5, w // 6), rnd.randint(h // 3, h // 2)
    d.ellipse([x0, y0, w - rnd.randint(5, w // 6), h - rnd.randint(5, h // 6)], fill=color)
    d.rectangle([x0, h - h // 5, w - 10, h - h // 8], fill=(30, 30, 30))
    for _ in range(200):
        img.putpixel((rnd.randrange(w), rnd.randrange(h)), tuple(rnd.randrange(256) for _ in range(3)))
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format=fmt)
    return path


@pytest.fixture(scope="session")
def prefect_harness():
    """One temporary Prefect API (SQLite) for every flow test of the session."""
    from prefect.testing.utilities import prefect_test_harness
    with prefect_test_harness(server_startup_timeout=120):
        yield


def make_labeled_dataset(root: Path, n_per_shoe: int = 2) -> Path:
    """A small dataset in the Brand_Top_Color_Sole_Name convention with generated photos."""
    shoes = [("Nike", "High", "Red", "Plain Sole", "Air Test Red", (200, 30, 30)),
             ("Nike", "Low", "Blue", "Plain Sole", "Dunk Test Blue", (30, 40, 200)),
             ("Vans", "Low", "Black", "Rubber Sole", "Old Test Black", (20, 20, 20)),
             ("Converse", "High", "White", "Plain Sole", "Chuck Test White", (235, 235, 235))]
    for i, (brand, top, color, sole, name, rgb) in enumerate(shoes):
        folder = root / f"{brand}_{top}_{color}_{sole}_{name}"
        for j in range(n_per_shoe):
            make_photo(folder / f"photo {j}.jpg", color=rgb, seed=i * 10 + j)
    return root
