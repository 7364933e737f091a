"""`learn` refuses, before any photo is embedded, to fit classifiers when most shoes have a single photo
(the split keeps it for testing, so the classifiers would name one of the few other shoes for every
photo: issue 24's Chicago photo answered 'Jordan1 Mid Light Smoke Gray (100%)'); --force learns anyway."""
import pytest

from tests.helpers import make_photo
from tests.helpers.cli import shoefind_here

pytestmark = pytest.mark.unit


def _catalog(root, photos_per_shoe: dict[str, int]):
    for i, (shoe, n) in enumerate(photos_per_shoe.items()):
        for k in range(n):
            make_photo(root / shoe / f"{k}.png", color=(40 * i % 255, 90, 200 - 30 * i % 200), seed=10 * i + k)
    return root


def test_most_shoes_with_one_photo_is_refused_before_embedding(tmp_path, capfd):
    shoes = {f"Nike_High_Red_Plain Sole_Model {i}": 1 for i in range(5)} | {"Nike_Low_Red_Plain Sole_Other": 3}
    dataset = _catalog(tmp_path / "photos", shoes)
    code, out, err = shoefind_here(capfd, "learn", dataset, "--model", "efficientnet-lite0", "--data-dir", tmp_path / "d")
    assert code == 2
    assert err.strip().splitlines()[-1] == (
        "error: 5 of 6 shoes have a single photo, which the split keeps for testing: the classifiers would learn "
        "from the other 1 shoe only and name it for every photo. Add photos (at least 2 per shoe), or pass "
        "--force to learn anyway")
    assert not list((tmp_path / "d").glob("embeddings/*/*.npz")) and not (tmp_path / "d" / "learned").exists()


def test_no_shoe_with_two_photos_has_nothing_to_learn(tmp_path, capfd):
    dataset = _catalog(tmp_path / "photos", {f"Nike_High_Red_Plain Sole_Model {i}": 1 for i in range(3)})
    code, _, err = shoefind_here(capfd, "learn", dataset, "--model", "efficientnet-lite0", "--data-dir", tmp_path / "d",
                                 "--force")
    assert code == 2 and "no shoe has more than one" in err     # --force cannot make photos to learn from
