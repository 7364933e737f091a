"""Review decisions as transactions: a rejected photo leaves the dataset whatever state a crash left,
and `review --check` finds and repairs orphan and missing copies (the kill -9 runs are in
tests/e2e/test_review_crash.py)."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shoefind.curate.crawl_checks import CrawlRules
from shoefind.curate.filter import run_filter
from shoefind.curate.queue import ReviewQueue
from tests.helpers import filter_inputs as inputs

SHOE = "Vans_Low_Black_Plain Sole_Old Skool"


@pytest.fixture
def queued(tmp_path, data_dir) -> ReviewQueue:
    crawl = tmp_path / "crawl" / SHOE
    for i, colour in enumerate([(200, 30, 30), (30, 160, 60), (40, 40, 200), (200, 200, 40)]):
        inputs.photo(crawl / f"p{i}.jpg", color=colour, seed=i)
    run_filter(crawl.parent, data_dir, checker=None, rules=CrawlRules(without_model="review"))
    return ReviewQueue(data_dir)


def dataset_files(data_dir: Path) -> list[Path]:
    images = data_dir / "images"
    return sorted(p for p in images.rglob("*") if p.is_file()) if images.is_dir() else []


def old_crash(queue: ReviewQueue, item) -> Path:
    """What a kill -9 of `review --accept` did before decisions were logged: the file landed in
    images/<shoe>/, the row still says review, the review copy is gone."""
    landed = queue.target_path("accepted", item.sha256, item.shoe, ".jpg")
    landed.parent.mkdir(parents=True, exist_ok=True)
    os.replace(item.stored_path, landed)
    return landed


def review_cli(*args):
    from shoefind.cli.main import app
    return CliRunner().invoke(app, ["review", *map(str, args)])


def test_rejecting_after_an_old_crash_leaves_no_copy_in_the_dataset(queued, data_dir):
    item = queued.items("review")[0]
    landed = old_crash(queued, item)
    rejected = queued.decide(item.id, "reject")
    assert rejected.status == "rejected" and Path(rejected.stored_path).is_file()
    assert not landed.exists() and dataset_files(data_dir) == []


def test_accepting_after_an_old_crash_keeps_the_landed_file(queued, data_dir):
    item = queued.items("review")[0]
    landed = old_crash(queued, item)
    accepted = queued.decide(item.id, "accept")
    assert Path(accepted.stored_path) == landed and dataset_files(data_dir) == [landed]


def test_rejecting_removes_every_copy_of_the_content_from_the_dataset(queued, data_dir):
    first, second = queued.items("review")[:2]
    queued.decide(first.id, "accept")
    queued.decide(second.id, "accept")
    # the same photo also filed by hand under another name and another shoe
    by_hand = data_dir / "images" / "Other_Shoe" / "my copy.jpg"
    by_hand.parent.mkdir(parents=True)
    shutil.copyfile(queued.get(first.id).stored_path, by_hand)
    queued.dataset_hashes(lambda paths: [_check(p) for p in paths])  # the dataset's hashes know it
    queued.decide(first.id, "reject")
    assert dataset_files(data_dir) == [Path(queued.get(second.id).stored_path)]


def _check(path):
    from shoefind.curate.crawl_checks import check_file
    return check_file(path, CrawlRules())


def test_check_puts_an_old_crash_back_in_review_and_is_then_clean(queued, data_dir):
    item = queued.items("review")[0]
    landed = old_crash(queued, item)
    out = review_cli("--check")
    assert out.exit_code == 0, out.output
    assert "missing copy image" in out.stdout and "1 problems, 1 repaired" in out.stdout
    assert not landed.exists() and Path(queued.get(item.id).stored_path).is_file()
    assert queued.get(item.id).status == "review" and dataset_files(data_dir) == []
    again = review_cli("--check", "--json")
    assert json.loads(again.stdout)["findings"] == []


def test_check_removes_rejected_photos_from_the_dataset_and_leaves_the_users_own(queued, data_dir, tmp_path):
    first, second, third, _ = queued.items("review")
    queued.decide(first.id, "reject")
    queued.decide(second.id, "accept")
    # a rejected photo copied back into the dataset under the queue's name and under another
    named = queued.target_path("accepted", first.sha256, first.shoe, ".jpg")
    shutil.copyfile(queued.get(first.id).stored_path, named)
    other = data_dir / "images" / "Some_Shoe" / "renamed.jpg"
    other.parent.mkdir(parents=True)
    shutil.copyfile(queued.get(first.id).stored_path, other)
    queued.dataset_hashes(lambda paths: [_check(p) for p in paths])
    # the user's own photo, which a crawled copy duplicated: the rule rejected the crawled copy, not this
    own = data_dir / "images" / SHOE / "mine.jpg"
    inputs.photo(own, color=(90, 90, 90), seed=77)
    crawl2 = tmp_path / "crawl2" / SHOE
    crawl2.mkdir(parents=True)
    shutil.copyfile(own, crawl2 / "dup.jpg")
    run_filter(crawl2.parent, data_dir, checker=None, rules=CrawlRules(without_model="review"))
    dup = [i for i in queued.items("rejected") if i.rule == "exact_duplicate"]
    assert len(dup) == 1
    # a waiting image's review copy dropped into the dataset
    stray = data_dir / "images" / "Some_Shoe" / f"{third.sha256}.jpg"
    shutil.copyfile(third.stored_path, stray)
    out = review_cli("--check", "--json")
    assert out.exit_code == 0, out.output
    report = json.loads(out.stdout)
    removed = sorted(f["path"] for f in report["findings"] if f["kind"] == "orphan")
    assert removed == sorted([str(named), str(other), str(stray)])
    assert sorted(dataset_files(data_dir)) == sorted([Path(queued.get(second.id).stored_path), own])
    assert Path(third.stored_path).is_file()


def test_check_restores_missing_copies_from_the_source_or_says_what_it_cannot(queued, data_dir):
    first, second, third, fourth = queued.items("review")
    queued.decide(second.id, "reject")
    queued.decide(third.id, "accept")
    Path(first.stored_path).unlink()              # source still there: copied again
    Path(queued.get(second.id).stored_path).unlink()
    Path(second.source).unlink()                  # a rejected image with no copy: purged
    Path(queued.get(third.id).stored_path).unlink()
    Path(third.source).write_bytes(b"changed")    # an accepted one with no copy: a person decides
    leftover = data_dir / "filter" / "review" / ".abc.jpg.part"
    leftover.write_bytes(b"half")
    stray = data_dir / "filter" / "review" / ("0" * 64 + ".jpg")
    stray.write_bytes(b"no row")
    out = review_cli("--check")
    assert out.exit_code == 2
    assert Path(queued.get(first.id).stored_path).is_file()
    assert queued.get(second.id).status == "purged"
    assert f"NOT repaired missing copy image {third.id}" in out.stdout
    assert "need a person" in " ".join(out.output.split())
    assert not leftover.exists() and not stray.exists()
    assert Path(fourth.stored_path).is_file()
