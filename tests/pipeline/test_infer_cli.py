"""`shoefind infer | search | evaluate --task change` and the `infer` flow, as a user runs them."""
import json

import pandas as pd
import pytest
from prefect.exceptions import FailedRun
from typer.testing import CliRunner

from shoefind.cli.main import app

from tests.helpers import make_photo
from tests.helpers.infer_dataset import catalog_photo, make_catalog_dataset
from tests.helpers import png_header_only


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    return make_catalog_dataset(tmp_path_factory.mktemp("catalog"))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def said(res) -> str:
    """Everything printed, with rich's line wrapping undone."""
    return " ".join(res.output.split())


def stdout_json(res):
    return json.loads(res.stdout[res.stdout.index("{"):])


def test_infer_json_pipes(tiny_model, ds, data):
    res = run("infer", catalog_photo(ds, "Air Test Red"), "--dataset", ds, "--model", tiny_model,
              "--data-dir", data, "--json")
    assert res.exit_code == 0, res.output
    answer = stdout_json(res)["answers"][0]
    assert len(answer["top_shoes"]) == 5 and answer["attributes"]["brand"]["value"]


def test_infer_a_folder_with_a_change(tiny_model, ds, data, tmp_path):
    for i, color in enumerate([(200, 30, 30), (30, 40, 200)]):
        make_photo(tmp_path / "q" / f"{i}.png", color=color, fmt="PNG")
    res = run("infer", tmp_path / "q", "--change", "same brand but blue", "--dataset", ds, "--model", tiny_model,
              "--data-dir", data, "--json")
    assert res.exit_code == 0, res.output
    answers = stdout_json(res)["answers"]
    assert len(answers) == 2
    for a in answers:      # photos outside the catalog: "same brand" is the identified brand
        brand = a["attributes"]["brand"]["catalog_value"]
        assert all(r["color"] == "Blue" and r["brand"] == brand for r in a["change"]["results"])
        assert a["change"]["excluded"] == a["shoe"]["shoe"]


def test_infer_prints_a_readable_answer(tiny_model, ds, data):
    res = run("infer", catalog_photo(ds, "Air Test Red"), "--change", "not Nike", "--dataset", ds,
              "--model", tiny_model, "--data-dir", data)
    assert res.exit_code == 0, res.output
    assert "nearest catalog photos" in said(res) and "brand: not Nike" in said(res)


def bad_inputs(tmp_path):
    html = tmp_path / "page.jpg"
    html.write_bytes(b"<!DOCTYPE html><html>gone</html>")
    truncated = make_photo(tmp_path / "cut.jpg", size=(800, 600))
    truncated.write_bytes(truncated.read_bytes()[:truncated.stat().st_size // 2])
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    bomb = png_header_only(tmp_path / "bomb.png", 30000, 30000)
    return [(html, "HTML"), (truncated, "truncated"), (empty, "empty"), (bomb, "decompression bomb"),
            (tmp_path / "missing.jpg", "no such file")]


def test_bad_photos_exit_2_with_one_clear_line_each(tiny_model, ds, data, tmp_path):
    for photo, reason in bad_inputs(tmp_path):
        res = run("infer", photo, "--dataset", ds, "--model", tiny_model, "--data-dir", data)
        assert res.exit_code == 2, (photo, res.output)
        assert reason in said(res) and "Traceback" not in said(res)


def test_a_bad_photo_among_good_ones_is_reported_and_the_rest_answered(tiny_model, ds, data, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"")
    res = run("infer", catalog_photo(ds, "Air Test Red"), bad, "--dataset", ds, "--model", tiny_model,
              "--data-dir", data, "--json")
    assert res.exit_code == 2 and "empty" in said(res)
    answers = stdout_json(res)["answers"]
    assert answers[0]["error"] is None and "empty" in answers[1]["error"]


def test_unknown_model_and_empty_catalog_exit_2(tiny_model, ds, data, tmp_path):
    res = run("infer", catalog_photo(ds, "Air Test Red"), "--dataset", ds, "--model", tmp_path / "nope.pt",
              "--data-dir", data)
    assert res.exit_code == 2 and "neither a CLIP model name" in said(res)
    (tmp_path / "empty").mkdir()
    res = run("search", "red", "--dataset", tmp_path / "empty", "--model", tiny_model, "--data-dir", data)
    assert res.exit_code == 2 and "has no shoes" in said(res) and "Traceback" not in said(res)


def test_search_with_filters(tiny_model, ds, data):
    res = run("search", "white high-top converse", "--brand", "Nike", "--top", "high", "--dataset", ds,
              "--model", tiny_model, "--data-dir", data, "--json")
    assert res.exit_code == 0, res.output
    found = stdout_json(res)
    assert found["results"] and all(r["brand"] == "Nike" and r["hightop"] == "High" for r in found["results"])
    res = run("search", "red", "--top", "sky-high", "--dataset", ds, "--model", tiny_model, "--data-dir", data)
    assert res.exit_code == 2 and "unknown top" in said(res)


def test_infer_flow_answers_and_fails_clearly(prefect_harness, tiny_model, ds, data, tmp_path):
    from flows.retrieve import infer_flow
    answer = infer_flow(str(catalog_photo(ds, "Air Test Red")), change="same brand but blue", dataset=str(ds),
                        data_dir=str(data), model=tiny_model)
    assert {r["shoe"] for r in answer["answers"][0]["change"]["results"]} == {"Dunk Test Blue", "Air Test Blue"}
    bomb = png_header_only(tmp_path / "bomb.png", 30000, 30000)
    with pytest.raises(FailedRun, match="decompression bomb"):
        infer_flow(str(bomb), dataset=str(ds), data_dir=str(data), model=tiny_model)
    with pytest.raises(FailedRun, match="has no shoes"):
        (tmp_path / "empty").mkdir()
        infer_flow(str(catalog_photo(ds, "Air Test Red")), dataset=str(tmp_path / "empty"), data_dir=str(data),
                   model=tiny_model)


def test_evaluate_change_task_writes_the_reports(prefect_harness, tiny_model, ds, tmp_path):
    res = run("evaluate", ds, "--task", "change", "--model", tiny_model, "--data-dir", tmp_path / "d", "--json")
    assert res.exit_code == 0, res.output
    payload = stdout_json(res)
    methods = ["constraints", "fusion", "baseline", "photo-only", "text-only"]
    assert payload["task"] == "change" and [m["method"] for m in payload["metrics"]] == methods
    assert all(0 <= m[k] <= 1 for m in payload["metrics"] for k in ("recall@1", "recall@5", "recall@10", "mrr"))
    run_dir = next((tmp_path / "d" / "runs").glob("*-evaluate-change-*"))
    assert "RANDOM weights" in (run_dir / "report.md").read_text()
    assert pd.read_csv(run_dir / "metrics.csv")["method"].tolist() == methods
    assert (run_dir / "queries.csv").is_file() and (run_dir / "per_template.csv").is_file()
    res = run("evaluate", ds, "--task", "nope", "--model", tiny_model, "--data-dir", tmp_path / "d")
    assert res.exit_code == 2 and "nope" in said(res) and "zeroshot" in said(res)
