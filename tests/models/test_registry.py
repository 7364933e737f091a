"""The learning loop on a real model (the offline efficientnet-lite0 backbone, a linear probe) over generated
shoe photos: the first retraining registers the dataset and promotes; the current model triages new photos
(a right one accepted, another shoe's rejected with a suggested label, an unsure one queued, a hand-dropped
one queued with its guesses); a worse model is not promoted; promotion and rollback by hand; `infer` answers
with the current model; a kill -9 during retraining leaves the current model intact; a registry file
edited by hand is one clear error and nothing is lost."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from shoefind.curate.crawl_checks import CrawlRules
from shoefind.curate.filter import run_filter
from shoefind.curate.model_verdicts import how_it_came
from shoefind.curate.queue import ReviewQueue
from shoefind.registry.store import ModelRegistry
from tests.helpers import REPO
from tests.helpers.cli import shoefind
from tests.helpers.loop_photos import SHOES, shoe_dataset, shoe_photo

MODEL = "efficientnet-lite0"
RED, BLUE = list(SHOES)[:2]
RULES = CrawlRules(without_model="review")


def _retrain(data_dir: Path, **kwargs) -> dict:
    from shoefind.registry.retrain import retrain
    return retrain(data_dir / "images", data_dir, model=MODEL, **kwargs)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A data folder whose dataset (4 shoes x 12 photos) has its first model, m0001."""
    data_dir = tmp_path_factory.mktemp("loop") / "data"
    shoe_dataset(data_dir / "images")
    _retrain(data_dir, learner="linear-probe")
    return data_dir


@pytest.fixture
def data(trained, tmp_path) -> Path:
    """A copy of the trained data folder for one test (the embedding cache comes along)."""
    copy = tmp_path / "data"
    shutil.copytree(trained, copy)
    return copy


def _crawled(data_dir: Path, inbox: Path, files: dict[Path, str | None]) -> None:
    """Record files as a crawl manifest does: downloaded for the shoe given (None: dropped by hand)."""
    from shoefind.images import sha256_file
    manifest = data_dir / "crawl" / "inbox.manifest.jsonl"
    manifest.parent.mkdir(parents=True, exist_ok=True)
    with open(manifest, "a") as fh:
        for path, shoe in files.items():
            if shoe:
                fh.write(json.dumps({"status": "downloaded", "shoe": shoe, "sha256": sha256_file(path),
                                     "path": str(path.relative_to(inbox)), "query": shoe}) + "\n")


def test_the_first_retraining_registers_the_dataset_and_promotes(trained):
    registry = ModelRegistry(trained, trained / "images")
    config = registry.config()
    assert config["learner"] == {"name": "linear-probe", "model": MODEL, "settings": {}}
    held = config["heldout"]
    assert held["source"] == "dataset" and held["shoes"] == 4 and 4 <= held["photos"] <= 16
    manifest = registry.current()
    assert manifest["id"] == "m0001" and registry.current_id() == "m0001"
    # the held-out photos are never trained on
    train = (registry.model_dir("m0001") / "train.csv").read_text()
    for sha in (registry.root / "heldout.csv").read_text().splitlines()[1:]:
        assert sha.split(",")[0] not in train
    assert manifest["data"]["photos"] == 48 - held["photos"]
    assert manifest["heldout"]["top1"] >= 0.75
    thresholds = manifest["thresholds"]
    assert thresholds["margin"] is not None and thresholds["calibration"]["precision"] >= 0.98
    assert thresholds["calibration"]["photos"] == manifest["data"]["photos"]      # every photo, out of fold


