"""Encoders give the outputs recorded in tests/golden/encoders.json (open_clip's regression-test
style): a change of any family's output beyond the tolerance fails here unless its version constant
was bumped (which also retrains the trained test models, keyed by those constants)."""
import numpy as np
import pytest

from tests.helpers import golden


@pytest.fixture(scope="module")
def computed(tmp_path_factory):
    return golden.compute(tmp_path_factory.mktemp("golden"))


def test_every_encoder_gives_its_recorded_outputs(computed):
    assert set(computed) == set(golden.ENTRIES)
    assert golden.differences(computed, golden.stored()) == []


def test_a_moved_output_is_caught_and_not_recorded_over(computed):
    moved = dict(computed)
    moved["efficientnet-lite0/images"] = computed["efficientnet-lite0/images"] + np.float32(1e-3)
    problems = golden.differences(moved, golden.stored())
    assert len(problems) == 1 and problems[0].startswith("efficientnet-lite0/images: output moved by 1.00e-03")
    assert "bump that version" in problems[0]


def test_a_bumped_version_asks_for_new_values(computed):
    stale = {name: dict(entry) for name, entry in golden.stored().items()}
    stale["lit-tower/texts"]["version"] = 0
    problems = golden.differences(computed, stale)
    assert problems == [f"lit-tower/texts: golden values are for {golden.ENTRIES['lit-tower/texts']} = 0, the code "
                        f"has {golden.version_of(golden.ENTRIES['lit-tower/texts'])}: record them again "
                        "(python -m tests.helpers.golden --write)"]
