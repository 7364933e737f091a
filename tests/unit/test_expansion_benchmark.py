"""benchmarks/expansion.py refuses what it cannot measure with one clear line and exit code 2, before it
starts anything: an empty pool, a pool with one shoe, a review budget of 0, too few photos per shoe."""
from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers import REPO, make_photo


def run(*args, work=None):
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "expansion.py"), *map(str, args)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    return done.returncode, done.stdout, done.stderr


def _pool(root, shoes: int, photos: int):
    for i in range(shoes):
        for j in range(photos):
            make_photo(root / f"Nike_High_Red_Plain Sole_Test {i}" / f"p{j}.jpg", color=(30 * i, 80, 90 + j), seed=j)
    return root


@pytest.mark.parametrize("case, message", [
    ("empty", "has no photos in shoe folders"),
    ("one shoe", "photos of 1 shoe: identification needs at least two shoes"),
    ("budget 0", "--review-budget must be at least 1, not 0"),
    ("few photos", "too few photos outside the held-out split for --seed-shots 4"),
    ("missing", "is not a folder"),
])
def test_bad_input_is_one_clear_line_and_nothing_starts(tmp_path, case, message):
    pool = tmp_path / "pool"
    pool.mkdir()
    args = ["--seed-shots", 4, "--rounds", 1, "--review-budget", 20, "--work", tmp_path / "work"]
    if case == "one shoe":
        _pool(pool, 1, 12)
    elif case == "budget 0":
        _pool(pool, 2, 12)
        args[5] = 0
    elif case == "few photos":
        _pool(pool, 2, 4)
    elif case == "missing":
        pool = tmp_path / "nowhere"
    code, out, err = run("--pool", pool, *args)
    assert code == 2, err
    assert err.strip().count("\n") == 0 and err.startswith("error: ") and message in err, err
    assert out == "" and not (tmp_path / "work").exists()
