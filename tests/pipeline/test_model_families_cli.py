"""Every model family through the commands a user runs: table, embed, infer --change, search, evaluate --model A,B."""
import json

import pytest
from typer.testing import CliRunner

from shoefind.cli.main import app
from shoefind.encoders.families.tiny import make_tiny_model

from tests.helpers.infer_dataset import catalog_photo, make_catalog_dataset


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("families")
    return {fam: str(make_tiny_model(root / fam, family=fam)) for fam in ("clip", "open_clip", "siglip", "hf")}


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    return make_catalog_dataset(tmp_path_factory.mktemp("catalog"), photos_per_shoe=1)


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def stdout_json(res):
    return json.loads(res.stdout[res.stdout.index("{"):])


@pytest.mark.parametrize("fam", ["open_clip", "siglip"])
def test_table_embed_infer_change_and_search_with_another_family(models, fam, ds, tmp_path):
    data = tmp_path / "data"
    res = run("table", ds, "--data-dir", data)
    assert res.exit_code == 0, res.output
    res = run("embed", ds, "--model", models[fam], "--data-dir", data, "--json")
    assert res.exit_code == 0, res.output
    assert stdout_json(res)["encoded"] == 9
    res = run("infer", catalog_photo(ds, "Air Test Red"), "--change", "same brand but blue", "--dataset", ds,
              "--model", models[fam], "--data-dir", data, "--json")
    assert res.exit_code == 0, res.output
    answer = stdout_json(res)["answers"][0]
    assert len(answer["top_shoes"]) == 5 and all(r["color"] == "Blue" for r in answer["change"]["results"])
    res = run("search", "a white converse", "--dataset", ds, "--model", models[fam], "--data-dir", data, "--json")
    assert res.exit_code == 0, res.output
    assert stdout_json(res)["results"]


def test_evaluate_compares_models_side_by_side(models, ds, tmp_path):
    specs = ",".join([models["clip"], models["open_clip"], models["siglip"]])
    res = run("evaluate", ds, "--model", specs, "--data-dir", tmp_path / "data")
    assert res.exit_code == 0, res.output
    for metric in ("brand top-1", "name (5-step) top-5", "change R@5", "images/s", "load s"):
        assert metric in res.stdout
    (folder,) = [d for d in (tmp_path / "data" / "runs").iterdir() if "compare-models" in d.name]
    report = (folder / "report.md").read_text()
    header = next(line for line in report.splitlines() if line.startswith("| metric |"))
    assert header.count("|") == 5                       # metric + three models, side by side
    # what each top-1 must beat: 4 of the 9 photos are Nike, the most frequent brand
    assert "- brand: chance 25.0%, majority class 44.4% (Nike)" in report
    assert (folder / "comparison.png").stat().st_size > 1000
    payload = json.loads((folder / "metrics.json").read_text())
    assert len(payload["models"]) == 3 and payload["specs"][1] == models["open_clip"]
    assert {m["metric"] for m in payload["metrics"]} >= {"brand top-1", "change R@1", "images/s"}


def test_the_evaluate_flow_takes_the_same_list_and_publishes_an_artifact(prefect_harness, models, ds, tmp_path):
    from prefect.artifacts import Artifact

    from flows.evaluate import evaluate_flow
    specs = ",".join([models["open_clip"], models["hf"]])
    run_dir = evaluate_flow(str(ds), str(tmp_path / "data"), model=specs)
    assert "compare-models" in run_dir and (tmp_path / "data" / "runs").is_dir()
    artifact = Artifact.get("model-comparison-report")
    assert artifact is not None and "Model comparison" in artifact.data


def test_evaluate_with_a_missing_model_in_the_list_exits_2(models, ds, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    res = run("evaluate", ds, "--model", f"{models['clip']},hf:patrickjohncyh/fashion-clip", "--data-dir", tmp_path / "d")
    assert res.exit_code == 2 and "hf download patrickjohncyh/fashion-clip" in " ".join(res.output.split())


def test_dask_embeds_a_transformers_model_like_this_process(prefect_harness, models, ds, tmp_path):
    import prefect_dask  # noqa: F401  (requirements.txt installs it)
    import numpy as np
    import pandas as pd
    from distributed import LocalCluster

    from flows.features import embed_flow
    from shoefind.encoders.load import load_model
    from shoefind.features.cache import EmbeddingCache
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0") as cluster:
        result = embed_flow(str(ds), str(tmp_path / "data"), model=models["siglip"], batch_size=4,
                            cluster=cluster.scheduler_address)
    assert (result["encoded"], result["failed"]) == (9, [])
    enc = load_model(models["siglip"])
    table = pd.read_csv(tmp_path / "data" / "tables" / ds.name / "images.csv")
    cache = EmbeddingCache(tmp_path / "data" / "embeddings", enc.cache_key)
    np.testing.assert_allclose(cache.matrix(table.sha256.tolist()),
                               enc.encode_images([str(ds / p) for p in table.path]), atol=1e-4)


@pytest.mark.parametrize("fam", ["open_clip", "siglip"])
def test_web_page_renders_and_searches_with_another_family(models, fam, ds, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from tests.helpers import REPO
    monkeypatch.setenv("SHOEFIND_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("SHOEFIND_WEB_DATASET", str(ds))
    monkeypatch.setenv("SHOEFIND_MODEL", models[fam])
    at = AppTest.from_file(str(REPO / "shoefind" / "web" / "app.py"), default_timeout=120).run()
    assert not at.exception and not at.error
    assert any("RANDOM weights" in w.value for w in at.warning)
    at.text_input(key="search").input("a white converse").run()
    assert not at.exception and not at.error
    assert sum(" score " in m.value for m in at.markdown) >= 4   # a grid of catalog shoes


def test_learn_few_shot_with_siglip_and_coop_says_it_is_clip_only(models, tmp_path):
    from tests.helpers import make_labeled_dataset
    dataset = make_labeled_dataset(tmp_path / "images", n_per_shoe=3)
    res = run("learn", dataset, "--model", models["siglip"], "--shots", "1", "--data-dir", tmp_path / "data", "--json")
    assert res.exit_code == 0, res.output
    methods = {m["method"] for m in stdout_json(res)["comparison"]}
    assert {"zeroshot", "prototype", "tip-adapter"} <= methods and "coop" not in methods
    res = run("learn", dataset, "--model", models["open_clip"], "--method", "coop", "--data-dir", tmp_path / "data")
    assert res.exit_code == 2 and "clip: model for CoOp" in " ".join(res.output.split())
