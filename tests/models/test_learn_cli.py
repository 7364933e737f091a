"""`shoefind learn` options for the paper's CoOp, CoCoOp, augmented views and fine-tuning, end to end
through the CLI (in-process, tiny CLIP, the colour task)."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from shoefind.cli.main import app

from tests.helpers.colour_task import colour_dataset


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return colour_dataset(tmp_path_factory.mktemp("cli") / "photos", per_class=5)


def test_learn_cocoop_with_the_paper_schedule_and_views(photos, tiny_model, tmp_path):
    res = CliRunner().invoke(app, ["learn", str(photos), "--model", tiny_model, "--data-dir", str(tmp_path),
                                   "--method", "coop,cocoop", "--shots", "4", "--schedule", "paper",
                                   "--max-epochs", "2", "--n-ctx", "16", "--ctx-init", "random", "--views", "2",
                                   "--json"])
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout)
    assert {"coop", "cocoop"} <= {r["method"] for r in payload["comparison"]}
    training = payload["details"]["coop"]["name"]
    assert training["schedule"]["name"] == "paper" and training["views"] == 2 and training["ctx_init"] == "random"
    manifest = json.loads(next(tmp_path.glob("learned/*/*/manifest.json")).read_text())
    assert {"coop", "cocoop"} <= set(manifest["files"])


def test_learn_finetune_prints_the_checkpoint_and_heldout_top1(photos, tiny_model, tmp_path):
    out = tmp_path / "ft.pt"
    res = CliRunner().invoke(app, ["learn", str(photos), "--model", tiny_model, "--data-dir", str(tmp_path),
                                   "--method", "finetune", "--blocks", "1", "--alpha", "0.5", "--epochs", "1",
                                   "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    answer = json.loads(res.stdout)
    assert answer["checkpoint"] == str(out) and out.is_file()
    assert 0.0 <= answer["heldout"]["zero_shot_top1"] <= 1.0


def test_bad_learning_options_are_one_line(photos, tiny_model, tmp_path):
    res = CliRunner().invoke(app, ["learn", str(photos), "--model", tiny_model, "--data-dir", str(tmp_path),
                                   "--method", "coop", "--schedule", "slow"])
    assert res.exit_code == 2 and "schedule" in res.output
    res = CliRunner().invoke(app, ["learn", str(photos), "--model", "efficientnet-lite0", "--data-dir",
                                   str(tmp_path), "--method", "finetune"])
    assert res.exit_code == 2 and "fine-tunes a CLIP model" in res.output
