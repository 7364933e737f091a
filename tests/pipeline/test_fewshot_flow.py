"""`shoefind evaluate --method/--shots` and `shoefind learn` through their Prefect flows."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

from typer.testing import CliRunner

from shoefind.cli.main import app
from shoefind.learn.saved import best_method, read_manifest
from shoefind.encoders.load import load_model
from shoefind.features.table import load_table

from tests.helpers import make_labeled_dataset


async def _artifacts(key: str):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    async with get_client() as client:
        return await client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))


def test_evaluate_compares_methods_on_one_split(prefect_harness, tiny_model, tmp_path):
    """Through the Prefect path of the CLI (--prefect, on the harness's API): the run publishes artifacts."""
    dataset = make_labeled_dataset(tmp_path / "ds", n_per_shoe=4)
    data = tmp_path / "data"
    res = CliRunner().invoke(app, ["evaluate", str(dataset), "--model", tiny_model, "--data-dir", str(data),
                                   "--method", "zeroshot,fewshot,coop", "--shots", "2", "--json", "--prefect"])
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout[res.stdout.index("{"):])
    rows = payload["comparison"]
    assert {r["method"] for r in rows} == {"zeroshot", "prototype", "tip-adapter", "tip-adapter-f", "linear-probe",
                                          "coop"}
    assert {r["task"] for r in rows} == {"brand", "color", "hightop", "sole", "name"}
    assert {r["shots"] for r in rows if r["method"] != "zeroshot"} == {1, 2}
    assert len({r["images"] for r in rows if r["task"] == "name"}) == 1          # one test set for all
    run_dir = sorted((data / "runs").iterdir())[-1]
    for name in ("report.md", "comparison.csv", "split.csv", "split.json", "accuracy_vs_k.png"):
        assert (run_dir / name).is_file(), name
    assert "| coop | 2 |" in (run_dir / "report.md").read_text()
    table_artifact = asyncio.run(_artifacts("method-comparison-metrics"))[0]
    assert "tip-adapter" in str(table_artifact.data)
    reports = asyncio.run(_artifacts("method-comparison-report"))
    # the markdown artifact carries the warning and shows the plots (embedded: the UI cannot read run folders)
    assert any("RANDOM weights" in r.data and "](data:image/png;base64," in r.data and str(run_dir) in r.data
               for r in reports)
    assert (run_dir / "report.html").is_file()


def test_learn_saves_what_inference_loads(tiny_model, tmp_path):
    """In this process (no Prefect API configured): the CLI calls the learn stage directly."""
    dataset = make_labeled_dataset(tmp_path / "ds", n_per_shoe=3)
    data = tmp_path / "data"
    res = CliRunner().invoke(app, ["learn", str(dataset), "--model", tiny_model, "--data-dir", str(data),
                                   "--shots", "2", "--max-epochs", "10"])
    assert res.exit_code == 0, res.output
    assert "Method comparison" in res.stdout
    encoder = load_model(tiny_model)
    table = load_table(data / "tables" / "ds")
    learned = best_method(data, encoder, table)
    manifest = read_manifest(learned.folder)
    assert manifest["model_id"] == encoder.model_id
    assert set(manifest["files"]) == {"prototype", "tip-adapter", "tip-adapter-f", "linear-probe", "coop"}
    assert learned.method == manifest["best"]["name"]
    assert (Path(learned.folder) / "coop-name.pt").is_file()
    ident = learned.identify(encoder.encode_images([str(table.root / table.images["path"][0])]))
    assert ident.name_scores.shape == (1, len(table.shoes))
    assert set(ident.attribute_probs) == {"brand", "color", "hightop", "sole"}
