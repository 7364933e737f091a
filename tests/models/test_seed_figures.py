"""Reports compare like with like: an evaluate run with one of the seed's prompt sets prints the seed's own
published figure beside the row scored by the same rule with the same templates, and nowhere else (the
deployable 5-step row has none: the seed published only its oracle rule's figure)."""
from __future__ import annotations

import json

from tests.helpers import make_labeled_dataset
from tests.helpers.cli import shoefind

ORACLE, DEPLOYABLE = "name (5-step, seed's oracle rule)", "name (5-step)"


def evaluate(root, tiny_model, data_dir, prompts):
    code, out, err = shoefind("evaluate", root, "--prompts", prompts, "--model", tiny_model, "--json",
                              "--data-dir", data_dir)
    assert code == 0, err
    return {m["task"]: m for m in json.loads(out)["metrics"]}


def test_the_seeds_figure_stands_beside_the_matching_row_only(tiny_model, tmp_path):
    root = make_labeled_dataset(tmp_path / "ds", n_per_shoe=1)
    scored = evaluate(root, tiny_model, tmp_path / "data", "seed@96.3")
    assert scored[ORACLE]["seed_top1"] == 0.9638 and scored["name"]["seed_top1"] == 0.8832   # the small set
    assert scored[DEPLOYABLE]["seed_top1"] is None and scored["sole"]["seed_top1"] is None
    run = sorted((tmp_path / "data" / "runs").glob("*evaluate*"))[-1]
    report = (run / "report.md").read_text()
    oracle_line = next(line for line in report.splitlines() if line.startswith(f"| {ORACLE} |"))
    deployable_line = next(line for line in report.splitlines() if line.startswith(f"| {DEPLOYABLE} |"))
    assert oracle_line.endswith("| 96.4% |") and deployable_line.endswith("| - |")
    assert "small set: 28 shoes, 1216 photos" in report and "<th>seed</th>" in (run / "report.html").read_text()

    latest = evaluate(root, tiny_model, tmp_path / "data2", "seed")
    assert latest[ORACLE]["seed_top1"] == 0.8153                                          # the large set
    own = evaluate(root, tiny_model, tmp_path / "data3", "shoefind")
    assert all("seed_top1" not in m for m in own.values())
