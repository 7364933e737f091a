"""The review queue (SQLite) and the review CLI: decisions are stored and applied."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shoefind.curate.crawl_checks import CrawlRules
from shoefind.curate.filter import run_filter
from shoefind.curate.queue import ReviewQueue, safe_shoe_folder
from tests.helpers import filter_inputs as inputs

SHOE = "Vans_Low_Black_Plain Sole_Old Skool"


@pytest.fixture
def queued(tmp_path, data_dir) -> ReviewQueue:
    crawl = tmp_path / "crawl" / SHOE
    for i, colour in enumerate([(200, 30, 30), (30, 160, 60), (40, 40, 200)]):
        inputs.photo(crawl / f"p{i}.jpg", color=colour, seed=i)
    run_filter(crawl.parent, data_dir, checker=None, rules=CrawlRules(without_model="review"))
    return ReviewQueue(data_dir)


def test_queued_images_wait_in_the_review_folder(queued, data_dir):
    items = queued.items("review")
    assert len(items) == 3
    for item in items:
        assert Path(item.stored_path).parent == data_dir / "filter" / "review"
        assert item.decision is None and item.decided_at is None and item.reasons


def test_accept_copies_into_the_dataset_and_reject_keeps_the_file(queued, data_dir):
    first, second, _ = queued.items("review")
    accepted = queued.decide(first.id, "accept")
    assert accepted.status == "accepted" and accepted.decision == "accept" and accepted.decided_at
    assert Path(accepted.stored_path) == data_dir / "images" / SHOE / f"{first.sha256}.jpg"
    assert Path(accepted.stored_path).is_file() and not Path(first.stored_path).exists()
    rejected = queued.decide(second.sha256[:12], "reject")  # a sha256 prefix works too
    assert rejected.status == "rejected" and rejected.rule == "reviewer"
    assert Path(rejected.stored_path).parent == data_dir / "filter" / "rejected"
    # a change of mind moves the copy back out of the dataset (nothing deleted)
    undone = queued.decide(first.id, "reject")
    assert not Path(accepted.stored_path).exists() and Path(undone.stored_path).is_file()
    assert queued.counts() == {"accepted": 0, "rejected": 2, "review": 1, "purged": 0}


def test_bad_references_and_decisions(queued):
    with pytest.raises(KeyError):
        queued.get(999)
    with pytest.raises(ValueError, match="accept or reject"):
        queued.decide(1, "maybe")


def test_record_is_idempotent(queued):
    item = queued.items("review")[0]
    verdict = {"sha256": item.sha256, "source": item.source, "shoe": "x", "status": "accepted"}
    assert queued.record([verdict], "run") == []
    assert queued.get(item.id).status == "review"


@pytest.mark.parametrize("name, folder", [("a/b", "ab"), ("..", "_unsorted"), ("", "_unsorted"),
                                          ("été 👟", "été 👟")])
def test_shoe_folder_names_stay_inside_the_dataset(name, folder):
    assert safe_shoe_folder(name) == folder


def test_review_cli_list_accept_reject(queued, data_dir):
    from shoefind.cli.main import app
    runner = CliRunner()
    listed = runner.invoke(app, ["review", "--list", "--json"])
    assert listed.exit_code == 0, listed.output
    ids = [i["id"] for i in json.loads(listed.stdout)["items"]]
    assert len(ids) == 3
    done = runner.invoke(app, ["review", "--accept", str(ids[0]), "--reject", str(ids[1]), "--json"])
    assert done.exit_code == 0, done.output
    assert [d["item"]["status"] for d in json.loads(done.stdout)] == ["accepted", "rejected"]
    assert len(list((data_dir / "images" / SHOE).iterdir())) == 1
    missing = runner.invoke(app, ["review", "--accept", "999"])
    assert missing.exit_code == 2 and "no image 999" in " ".join(missing.output.split())


def test_filter_cli_json_and_purge(tmp_path, data_dir):
    from shoefind.cli.main import app
    crawl = tmp_path / "crawl" / SHOE
    inputs.photo(crawl / "ok.jpg", seed=1)
    inputs.empty_file(crawl / "empty.jpg")
    runner = CliRunner()
    out = runner.invoke(app, ["filter", str(crawl.parent), "--model", "none", "--json"])
    assert out.exit_code == 0, out.output
    summary = json.loads(out.stdout)["filter"]
    assert summary["rejected_by_rule"] == {"unreadable": 1} and summary["queued"] == 1
    assert "semantic check off" in summary["semantic"]
    purge = runner.invoke(app, ["filter", str(tmp_path / "nowhere"), "--purge"])
    assert purge.exit_code == 0 and "purged the kept copies of 1" in purge.stdout
    bad = runner.invoke(app, ["filter", str(tmp_path / "nowhere")])
    assert bad.exit_code == 2 and "does not exist" in " ".join(bad.output.split())


def test_accepted_images_are_hashed_once_not_on_every_run(queued, data_dir):
    item = queued.items("review")[0]
    queued.decide(item.id, "accept")
    decoded = []

    def compute(paths):
        decoded.extend(paths)
        return []
    hashes = queued.dataset_hashes(compute)
    assert decoded == [] and [h["sha256"] for h in hashes] == [item.sha256]


def test_references_are_matched_exactly_never_as_patterns(queued):
    item = queued.items("review")[0]
    sha = item.sha256
    # '_' and '%' are SQL LIKE wildcards: a reference holding them matches nothing
    for ref in (sha[:2] + "_" + sha[3:6], sha[:3] + "%", "%", "_" * 8, sha[:4] + "'--"):
        with pytest.raises(KeyError, match="no image"):
            queued.get(ref)
    assert queued.get(sha[:8]).id == item.id and queued.get(sha.upper()).id == item.id


def test_a_batch_reports_every_decision(queued, data_dir):
    from shoefind.cli.main import app
    ids = [i.id for i in queued.items("review")]
    out = CliRunner().invoke(app, ["review", "--accept", str(ids[0]), "--accept", "99999",
                                   "--reject", "a5_3", "--reject", str(ids[1]), "--json"])
    assert out.exit_code == 2
    results = json.loads(out.stdout)
    assert [(r["ref"], r["ok"]) for r in results] == [(str(ids[0]), True), ("99999", False), ("a5_3", False),
                                                       (str(ids[1]), True)]
    assert results[1]["error"].startswith("no image 99999")
    assert queued.get(ids[0]).status == "accepted" and queued.get(ids[1]).status == "rejected"
    assert "99999" in " ".join(out.stderr.split())


def test_an_unreadable_file_cannot_be_accepted(tmp_path, data_dir):
    crawl = tmp_path / "crawl" / SHOE
    inputs.photo(crawl / "ok.jpg", seed=1)
    inputs.empty_file(crawl / "empty.jpg")
    inputs.html_as_jpg(crawl / "page.jpg")
    run_filter(crawl.parent, data_dir, checker=None, rules=CrawlRules(without_model="review"))
    queue = ReviewQueue(data_dir)
    bad = [i for i in queue.items("rejected")]
    assert len(bad) == 2
    results = queue.decide_many([(str(i.id), "accept") for i in bad])
    assert all(r.error and "cannot be accepted" in r.error for r in results)
    assert all(queue.get(i.id).status == "rejected" for i in bad)
    assert not (data_dir / "images").exists() or not any((data_dir / "images").rglob("*.*"))