def test_triage_accepts_the_right_shoe_rejects_another_with_a_suggestion_and_queues_the_unsure(data, tmp_path):
    from shoefind.registry.triage import load_triage
    inbox = data / "inbox"
    right = shoe_photo(inbox / RED / "right.jpg", SHOES[RED], 501)
    other = shoe_photo(inbox / RED / "other.jpg", SHOES[BLUE], 502)
    unsure = shoe_photo(inbox / RED / "unsure.jpg", SHOES[RED], 504, shape=1)    # red, but shaped as BLUE
    by_hand = shoe_photo(inbox / BLUE / "dropped by hand.jpg", SHOES[BLUE], 503)
    _crawled(data, inbox, {right: RED, other: RED, unsure: RED, by_hand: None})
    triage, note = load_triage(data, data / "images")
    assert triage is not None and "m0001" in note
    summary = run_filter(inbox, data, rules=RULES, triage=triage).summary
    items = {Path(i.source).name: i for i in ReviewQueue(data).items()}

    accepted = items["right.jpg"]
    assert (accepted.status, accepted.rule, accepted.decided_by) == ("accepted", "triage:agrees", "model:m0001")
    assert accepted.intended == RED and accepted.guesses[0]["shoe"] == RED
    assert (data / "images" / RED / f"{accepted.sha256}.jpg").is_file()

    rejected = items["other.jpg"]
    assert (rejected.status, rejected.rule, rejected.suggested) == ("rejected", "triage:other-shoe", BLUE)
    assert not list((data / "images").rglob(f"{rejected.sha256}.*"))      # never filed silently

    waiting = items["unsure.jpg"]
    assert (waiting.status, waiting.rule) == ("review", "triage:unsure")
    assert waiting.margin < triage.thresholds.margin and {g["shoe"] for g in waiting.guesses[:2]} == {RED, BLUE}
    dropped = items["dropped by hand.jpg"]
    assert (dropped.status, dropped.rule, dropped.intended) == ("review", "triage:no-intended-shoe", None)
    assert dropped.guesses[0]["shoe"] == BLUE
    assert (summary["auto_accepted"], summary["auto_rejected"], summary["queued"]) == (1, 1, 2)

    # a person files the rejected photo under the suggested shoe in one step, through the transactions
    filed = ReviewQueue(data).decide(rejected.id, "accept", reviewer="test", label="suggested")
    assert (filed.status, filed.folder) == ("accepted", BLUE)
    assert (data / "images" / BLUE / f"{rejected.sha256}.jpg").is_file()
    # the waiting ones come most informative first: the unsure photo before the one the model was sure of
    order = [Path(i.source).name for i in ReviewQueue(data).items("review", order="informative")]
    assert order == ["unsure.jpg", "dropped by hand.jpg"]


def _listed_again(data_dir: Path, files: dict[Path, str], fetched_for: str) -> None:
    """Record, as a later crawl does, that the search listed these files for another shoe too."""
    from shoefind.images import sha256_file
    with open(data_dir / "crawl" / "inbox.manifest.jsonl", "a") as fh:
        for path, shoe in files.items():
            fh.write(json.dumps({"status": "listed-again", "shoe": shoe, "sha256": sha256_file(path),
                                 "fetched_for": fetched_for, "query": shoe, "image_url": f"http://x/{path.name}"}) + "\n")


