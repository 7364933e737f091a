"""`shoefind prompts` lists every prompt; `--prompts/--vocabulary/--filter-attributes/--fallback` are read
while parsing (`evaluate --prompts seed`: tests/models/test_evaluate_runs.py)."""
from __future__ import annotations

import json

import pytest

from tests.helpers import make_labeled_dataset
from tests.helpers.cli import shoefind_here
from tests.unit.test_prompt_sets import problems


@pytest.mark.parametrize("args, word", [
    (["prompts", "--prompts", "nope"], "seed, seed@96.3, shoefind"),
    (["evaluate", "--prompts", "nope"], "seed, seed@96.3, shoefind"),
    (["infer", "x.jpg", "--vocabulary", "some"], "catalog"),
    (["evaluate", "--filter-attributes", "brand,size"], "size"),
    (["infer", "x.jpg", "--fallback", "drop"], "relax"),
])
def test_bad_zero_shot_options_are_one_line_and_exit_2(args, word, tmp_path, capfd):
    code, out, err = shoefind_here(capfd, *args, "--data-dir", tmp_path)
    assert code == 2 and word in err and "Traceback" not in err


def test_prompts_json_lists_every_task_with_clean_prompts(tmp_path, capfd):
    root = make_labeled_dataset(tmp_path / "ds", n_per_shoe=1)
    code, out, err = shoefind_here(capfd, "prompts", root, "--prompts", "seed", "--filter-attributes", "brand,color,hightop,sole",
                              "--json", "--data-dir", tmp_path / "data")
    assert code == 0, err
    listing = json.loads(out)
    assert listing["prompt_set"] == "seed" and listing["options"]["filter_attributes"][-1] == "sole"
    assert listing["tasks"]["hightop"]["prompts"]["High"][0] == "a photo of the Hightop shoes."
    texts = [t for task in ("brand", "color", "hightop", "sole", "filtered", "name")
             for ts in listing["tasks"][task]["prompts"].values() for t in ts]
    assert len(texts) > 30 and not [t for t in texts if problems(t)]
