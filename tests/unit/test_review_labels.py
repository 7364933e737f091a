"""The review queue spends a person's time well: items carry the shoe they were crawled for and the model's
guesses; the waiting ones come most informative first; a decision can file a photo under the suggested or
another shoe (`review --accept ID --label SHOE`), through the decision transactions; a queue written by an
older version gains the new columns when opened."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from shoefind.curate.queue import ReviewQueue, informative_order
from shoefind.errors import UserError
from tests.helpers import make_photo
from tests.helpers.cli import shoefind_here
from tests.helpers.review_queue import _verdict

RED, BLUE, GREEN = ("Nike_High_Red_Plain Sole_Air Test", "Nike_Low_Blue_Plain Sole_Dunk Test",
                    "Vans_Low_Green_Rubber Sole_Old Test")


def _queue(data_dir: Path, crawl: Path) -> ReviewQueue:
    """Four waiting photos crawled for RED: the model's margins differ, one has a suggestion."""
    queue = ReviewQueue(data_dir)
    for shoe in (RED, BLUE, GREEN):              # the dataset: RED has many photos, GREEN one
        for j in range({RED: 6, BLUE: 3, GREEN: 1}[shoe]):
            make_photo(data_dir / "images" / shoe / f"own {j}.jpg", seed=100 + j)
    rows = []
    for i, (margin, guesses, suggested, shoe) in enumerate([
            (0.9, [(RED, 0.93), (BLUE, 0.03)], None, RED),
            (0.1, [(RED, 0.5), (BLUE, 0.4)], None, RED),
            (0.95, [(BLUE, 0.96), (RED, 0.01)], BLUE, RED),
            (0.1, [(GREEN, 0.5), (RED, 0.4)], None, GREEN)]):
        path = make_photo(crawl / shoe / f"photo {i}.jpg", color=(40 * i, 90, 200 - 40 * i), seed=i)
        v = _verdict(path, shoe, [{"rule": "triage:unsure", "reason": "test"}], {})
        v |= {"intended": shoe, "guesses": [{"shoe": s, "probability": p} for s, p in guesses],
              "suggested": suggested, "margin": margin, "triaged_by": "m0001"}
        rows.append(v)
    queue.record(rows, run_id="test")
    return queue


def test_waiting_photos_come_most_informative_first(data_dir, tmp_path):
    queue = _queue(data_dir, tmp_path / "crawl")
    order = [Path(i.source).name for i in queue.items("review", order="informative")]
    # smallest margin first; of two equally unsure, the shoe with fewer photos (GREEN: 1) first
    assert order == ["photo 3.jpg", "photo 1.jpg", "photo 0.jpg", "photo 2.jpg"]
    assert [Path(i.source).name for i in queue.items("review")] == [f"photo {i}.jpg" for i in range(4)]
    item = queue.items("review")[2]
    assert (item.intended, item.suggested, item.guesses[0]) == (RED, BLUE, {"shoe": BLUE, "probability": 0.96})
    # nothing scored yet: the shoes with the fewest photos first, then queue order
    bare = [item.__class__(**(item.as_dict() | {"id": n, "margin": None, "guesses": [], "intended": shoe}))
            for n, shoe in enumerate([RED, GREEN, BLUE])]
    assert [i.intended for i in informative_order(bare, queue.accepted_per_shoe())] == [GREEN, BLUE, RED]


