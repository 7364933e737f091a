"""Whole evaluations over catalogs with a model (seconds each): the real catalog where most shoes
have one photo, and `evaluate --prompts seed` showing both 5-step rows."""
from __future__ import annotations

import json

from shoefind.encoders.load import load_model
from shoefind.learn.methods import compare_methods
from shoefind.features.table import build_table
from tests.helpers import make_labeled_dataset
from tests.helpers.colour_task import embedded
from tests.helpers.cli import shoefind


def test_real_catalog_where_most_shoes_have_one_photo(shared_data, tiny_model, tmp_path):
    """findyourshoes-labeled: 27 of 28 shoes have one photo, so they are test only and every
    learned method must fall back to prompts for them; all five tasks are still scored."""
    table = build_table(shared_data / "findyourshoes-labeled")
    encoder = load_model(tiny_model)
    cache = embedded(encoder, table, tmp_path / "embeddings")
    comparison = compare_methods(encoder, table, cache, ["zeroshot", "fewshot", "coop"], [1, 2, 4],
                                 coop_options={"progress": False, "max_epochs": 3})
    m = comparison.metrics
    assert set(m["task"]) == {"brand", "color", "hightop", "sole", "name"}
    assert set(m.loc[m["method"] != "zeroshot", "shots"]) == {1, 2}          # k=4 is more than any shoe allows
    assert m.groupby("task")["images"].nunique().eq(1).all()                 # one test set per task
    assert m["top5"].notna().all()
    assert comparison.support["name"][0].shape[0] == 2                        # the one shoe with 3 photos


def test_evaluate_with_the_seeds_prompts_shows_both_five_step_rows(tiny_model, tmp_path):
    root = make_labeled_dataset(tmp_path / "ds", n_per_shoe=1)
    code, out, err = shoefind("evaluate", root, "--prompts", "seed", "--model", tiny_model, "--json",
                              "--data-dir", tmp_path / "data")
    assert code == 0, err
    tasks = {m["task"]: m for m in json.loads(out)["metrics"]}
    assert {"name (5-step)", "name (5-step, seed's oracle rule)"} <= set(tasks)
    assert tasks["name (5-step, seed's oracle rule)"]["top1"] >= tasks["name (5-step)"]["top1"]
    report = next((tmp_path / "data" / "runs").glob("*evaluate*")) / "report.md"
    assert "prompts: seed" in report.read_text() and "upper bound" in report.read_text()
