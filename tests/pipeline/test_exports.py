"""`infer --csv` and `search --csv`: one row per photo and result; a folder shows a bar and a summary."""
import csv

import pytest
from typer.testing import CliRunner

from shoefind.cli.main import app

from tests.helpers import make_photo
from tests.helpers.infer_dataset import catalog_photo, make_catalog_dataset


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    return make_catalog_dataset(tmp_path_factory.mktemp("catalog"))


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def read(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_infer_a_folder_writes_a_csv_and_prints_a_summary(tiny_model, ds, tmp_path):
    folder = tmp_path / "q"
    for i in range(4):
        make_photo(folder / f"{i}.png", color=(50 * i, 30, 200 - 40 * i), fmt="PNG", seed=i)
    (folder / "broken.jpg").write_bytes(b"not an image")
    out = tmp_path / "answers.csv"
    res = run("infer", folder, "--dataset", ds, "--model", tiny_model, "--data-dir", tmp_path / "d", "-k", 3,
              "--csv", out)
    assert res.exit_code == 2, res.output                 # the broken photo is reported, the others answered
    said = " ".join(res.output.split())
    assert "5 photos" in said and "4 identified, 1 failed" in said
    assert "identifying photos" in said and "5/5" in said         # the progress bar
    assert said.count("nearest catalog photos") == 0              # no per-photo detail lines
    rows = read(out)
    identified = [r for r in rows if r["kind"] == "identified"]
    assert len(identified) == 4 * 3 and {r["rank"] for r in identified} == {"1", "2", "3"}
    assert all(r["shoe"] and float(r["probability"]) > 0 for r in identified)
    [failed] = [r for r in rows if r["kind"] == "error"]
    assert failed["photo"].endswith("broken.jpg") and failed["error"]


def test_infer_csv_with_a_change_and_search_csv(tiny_model, ds, tmp_path):
    out = tmp_path / "one.csv"
    photo = catalog_photo(ds, "Air Test Red")
    res = run("infer", photo, "--change", "same brand but blue", "--dataset", ds, "--model", tiny_model,
              "--data-dir", tmp_path / "d", "--csv", out, "--json")
    assert res.exit_code == 0, res.output
    assert res.stdout.lstrip().startswith("{")                    # --json unchanged on stdout
    rows = read(out)
    assert {r["kind"] for r in rows} == {"identified", "changed"}
    assert all(r["in_catalog"] == "True" and r["catalog_shoe"] == "Air Test Red" for r in rows)
    assert all(r["color"] == "Blue" and r["change"] == "same brand but blue" for r in rows if r["kind"] == "changed")
    found = tmp_path / "found.csv"
    res = run("search", "a red shoe", "--dataset", ds, "--model", tiny_model, "--data-dir", tmp_path / "d", "-k", 4,
              "--csv", found)
    assert res.exit_code == 0, res.output
    rows = read(found)
    assert [r["rank"] for r in rows] == ["1", "2", "3", "4"] and all(r["query"] == "a red shoe" for r in rows)
    assert all(r["photo"] for r in rows)


def test_csv_to_a_missing_folder_is_one_line_before_any_work(tiny_model, ds, tmp_path):
    res = run("infer", catalog_photo(ds, "Air Test Red"), "--dataset", ds, "--model", tiny_model,
              "--data-dir", tmp_path / "d", "--csv", tmp_path / "nowhere" / "a.csv")
    assert res.exit_code == 2 and "does not exist" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "d").exists()                          # nothing was embedded