def test_a_photo_listed_for_two_shoes_is_filed_under_the_one_the_model_is_sure_of_else_waits(data, tmp_path):
    """Listed for BLUE and RED: a RED shoe the model is sure of goes under RED (its nearest training photo
    agrees); one it is unsure of waits for a person with both shoes in its guesses; a shoe it is sure of but
    that the search listed for neither is not filed under it; a photo like no catalog shoe is rejected."""
    import numpy as np
    from PIL import Image

    from shoefind.registry.triage import load_triage, retriage_waiting
    inbox = data / "inbox"
    third = list(SHOES)[2]
    twice = shoe_photo(inbox / BLUE / "twice.jpg", SHOES[RED], 601)               # a RED shoe, fetched for BLUE
    unsure = shoe_photo(inbox / BLUE / "unsure.jpg", SHOES[RED], 602, shape=1)     # red, shaped as BLUE
    neither = shoe_photo(inbox / BLUE / "neither.jpg", SHOES[third], 603)          # listed for BLUE and RED
    noise = inbox / BLUE / "noise.jpg"
    Image.fromarray(np.random.default_rng(7).integers(0, 255, (240, 320, 3), dtype=np.uint8)).save(noise)
    files = [twice, unsure, neither, noise]
    _crawled(data, inbox, dict.fromkeys(files, BLUE))
    _listed_again(data, dict.fromkeys(files, RED), BLUE)
    triage, _ = load_triage(data, data / "images")
    summary = run_filter(inbox, data, rules=RULES, triage=triage).summary
    items = {Path(i.source).name: i for i in ReviewQueue(data).items()}

    filed = items["twice.jpg"]
    assert (filed.status, filed.rule, filed.decided_by, filed.intended) == \
        ("accepted", "triage:agrees", "model:m0001", BLUE)
    assert filed.folder == RED and (data / "images" / RED / f"{filed.sha256}.jpg").is_file()
    assert not list((data / "images" / BLUE).glob(f"{filed.sha256}.*"))
    assert any(BLUE in r["reason"] and RED in r["reason"] for r in filed.reasons)
    assert how_it_came(filed) == "listed for several"

    waiting = items["unsure.jpg"]
    assert (waiting.status, waiting.rule) == ("review", "listed_for_several")
    assert waiting.margin < triage.thresholds.margin and {g["shoe"] for g in waiting.guesses[:2]} == {RED, BLUE}
    assert (items["neither.jpg"].status, items["neither.jpg"].rule) == ("review", "listed_for_several")
    assert items["neither.jpg"].guesses[0]["shoe"] == third and items["neither.jpg"].suggested is None
    assert not list((data / "images").rglob(f"{items['neither.jpg'].sha256}.*"))     # never filed silently
    assert (items["noise.jpg"].status, items["noise.jpg"].rule) == ("rejected", "triage:not-in-catalog")
    assert (summary["auto_accepted"], summary["listed_for_several"]) == (1, 2)

    # a newer model with the same view settles neither of the two that wait
    triage.model = "m0009"
    listed = {i.sha256: [BLUE, RED] for i in items.values()}
    assert retriage_waiting(ReviewQueue(data), triage, listed)["still_waiting"] == 2


def _a_red_shoe_triaged(data_dir: Path, crawled_for: str, seed: int):
    """A RED shoe crawled for `crawled_for`, through the filter with the current model: (photo, triage, its
    queue item)."""
    from shoefind.registry.triage import load_triage
    inbox = data_dir / "inbox"
    photo = shoe_photo(inbox / crawled_for / "red.jpg", SHOES[RED], seed)
    _crawled(data_dir, inbox, {photo: crawled_for})
    triage, _ = load_triage(data_dir, data_dir / "images")
    run_filter(inbox, data_dir, rules=RULES, triage=triage)
    [item] = ReviewQueue(data_dir).items()
    return photo, triage, item


def test_a_model_decision_on_a_photo_later_listed_for_its_own_shoe_is_asked_again_at_once(data, tmp_path, capsys):
    """A RED shoe fetched for BLUE is rejected as another shoe; when a later crawl lists it for RED, the next
    filter run reopens that decision and the model files it under RED in the same run; asked once: a rerun
    changes nothing."""
    from shoefind.cli.filter import _print_summary
    inbox = data / "inbox"
    red, triage, item = _a_red_shoe_triaged(data, BLUE, 611)
    assert (item.status, item.rule, item.suggested) == ("rejected", "triage:other-shoe", RED)

    _listed_again(data, {red: RED}, BLUE)
    summary = run_filter(inbox, data, rules=RULES, triage=triage).summary
    assert (summary["reopened"], summary["listed_again_accepted"]) == (1, 1)
    after = ReviewQueue(data).get(item.id)
    assert (after.status, after.folder, after.decided_by) == ("accepted", RED, "model:m0001")
    assert (data / "images" / RED / f"{item.sha256}.jpg").is_file()
    assert how_it_came(after) == "reopened rejection"
    _print_summary(summary)
    assert "the model filed 1 under one of them" in capsys.readouterr().out
    again = run_filter(inbox, data, rules=RULES, triage=triage).summary
    assert (again["reopened"], again["listed_again_accepted"]) == (0, 0)
    assert ReviewQueue(data).get(item.id).decided_at == after.decided_at


