"""The flows as plain Python runs against a temporary Prefect API."""
import json
from pathlib import Path

import pytest
from prefect.exceptions import FailedRun
from typer.testing import CliRunner

from shoefind.cli.main import app
from flows.features import embed_flow
from flows.evaluate import evaluate_flow

from tests.helpers import make_labeled_dataset


@pytest.fixture
def dataset(tmp_path):
    return make_labeled_dataset(tmp_path / "ds")


def test_evaluate_flow_runs_table_embed_and_report(prefect_harness, tiny_model, dataset, tmp_path):
    data = tmp_path / "data"
    run_dir = Path(evaluate_flow(str(dataset), str(data), model=tiny_model))
    assert (run_dir / "report.md").is_file() and (run_dir / "confusion_name.png").is_file()
    assert (data / "tables" / "ds" / "images.csv").is_file()
    again = embed_flow(str(dataset), str(data), model=tiny_model)
    assert (again["encoded"], again["cached"]) == (0, 8)


def test_missing_weights_fail_the_run_with_the_message(prefect_harness, dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("SHOEFIND_CLIP_CACHE", str(tmp_path / "no-cache"))
    monkeypatch.setenv("SHOEFIND_OFFLINE", "1")
    with pytest.raises(FailedRun, match="ViT-B-32.pt"):
        evaluate_flow(str(dataset), str(tmp_path / "data"), model="ViT-B/32")


def test_missing_dataset_fails_clearly(prefect_harness, tmp_path, tiny_model):
    with pytest.raises(FailedRun, match="does not exist"):
        evaluate_flow(str(tmp_path / "nothing"), str(tmp_path / "data"), model=tiny_model)


def test_cli_evaluate_json_pipes(prefect_harness, tiny_model, dataset, tmp_path):
    res = CliRunner().invoke(app, ["evaluate", str(dataset), "--model", tiny_model, "--data-dir",
                                   str(tmp_path / "data"), "--json"])
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout[res.stdout.index("{"):])
    assert [m["task"] for m in payload["metrics"]][:4] == ["brand", "color", "hightop", "sole"]


def test_cli_unknown_model_exits_2(prefect_harness, dataset, tmp_path):
    res = CliRunner().invoke(app, ["embed", str(dataset), "--model", str(tmp_path / "nope.pt"),
                                   "--data-dir", str(tmp_path / "data")])
    assert res.exit_code == 2 and "neither a CLIP model name" in res.output


def test_embed_heals_a_damaged_cache_and_counts_what_issues_csv_lists(prefect_harness, tiny_model, dataset,
                                                                       tmp_path):
    import pandas as pd
    data = tmp_path / "data"
    shoe = next(p for p in sorted(dataset.iterdir()) if p.is_dir())
    for i in range(3):
        (shoe / f"broken {i}.jpg").write_bytes(b"<html>404</html>")
    first = embed_flow(str(dataset), str(data), model=tiny_model)
    issues = pd.read_csv(data / "tables" / "ds" / "issues.csv")
    assert len(first["failed"]) == (issues.kind == "unreadable-image").sum() == 3
    assert first["total"] == first["cached"] + first["encoded"] + len(first["failed"]) == 11
    shard = next(Path(first["cache"]).glob("shard-*.npz"))
    shard.write_bytes(shard.read_bytes()[:100])     # a truncated shard: BadZipFile
    healed = embed_flow(str(dataset), str(data), model=tiny_model)
    assert healed["damaged_shards"] == [str(Path(first["cache"]) / "damaged" / shard.name)]
    assert healed["encoded"] == 8 and len(healed["failed"]) == 3
