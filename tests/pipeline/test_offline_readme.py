"""The README's offline commands (image-only backbone), run in order as a new user would."""
from __future__ import annotations

import json
import re
import shlex

from typer.testing import CliRunner

from shoefind.cli.main import app

from tests.helpers import REPO, make_photo
from tests.helpers.colour_task import colour_dataset


def readme_offline_commands() -> list[list[str]]:
    text = (REPO / "README.md").read_text()
    block = re.search(r"<!-- offline-commands -->\n(.*?)<!-- /offline-commands -->", text, re.S)
    assert block, "README.md lost its offline-commands block"
    lines = [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.strip()]
    return [shlex.split(line) for line in lines]


def test_readme_offline_commands_identify_without_clip(prefect_harness, tmp_path, monkeypatch):
    photos = colour_dataset(tmp_path / "photos", per_class=5)
    # blue, not in the catalog; a PNG like the catalog's photos: JPEG artefacts on a 96x72 noisy drawing put it
    # farther from every catalog photo than they are from each other, and it would be flagged "not like any
    # shoe in this catalog" (shoefind.retrieve.open_set)
    query = make_photo(tmp_path / "photo.jpg", color=(30, 40, 200), seed=999, size=(96, 72), fmt="PNG")
    monkeypatch.setenv("SHOEFIND_DATA", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    commands = readme_offline_commands()
    assert [c[1] for c in commands] == ["infer", "learn", "infer"]
    said = []
    for cmd in commands:
        assert cmd[0].endswith("bin/shoefind")
        args = [str(photos) if a == "PHOTOS_DIR" else str(query) if a == "photo.jpg" else a for a in cmd[1:]]
        res = CliRunner().invoke(app, args)
        assert res.exit_code == 0, res.output
        said.append(" ".join(res.output.split()))
    assert "Traceback" not in "".join(said)
    # before `learn`: the nearest catalog photos answer, and say so
    assert f"{query}: blue" in said[0] and "nearest" in said[0]
    # after `learn`: the learned few-shot classifier answers, under the name `learn --method` uses
    assert f"{query}: blue" in said[2] and re.search(r"fewshot: (tip-adapter|prototype|linear-probe)", said[2])


def test_infer_method_names_match_learn_and_errors_are_sentences(prefect_harness, tmp_path, monkeypatch):
    photos = colour_dataset(tmp_path / "photos", per_class=3)
    monkeypatch.setenv("SHOEFIND_DATA", str(tmp_path / "data"))
    base = ["infer", str(photos / "red" / "0.png"), "--dataset", str(photos), "--model", "efficientnet-lite0"]
    cases = {"fewshot": r"No few-shot classifier has been learned for efficientnet-lite0 .* Run `shoefind learn",
             "zeroshot": r"no text side, so the zero-shot method \(text prompts\) cannot run with it\.",
             "coop": r"no text side, so CoOp \(learned text prompts\) cannot run with it\.",
             "bogus": r"'bogus' is not an identification method: choose one of auto, zeroshot, fewshot"}
    for method, expected in cases.items():
        res = CliRunner().invoke(app, [*base, "--method", method])
        assert res.exit_code == 2, res.output
        assert re.search(expected, " ".join(res.output.split())), res.output
        assert "Traceback" not in res.output
    # every name `learn --method` takes is an identification method too
    from shoefind.learn.methods import METHOD_CHOICES
    from shoefind.retrieve.identify import method_names
    assert set(METHOD_CHOICES) <= set(method_names())
    res = CliRunner().invoke(app, [*base, "--method", "nearest", "--json"])
    answer = json.loads(res.stdout[res.stdout.index("{"):])["answers"][0]
    assert answer["method"] == "nearest" and answer["shoe"]["shoe"] == "red" and answer["in_catalog"]
    assert answer["catalog_shoe"]["shoe"] == "red" and "nearest catalog photos" in answer["method_description"]