def test_a_model_never_files_a_photo_again_under_the_shoe_a_later_listing_contradicted(data):
    """m0001 files a RED shoe crawled for RED under RED; a later crawl lists it for BLUE. The decision is
    reopened and m0001, asked at once, would say RED again: the listing contradicted that answer, so the
    photo waits for a person, out of the dataset, with both shoes and the model's guesses; a rerun of the
    filter, or the model asked again, changes nothing."""
    from shoefind.registry.triage import retriage_waiting
    inbox = data / "inbox"
    red, triage, item = _a_red_shoe_triaged(data, RED, 621)
    assert (item.status, item.folder, item.decided_by) == ("accepted", RED, "model:m0001")
    assert how_it_came(item) == "one listing"

    _listed_again(data, {red: BLUE}, RED)
    summary = run_filter(inbox, data, rules=RULES, triage=triage).summary
    after = ReviewQueue(data).get(item.id)
    assert (summary["reopened"], summary["listed_again_accepted"]) == (1, 0)
    assert (after.status, after.rule, after.triaged_by) == ("review", "listed_for_several", "m0001")
    assert after.guesses[0]["shoe"] == RED and after.margin >= triage.thresholds.margin
    assert any(RED in r["reason"] and BLUE in r["reason"] for r in after.reasons)
    assert any(f"would file it under {RED} again" in r["reason"] for r in after.reasons)
    assert how_it_came(after) == "reopened acceptance"
    assert not list((data / "images").rglob(f"{item.sha256}.*"))       # out of the dataset until a person decides
    again = run_filter(inbox, data, rules=RULES, triage=triage).summary
    assert (again["reopened"], again["listed_again_accepted"]) == (0, 0)
    triage.model = "m0009"
    assert retriage_waiting(ReviewQueue(data), triage, {item.sha256: [RED, BLUE]})["still_waiting"] == 1
    assert ReviewQueue(data).get(item.id).status == "review"


def test_a_model_never_judges_a_photo_it_was_trained_on(data):
    """A person files a photo under RED, m0002 learns it, then the person undoes the decision on the review
    page: m0002 does not decide it (its answer would only repeat what it learned), m0001, which never saw it,
    does."""
    from shoefind.registry.triage import load_triage, retriage_waiting
    inbox = data / "inbox"
    red = shoe_photo(inbox / RED / "red.jpg", SHOES[RED], 622)
    _crawled(data, inbox, {red: RED})
    run_filter(inbox, data, rules=RULES)                        # no model asked: it waits for a person
    queue = ReviewQueue(data)
    [item] = queue.items()
    queue.decide(item.id, "accept", reviewer="review-page")
    second = _retrain(data)
    assert second["model"] == "m0002", second
    if not second["promoted"]:         # one photo more is within the held-out split's noise either way
        code, out, err = shoefind("model", "promote", "m0002", "--data-dir", data)
        assert code == 0, err
    learned, _ = load_triage(data, data / "images")
    queue.reopen(item.id)                                       # the review page's undo
    assert learned.model == "m0002"
    assert retriage_waiting(queue, learned)["still_waiting"] == 1
    waiting = queue.get(item.id)
    assert (waiting.status, waiting.triaged_by, waiting.guesses[0]["shoe"]) == ("review", "m0002", RED)
    assert any("trained on this photo" in r["reason"] for r in waiting.reasons)

    code, out, err = shoefind("model", "promote", "m0001", "--data-dir", data)
    assert code == 0, err
    first, _ = load_triage(data, data / "images")
    assert item.sha256 in learned.trained_as and item.sha256 not in first.trained_as
    assert retriage_waiting(queue, first)["auto_accepted"] == 1
    assert (queue.get(item.id).status, queue.get(item.id).folder) == ("accepted", RED)


