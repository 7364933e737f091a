"""`shoefind learn --method lit` and `shoefind demo` through their Prefect flows (--prefect on the harness's API)."""
from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from shoefind.cli.main import app
from tests.helpers import make_labeled_dataset


async def _artifacts(key: str):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    async with get_client() as client:
        return await client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))


def test_learn_lit_runs_as_a_flow(prefect_harness, tiny_model, tmp_path):
    dataset = make_labeled_dataset(tmp_path / "ds", n_per_shoe=4)
    out = tmp_path / "tiny-lit.pt"
    res = CliRunner().invoke(app, ["learn", str(dataset), "--method", "lit", "--model", tiny_model, "--data-dir",
                                   str(tmp_path / "data"), "--steps", "3", "--out", str(out), "--json", "--prefect"])
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout[res.stdout.index("{"):])
    assert payload["checkpoint"] == str(out) and out.is_file() and "zero_shot_top1" in payload["heldout"]
    artifacts = asyncio.run(_artifacts("lit-manifest"))
    assert artifacts and "Held-out scores" in artifacts[0].data


def test_demo_runs_as_a_flow(prefect_harness, demo_lit, tmp_path):
    """3 photos per shoe, 3 steps; the photos' embeddings come from a copy of the demo model's cache."""
    data = tmp_path / "data"
    shutil.copytree(demo_lit.data_dir / "embeddings", data / "embeddings")
    res = CliRunner().invoke(app, ["demo", str(tmp_path / "demo"), "--data-dir", str(data), "--photos", "3",
                                   "--steps", "3", "--json", "--prefect"])
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout[res.stdout.index("{"):])
    assert Path(payload["model"]).is_file() and Path(payload["catalog"]).is_dir()
    assert set(payload["zero_shot"]) >= {"brand", "color", "hightop", "name_5step"}
