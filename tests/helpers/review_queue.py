"""A review queue filled with many generated items (long names, odd folders, a duplicate pair,
scores), written straight through ReviewQueue.record: cheap enough for browser tests."""
from __future__ import annotations

import hashlib
from pathlib import Path

from shoefind.curate.queue import ReviewQueue
from tests.helpers import make_photo

GOOD_FOLDER = "Converse_High_Green_Plain Sole_Chuck 70 Midnight Clover"
ODD_FOLDER = "some random folder"
LONG_NAME = "a-very-long-file-name-without-any-spaces-copied-from-a-shop-" + "x" * 120 + ".jpg"


def _verdict(path: Path, shoe: str, reasons: list[dict], scores: dict, duplicate_of: str | None = None) -> dict:
    data = path.read_bytes()
    return {"sha256": hashlib.sha256(data).hexdigest(), "source": str(path), "shoe": shoe, "status": "review",
            "rule": reasons[0]["rule"] if reasons else None, "reasons": reasons, "scores": scores, "width": 120,
            "height": 90, "format": "JPEG", "file_bytes": len(data), "phash": None, "dhash": None, "color": [],
            "duplicate_of": duplicate_of, "suffix": ".jpg"}


def fill_queue(data_dir: Path, crawl: Path, n: int = 60) -> ReviewQueue:
    """n items waiting for review: every 3rd in a folder not following the naming rule, one with a
    very long file name, one possible duplicate of another, scores that differ per item."""
    queue = ReviewQueue(data_dir)
    verdicts = []
    for i in range(n):
        shoe = ODD_FOLDER if i % 3 == 2 else GOOD_FOLDER
        name = LONG_NAME if i == 1 else f"photo {i:03d}.jpg"
        path = make_photo(crawl / shoe / name, color=(20 + 3 * i, 200 - 2 * i, 90), size=(120, 90), seed=i)
        rule = "low_confidence" if i % 2 else "semantic:skipped"
        verdicts.append(_verdict(path, shoe, [{"rule": rule, "reason": f"generated item {i}"}],
                                 {"shoe": round((i * 37 % 100) / 100, 2), "other": round(1 - (i * 37 % 100) / 100, 2)}))
    original = verdicts[0]
    twin = make_photo(crawl / GOOD_FOLDER / "photo 000 copy.jpg", color=(20, 200, 90), size=(120, 90), seed=1000)
    verdicts.append(_verdict(twin, GOOD_FOLDER, [{"rule": "possible_duplicate",
                                                  "reason": f"possibly the same photo as {original['source']}"}],
                             {"shoe": 0.5, "other": 0.5}, duplicate_of=original["sha256"]))
    queue.record(verdicts, run_id="generated")
    return queue