def test_without_a_trained_model_everything_waits_for_a_person(tmp_path):
    from shoefind.registry.triage import load_triage
    data = tmp_path / "data"
    shoe_dataset(data / "images", per_shoe=2)
    triage, note = load_triage(data, data / "images")
    assert triage is None and "no trained model" in note
    inbox = data / "inbox"
    photo = shoe_photo(inbox / RED / "new.jpg", SHOES[RED], 9)
    _crawled(data, inbox, {photo: RED})
    summary = run_filter(inbox, data, rules=RULES, triage=None, triage_note=note).summary
    assert (summary["accepted"], summary["queued"], summary["auto_accepted"]) == (0, 1, 0)
    assert ReviewQueue(data).items("review")[0].intended == RED


def test_a_worse_model_is_not_promoted_a_better_one_is_and_rollback_goes_back(data):
    registry = ModelRegistry(data, data / "images")
    # every BLUE photo filed as RED by mistake makes a worse model: it is trained and kept, not promoted
    blue = {p: p.read_bytes() for p in (data / "images" / BLUE).iterdir()}
    for p in blue:
        p.rename(data / "images" / RED / f"wrong {p.name}")
    worse = _retrain(data)
    assert not worse["promoted"] and worse["current"] == "m0001" and worse["model"] == "m0002"
    assert worse["heldout"]["top1"] < worse["before"]["top1"]
    c = worse["comparison"]
    assert c["old_only"] > c["new_only"] and c["se"] > 0 and 0 <= c["p_value"] <= 1
    assert registry.current_id() == "m0001"
    # the same photos again: nothing new to learn, nothing trained
    assert _retrain(data)["reason"].startswith("unchanged")
    # the photos back where they belong, and more of them: not worse, promoted
    for p, data_bytes in blue.items():
        (data / "images" / RED / f"wrong {p.name}").rename(p)
    shoe_dataset(data / "images", per_shoe=4, offset=100)
    better = _retrain(data)
    assert better["promoted"] and better["current"] == "m0003" and better["previous"] == "m0001"
    assert better["heldout"]["photos"] == worse["heldout"]["photos"]         # the same held-out photos
    events = [e["event"] for e in registry.events()]
    assert events == ["registered", "trained", "promoted", "trained", "kept", "trained", "promoted"]

    code, out, err = shoefind("models", "--data-dir", data, "--json")
    assert code == 0, err
    listed = json.loads(out)
    assert listed["current"] == "m0003"
    assert [(m["model"], m["promoted"], m["current"]) for m in listed["models"]] == [
        ("m0001", True, False), ("m0002", False, False), ("m0003", True, True)]
    code, out, err = shoefind("model", "rollback", "--data-dir", data)
    assert code == 0 and "current model: m0001 (was m0003)" in out, err
    code, out, err = shoefind("model", "rollback", "--data-dir", data)
    assert code == 2 and err.count("error:") == 1 and "no earlier one" in err
    code, out, err = shoefind("model", "promote", "m0002", "--data-dir", data)
    assert code == 0 and registry.current_id() == "m0002", err
    code, out, err = shoefind("model", "promote", "m0009", "--data-dir", data)
    assert code == 2 and "no model m0009" in err and registry.current_id() == "m0002"


def test_infer_answers_with_the_current_model_and_follows_a_promotion(data):
    shoe_dataset(data / "images", per_shoe=4, offset=100)
    assert _retrain(data)["current"] == "m0002"
    photo = shoe_photo(data / "query.jpg", SHOES[BLUE], 900)
    code, out, err = shoefind("infer", photo, "--dataset", data / "images", "--data-dir", data, "--json")
    assert code == 0, err
    answer = json.loads(out)
    first = answer["answers"][0] if "answers" in answer else answer
    assert "current: linear-probe m0002" in json.dumps(answer) and BLUE.split("_")[-1] in json.dumps(first["shoe"])
    code, _, err = shoefind("model", "promote", "m0001", "--data-dir", data)
    assert code == 0, err
    code, out, err = shoefind("infer", photo, "--dataset", data / "images", "--data-dir", data, "--json")
    assert code == 0 and "current: linear-probe m0001" in out, err


