"""kill -9 of `shoefind review --accept/--reject` at every step of a decision, in a real process.

SHOEFIND_CRASH_AT makes the process SIGKILL itself at a named step (shoefind/faults.py): before a
file moves (the intent is written), between the move and the dataset clean-up, before the commit,
after it. Whatever the point, the next command leaves queue and dataset consistent: every row's copy
where its status says, no orphan, and no photo that is not accepted under images/.
"""
from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from shoefind.curate.crawl_checks import CrawlRules
from shoefind.curate.filter import run_filter
from shoefind.curate.queue import ReviewQueue
from tests.helpers import filter_inputs as inputs
from tests.helpers.cli import shoefind

SHOE = "Vans_Low_Black_Plain Sole_Old Skool"


@pytest.fixture
def queued(tmp_path, data_dir) -> list[int]:
    crawl = tmp_path / "crawl" / SHOE
    for i in range(4):
        inputs.photo(crawl / f"p{i}.jpg", color=(40 * i + 30, 160 - 30 * i, 60), seed=i)
    run_filter(crawl.parent, data_dir, checker=None, rules=CrawlRules(without_model="review"))
    return [i.id for i in ReviewQueue(data_dir).items("review")]


def run(data_dir: Path, *args, crash_at: str | None = None):
    env = dict(os.environ, SHOEFIND_DATA=str(data_dir), PYTHONPATH=os.environ.get("PYTHONPATH", ""))
    env.pop("SHOEFIND_CRASH_AT", None)
    if crash_at:
        env["SHOEFIND_CRASH_AT"] = crash_at
    return shoefind("review", *args, env=env, timeout=120)


def assert_consistent(data_dir: Path) -> dict[int, str]:
    """Every row's copy is where its status says; nothing else is in the queue's folders or in
    images/; returns each image's status."""
    queue = ReviewQueue(data_dir)
    items = queue.items()
    claimed = set()
    for item in items:
        stored = Path(item.stored_path)
        assert stored.is_file(), f"image {item.id} ({item.status}): copy missing at {stored}"
        assert stored == queue.target_path(item.status, item.sha256, item.shoe, stored.suffix)
        claimed.add(stored)
    on_disk = {p for folder in ("images", "filter/review", "filter/rejected")
               for p in (data_dir / folder).rglob("*") if p.is_file()}
    assert on_disk == claimed, f"orphans: {sorted(map(str, on_disk - claimed))}"
    accepted_shas = {i.sha256 for i in items if i.status == "accepted"}
    assert {p.stem for p in on_disk if p.is_relative_to(data_dir / "images")} == accepted_shas
    return {i.id: i.status for i in items}


# (crash point, how many of the three accepts stand after the next command): a decision whose
# intent was written ahead is carried out, the ones after it never started
ACCEPT_CRASHES = [
    ("decide:intent@1", 1),     # intent of the first written, nothing moved yet
    ("decide:intent@2", 2),     # one file landed and committed; the second's intent written, not moved
    ("decide:moved@2", 2),      # the second file moved into images/, its row not yet committed
    ("decide:cleaned@3", 3),    # the third moved, before commit
    ("decide:committed@3", 3),  # everything done, killed before exit
]


@pytest.mark.parametrize("crash_at, done", ACCEPT_CRASHES)
def test_a_killed_accept_is_finished_by_the_next_command(queued, data_dir, crash_at, done):
    ids = queued
    code, _, err = run(data_dir, "--accept", ids[0], "--accept", ids[1], "--accept", ids[2], crash_at=crash_at)
    assert code == -signal.SIGKILL, err
    # the next command, whatever it is, finishes what was written ahead
    code, out, err = run(data_dir, "--list", "--status", "all", "--json")
    assert code == 0, err
    if not crash_at.startswith("decide:committed"):
        assert "an interrupted decision was finished" in err
    statuses = assert_consistent(data_dir)
    assert [statuses[i] for i in ids[:3]] == ["accepted"] * done + ["review"] * (3 - done)
    assert statuses[ids[3]] == "review"
    # rejecting them now leaves no copy of any in the dataset; the check then finds nothing
    code, _, err = run(data_dir, *[a for i in ids[:3] for a in ("--reject", i)])
    assert code == 0, err
    statuses = assert_consistent(data_dir)
    assert not any((data_dir / "images").rglob("*.jpg"))
    code, out, err = run(data_dir, "--check", "--json")
    assert code == 0 and json.loads(out)["findings"] == [], out + err


@pytest.mark.parametrize("crash_at", ["decide:intent@2", "decide:moved@2", "decide:cleaned@2"])
def test_a_killed_reject_of_an_accepted_photo_leaves_the_dataset(queued, data_dir, crash_at):
    ids = queued
    assert run(data_dir, "--accept", ids[0], "--accept", ids[1])[0] == 0
    code, _, err = run(data_dir, "--reject", ids[0], "--reject", ids[1], crash_at=crash_at)
    assert code == -signal.SIGKILL, err
    code, out, err = run(data_dir, "--check", "--json")
    assert code == 0 and json.loads(out)["findings"] == [], out + err  # recovery left nothing to repair
    statuses = assert_consistent(data_dir)
    assert statuses[ids[0]] == "rejected" and statuses[ids[1]] == "rejected"


def test_a_crash_of_a_version_without_the_log_is_repaired_by_check(queued, data_dir):
    """The state the issue found (file in images/, row still 'review', review copy gone)."""
    queue = ReviewQueue(data_dir)
    item = queue.get(queued[0])
    landed = queue.target_path("accepted", item.sha256, item.shoe, ".jpg")
    landed.parent.mkdir(parents=True)
    os.replace(item.stored_path, landed)
    code, out, err = run(data_dir, "--check")
    assert code == 0, out + err
    assert assert_consistent(data_dir)[item.id] == "review"
    code, _, err = run(data_dir, "--reject", item.id)
    assert code == 0, err
    assert assert_consistent(data_dir)[item.id] == "rejected" and not landed.exists()


def test_a_long_lived_queue_finishes_a_dead_processs_decision_before_its_own(queued, data_dir):
    """The review page keeps one queue open for hours: a `review --accept` killed meanwhile must not
    come back later and undo what the page decided on the same photo."""
    page = ReviewQueue(data_dir)                 # opened before the crash, as the page's server is
    code, _, err = run(data_dir, "--accept", queued[0], crash_at="decide:moved@1")
    assert code == -signal.SIGKILL, err
    rejected = page.decide(queued[0], "reject")
    assert rejected.status == "rejected" and any("finished" in note for note in page.recovered)
    assert assert_consistent(data_dir)[queued[0]] == "rejected"
    assert run(data_dir, "--list")[0] == 0       # a later open has nothing left to replay
    assert assert_consistent(data_dir)[queued[0]] == "rejected"