def test_a_decision_files_a_photo_under_the_suggested_or_another_shoe(data_dir, tmp_path):
    queue = _queue(data_dir, tmp_path / "crawl")
    suggested, other, plain = (queue.items("review")[i] for i in (2, 1, 0))
    done = queue.decide(suggested.id, "accept", label="suggested")
    assert (done.status, done.folder, done.label, done.shoe) == ("accepted", BLUE, BLUE, RED)
    assert (data_dir / "images" / BLUE / f"{done.sha256}.jpg").is_file()
    assert not (data_dir / "images" / RED / f"{done.sha256}.jpg").exists()
    # undo puts it back in the queue, unlabeled; its copy leaves the dataset
    back = queue.reopen(done.id)
    assert (back.status, back.label) == ("review", None) and not list((data_dir / "images").rglob(f"{done.sha256}*"))
    assert queue.decide(other.id, "accept", label=GREEN).folder == GREEN
    assert queue.decide(plain.id, "accept").folder == RED
    with pytest.raises(UserError, match="no shoe 'Nike_High_Red_Plain Sole_Air Tset'.*did you mean"):
        queue.decide(suggested.id, "accept", label="Nike_High_Red_Plain Sole_Air Tset")
    with pytest.raises(UserError, match="give it with accept"):
        queue.decide(suggested.id, "reject", label=BLUE)
    assert queue.get(suggested.id).status == "review"       # a refused decision changes nothing


def test_review_cli_label_and_its_errors(data_dir, tmp_path, capfd):
    queue = _queue(data_dir, tmp_path / "crawl")
    target = queue.items("review")[1]
    code, out, err = shoefind_here(capfd, "review", "--accept", target.id, "--label", GREEN, "--data-dir", data_dir)
    assert code == 0 and f"{target.id} accepted" in out and GREEN in out, err
    code, out, err = shoefind_here(capfd, "review", "--reject", queue.items("review")[0].id, "--label", GREEN,
                                   "--data-dir", data_dir)
    assert code == 2 and err.count("error:") == 1 and "--label" in err
    assert queue.items("review")[0].status == "review"
    code, out, err = shoefind_here(capfd, "review", "--accept", queue.items("review")[0].id, "--label", "Nope",
                                   "--data-dir", data_dir)
    assert code == 2 and "no shoe 'Nope'" in err
    code, out, err = shoefind_here(capfd, "review", "--list", "--data-dir", data_dir)
    assert code == 0 and "model:" in out and f"{BLUE} 0.96" in out


def test_a_queue_of_an_older_version_gains_the_new_columns(data_dir, tmp_path):
    root = data_dir / "filter"
    root.mkdir(parents=True)
    with sqlite3.connect(root / "queue.sqlite") as db:     # the schema before triage
        db.executescript("""CREATE TABLE images (id INTEGER PRIMARY KEY, sha256 TEXT UNIQUE NOT NULL, source TEXT
            NOT NULL, shoe TEXT NOT NULL, status TEXT NOT NULL, rule TEXT, reasons TEXT NOT NULL DEFAULT '[]',
            scores TEXT NOT NULL DEFAULT '{}', width INTEGER, height INTEGER, format TEXT, file_bytes INTEGER,
            phash TEXT, dhash TEXT, color TEXT, duplicate_of TEXT, stored_path TEXT, decided_by TEXT, decision TEXT,
            created_at TEXT NOT NULL, decided_at TEXT, run_id TEXT);
            CREATE TABLE intents (id INTEGER PRIMARY KEY, image_id INTEGER NOT NULL, sha256 TEXT NOT NULL,
            status TEXT NOT NULL, decision TEXT, decided_by TEXT, decided_at TEXT, rule TEXT, from_path TEXT,
            to_path TEXT NOT NULL, source TEXT NOT NULL);""")
        photo = make_photo(tmp_path / "old.jpg")
        db.execute("INSERT INTO images (sha256, source, shoe, status, created_at, stored_path) VALUES "
                   "('ab12', ?, ?, 'review', 'then', ?)", (str(photo), RED, str(photo)))
    (data_dir / "images" / BLUE).mkdir(parents=True)
    queue = ReviewQueue(data_dir)
    item = queue.get("ab12")
    assert (item.guesses, item.intended, item.label) == ([], None, None)
    assert queue.decide(item.id, "accept", label=BLUE).folder == BLUE
    assert json.loads(json.dumps(queue.get(item.id).as_dict()))["label"] == BLUE