@pytest.mark.parametrize("step", ["registry:fitted", "registry:writing", "registry:promoting"])
def test_a_kill_during_retraining_leaves_the_current_model_intact(data, step):
    registry = ModelRegistry(data, data / "images")
    before = (registry.pointer_path.read_bytes(), registry.manifest("m0001"))
    shoe_dataset(data / "images", per_shoe=3, offset=200)
    code = ("from shoefind.registry.retrain import retrain; import sys; "
            f"retrain(sys.argv[1] + '/images', sys.argv[1], model={MODEL!r})")
    env = dict(os.environ, SHOEFIND_CRASH_AT=step, PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, "-c", code, str(data)], env=env, cwd=REPO, capture_output=True, timeout=600)
    assert done.returncode == -9, done.stderr.decode()[-2000:]
    assert registry.pointer_path.read_bytes() == before[0] and registry.current() == before[1]
    # a model written whole but not promoted stays, not current; a half-written one never shows
    assert registry.model_ids() == (["m0001", "m0002"] if step == "registry:promoting" else ["m0001"])
    # the next run cleans up and goes on
    again = _retrain(data)
    assert again["promoted"] and registry.current_id() == again["model"]
    assert not list(registry.models_dir.glob(".*.part"))


def test_a_registry_file_edited_by_hand_is_one_clear_error_and_nothing_is_lost(data):
    registry = ModelRegistry(data, data / "images")
    files = {p: p.read_bytes() for p in registry.root.rglob("*") if p.is_file() and p != registry.pointer_path}
    pointer = json.loads(registry.pointer_path.read_text())
    registry.pointer_path.write_text(json.dumps(pointer | {"stack": ["m0001", "m0001"]}))
    code, out, err = shoefind("models", "--data-dir", data)
    assert code == 2 and err.count("error:") == 1 and "changed outside shoefind" in err and "Traceback" not in err
    assert "shoefind model promote" in err
    code, out, err = shoefind("infer", data / "images" / RED / "photo 0.jpg", "--dataset", data / "images",
                              "--data-dir", data)
    assert code == 2 and "current.json" in err and "Traceback" not in err
    assert {p: p.read_bytes() for p in files} == files                         # nothing changed or lost
    code, out, err = shoefind("model", "promote", "m0001", "--data-dir", data)  # writes the pointer again
    assert code == 0 and registry.current_id() == "m0001", err

    manifest = registry.model_dir("m0001") / "manifest.json"
    edited = json.loads(manifest.read_text())
    edited["heldout"]["top1"] = 0.123
    manifest.write_text(json.dumps(edited))
    code, out, err = shoefind("models", "--data-dir", data)
    assert code == 2 and err.count("error:") == 1 and "m0001" in err and "changed outside shoefind" in err
    registry.pointer_path.write_text("{not json")
    code, out, err = shoefind("model", "rollback", "--data-dir", data)
    assert code == 2 and err.count("error:") == 1 and "cannot be read as JSON" in err


def test_a_learner_can_be_changed_and_one_that_cannot_run_changes_nothing(data):
    from shoefind.errors import UserError
    registry = ModelRegistry(data, data / "images")
    with pytest.raises(UserError, match="coop"):
        _retrain(data, learner="coop")                 # CoOp needs a CLIP text tower; lite0 has none
    assert registry.config()["learner"]["name"] == "linear-probe" and registry.model_ids() == ["m0001"]
    with pytest.raises(UserError, match="unknown learner 'magic'"):
        _retrain(data, learner="magic")
    changed = _retrain(data, learner="prototype")
    assert changed["learner"] == "prototype" and registry.config()["learner"]["name"] == "prototype"
    assert registry.manifest(changed["model"])["learner"]["name"] == "prototype"
    assert [e["event"] for e in registry.events()][-3:-1] == ["learner changed", "trained"]
