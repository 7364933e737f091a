"""Issue 24: `learn` never makes an answer worse. The README's offline block, on the real catalog where
it once did (../shared/data/findyourshoes-labeled: 27 of 28 shoes have one photo): `learn` refuses; forced,
its classifier is kept out of the answers because it scores below the nearest catalog photo on held-out
photos, and says so; a catalog photo is answered by its catalog label whatever a method says."""
from __future__ import annotations

import json
import shutil

from typer.testing import CliRunner

from shoefind.cli.main import app
from tests.helpers import make_photo
from tests.helpers.colour_task import colour_dataset
from tests.pipeline.test_offline_readme import readme_offline_commands

CHICAGO = "Nike_High_Red_Plain Sole_Jordan1 Retro High og Chicago"


def _run(args: list[str]):
    """(exit code, the output without its white space: an 80-column terminal wraps long paths anywhere)."""
    res = CliRunner().invoke(app, [str(a) for a in args])
    return res.exit_code, "".join(res.output.split()), res


def squeeze(text: str) -> str:
    return "".join(text.split())


def _answer(photo, catalog) -> dict:
    code, said, res = _run(["infer", photo, "--dataset", catalog, "--model", "efficientnet-lite0", "--json"])
    assert code == 0, said
    return json.loads(res.stdout[res.stdout.index("{"):])["answers"][0]


def test_the_readme_block_on_a_one_photo_per_shoe_catalog_is_never_worse(shared_data, tmp_path, monkeypatch):
    catalog = tmp_path / "findyourshoes"
    shutil.copytree(shared_data / "findyourshoes-labeled", catalog)
    photo = next((catalog / CHICAGO).iterdir())
    monkeypatch.setenv("SHOEFIND_DATA", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    said = []
    for cmd in readme_offline_commands():
        args = [catalog if a == "PHOTOS_DIR" else photo if a == "photo.jpg" else a for a in cmd[1:]]
        said.append(_run(args))
    (before_code, before, _), (learn_code, learned, _), (after_code, after, _) = said
    assert before_code == 0 and after_code == 0 and "Traceback" not in before + learned + after
    answered = squeeze(f"{photo.name}: {CHICAGO.split('_')[-1]} (100%, nearest)")
    assert answered in before
    assert learn_code == 2 and "asinglephoto" in learned and "--force" in learned    # refused, one clear line
    assert answered in after

    # forced: the classifier is saved with its held-out score and the references...
    code, forced, _ = _run(["learn", catalog, "--model", "efficientnet-lite0", "--force"])
    assert code == 0, forced
    manifest = json.loads(next((tmp_path / "data" / "learned").rglob("manifest.json")).read_text())
    nearest = manifest["references"]["nearest"]
    assert nearest["photos"] >= 1 and nearest["top1"] is not None and manifest["references"]["zeroshot"] is None
    # ...the catalog photo is still answered by its label, whatever the learned classifier says
    answer = _answer(photo, catalog)
    assert answer["method_shoe"]["name"] is not None
    assert answer["shoe"]["name"] == CHICAGO.split("_")[-1] and answer["shoe"]["by"] == "catalog label"
    assert answer["attributes"]["color"]["value"] == "Red" and answer["attributes"]["color"]["confidence"] == 1.0
    # ...and a photo the catalog lacks is not given to a classifier that never saw 27 of the 28 shoes
    other = tmp_path / "new.jpg"
    other.write_bytes(photo.read_bytes() + b"\0")          # the same picture, bytes not in the catalog
    answer = _answer(other, catalog)
    assert answer["method"] == "nearest" and not answer["in_catalog"], answer["method"]
    assert "not using the learned classifier" in answer["method_note"]
    assert "no training photo of 27 of the catalog's 28 shoes" in answer["method_note"]
    assert answer["shoe"]["name"] == CHICAGO.split("_")[-1]          # what the nearest photo had right
    code, said, _ = _run(["infer", other, "--dataset", catalog, "--model", "efficientnet-lite0"])
    assert code == 0 and squeeze("not using the learned classifier") in said


def test_a_classifier_below_the_nearest_photo_is_not_used_and_the_answer_says_why(tmp_path, monkeypatch):
    photos = colour_dataset(tmp_path / "photos", per_class=5)
    query = make_photo(tmp_path / "photo.png", color=(30, 40, 200), seed=999, size=(96, 72), fmt="PNG")
    monkeypatch.setenv("SHOEFIND_DATA", str(tmp_path / "data"))
    code, said, _ = _run(["learn", photos, "--model", "efficientnet-lite0", "--method", "fewshot"])
    assert code == 0, said
    path = next((tmp_path / "data" / "learned").rglob("manifest.json"))
    manifest = json.loads(path.read_text())
    assert manifest["version"] == 2 and manifest["references"]["nearest"]["top1"] is not None
    best = manifest["best"]["name"]
    learned = max((r for r in manifest["comparison"] if r["task"] == "name" and r["method"] == best),
                  key=lambda r: r["shots"])["top1"]
    assert learned >= manifest["references"]["nearest"]["top1"]           # a fair classifier is used
    assert _answer(query, photos)["method"].startswith("fewshot")
    # the same classifiers, had they scored below the nearest photo on their held-out photos
    for row in manifest["comparison"]:
        if row["task"] == "name":
            row["top1"] = 0.25
    manifest["references"]["nearest"]["top1"] = 0.75
    path.write_text(json.dumps(manifest))
    answer = _answer(query, photos)
    assert answer["method"] == "nearest"
    assert "below the nearest catalog photo's 75.0%" in answer["method_note"] and "25.0%" in answer["method_note"]
    code, said, _ = _run(["infer", query, "--dataset", photos, "--model", "efficientnet-lite0"])
    assert code == 0 and squeeze("not using the learned classifier") in said
    # asked for by name, it answers, with the same warning
    code, said, res = _run(["infer", query, "--dataset", photos, "--model", "efficientnet-lite0", "--method", "fewshot",
                            "--json"])
    named = json.loads(res.stdout[res.stdout.index("{"):])["answers"][0]
    assert named["method"].startswith("fewshot") and "was asked for, although" in named["method_note"]
