"""A review decision as a transaction: the intent is written ahead, then the file moves, then commit.

A person's accept / reject / undo changes two things that cannot change together: a row of the
queue database and where the image's one stored copy lives (images/<shoe>/ is the dataset,
filter/review and filter/rejected are not). So every decision is three steps:

1. the intent (image, new status, from where to where) is committed to the `intents` table;
2. the copy is moved (os.replace, atomic on one file system) and, unless the image is accepted,
   every other copy of its content is removed from the dataset;
3. the row is updated and the intent deleted, in one SQLite transaction.

Each step can be redone, so a process killed anywhere leaves an intent that the next queue open
finishes (`recover`): the decision was asked for and written down, so it is carried out. Only an
intent whose image has no copy left anywhere is rolled back. One file lock serialises decisions and
recovery across processes and threads (the kernel drops it when its holder dies), so recovery never
touches a decision that a live process is still making.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import stat
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

from shoefind.errors import PathNotFound
from shoefind.faults import crash_point
from shoefind.walk import open_no_follow

# The functions take the ReviewQueue (shoefind.curate.queue) that calls them; not imported here, so the
# queue module stays the one that imports this one.

INTENTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS intents (
    id INTEGER PRIMARY KEY,
    image_id INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    status TEXT NOT NULL,
    decision TEXT,
    decided_by TEXT,
    decided_at TEXT,
    rule TEXT,
    from_path TEXT,
    to_path TEXT NOT NULL,
    source TEXT NOT NULL,
    label TEXT
);
"""
FIELDS = ("image_id", "sha256", "status", "decision", "decided_by", "decided_at", "rule", "from_path", "to_path",
          "source", "label")


@dataclass(frozen=True)
class Intent:
    """What one decision will leave behind: the row's new fields and where the copy goes."""
    image_id: int
    sha256: str
    status: str
    decision: str | None
    decided_by: str | None
    decided_at: str | None
    rule: str | None
    from_path: str | None
    to_path: str
    source: str
    id: int | None = None
    label: str | None = None       # the shoe folder it is filed under, when not its own


@contextlib.contextmanager
def decision_lock(root: Path) -> Iterator[None]:
    """One decision (or one recovery, or one check) at a time, across processes and threads: flock
    is held per open file, and released by the kernel when its process dies, even by SIGKILL."""
    with open(root / "decisions.lock", "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def carry_out(queue: "ReviewQueue", intent: Intent) -> None:
    """Write ahead, move, commit. The caller holds decision_lock."""
    with queue.connect() as db:
        cur = db.execute(f"INSERT INTO intents ({', '.join(FIELDS)}) VALUES ({','.join('?' * len(FIELDS))})",
                         tuple(getattr(intent, f) for f in FIELDS))
    intent = replace(intent, id=cur.lastrowid)
    crash_point("decide:intent")
    try:
        _move(queue, intent)
    except BaseException:
        # nothing moved (the copy is where it was, or nowhere): the decision did not happen
        _forget(queue, intent)
        raise
    crash_point("decide:moved")
    _leave_dataset(queue, intent)
    crash_point("decide:cleaned")
    _commit(queue, intent)
    crash_point("decide:committed")


def recover(queue: "ReviewQueue") -> list[str]:
    """Finish every decision a killed process left half done; one line per decision, saying what."""
    with queue.connect() as db:
        if not db.execute("SELECT 1 FROM intents LIMIT 1").fetchone():
            return []
    with decision_lock(queue.root):
        return finish_pending(queue)


def finish_pending(queue: "ReviewQueue") -> list[str]:
    """recover() for a caller that holds decision_lock: every intent left is a dead process's.
    A decision runs it first too, so a long-lived process (the review page) never decides on top
    of an older decision another process left half done."""
    notes = []
    for intent in pending(queue):
        try:
            _move(queue, intent)
        except PathNotFound as exc:
            _forget(queue, intent)
            notes.append(f"an interrupted decision was rolled back: {exc}")
            continue
        _leave_dataset(queue, intent)
        _commit(queue, intent)
        notes.append(f"an interrupted decision was finished: image {intent.image_id} {intent.status}")
    return notes


def pending(queue: "ReviewQueue") -> list[Intent]:
    with queue.connect() as db:
        rows = db.execute(f"SELECT id, {', '.join(FIELDS)} FROM intents ORDER BY id").fetchall()
    return [Intent(**dict(r)) for r in rows]


def _forget(queue: "ReviewQueue", intent: Intent) -> None:
    with queue.connect() as db:
        db.execute("DELETE FROM intents WHERE id=?", (intent.id,))


def _move(queue: "ReviewQueue", intent: Intent) -> None:
    """Put the image's copy at to_path; safe to run again after a crash at any point."""
    to = Path(intent.to_path)
    to.with_name(f".{to.name}.part").unlink(missing_ok=True)  # a copy cut short
    frm = Path(intent.from_path) if intent.from_path else None
    if frm is not None and frm != to and is_regular(frm):
        queue._place(frm, to, move=True)
        return
    if is_regular(to):
        return  # moved before a crash, or already there
    # the stored copy is gone (a crash of a version without this log): another copy, else the source
    for copy in dataset_copies(queue, intent.sha256, every=intent.status == "rejected"):
        queue._place(copy, to, move=True)
        return
    source = Path(intent.source)
    if content_sha256(source) == intent.sha256:
        queue._place(source, to, move=False)
        return
    raise PathNotFound(f"image {intent.image_id}: neither its stored copy {frm} nor its source {source} "
                       "exists any more")


def _leave_dataset(queue: "ReviewQueue", intent: Intent) -> None:
    """An image not accepted has no copy in the dataset: it would be trained on. A rejected one
    loses every copy of its content; one sent back to review, the copies the queue made."""
    if intent.status == "accepted":
        return
    for copy in dataset_copies(queue, intent.sha256, every=intent.status == "rejected"):
        copy.unlink(missing_ok=True)


def _commit(queue: "ReviewQueue", intent: Intent) -> None:
    to = Path(intent.to_path)
    with queue.connect() as db:
        db.execute("UPDATE images SET status=?, decision=?, decided_by=?, decided_at=?, stored_path=?, rule=?, "
                   "label=? WHERE id=?", (intent.status, intent.decision, intent.decided_by, intent.decided_at,
                                          str(to), intent.rule, intent.label, intent.image_id))
        if intent.from_path and intent.from_path != intent.to_path:
            db.execute("DELETE FROM dataset_hashes WHERE path=?", (intent.from_path,))
        if intent.status != "accepted":
            # rows of the copies just removed (a row of a file still there is refreshed by its next scan)
            db.execute("DELETE FROM dataset_hashes WHERE sha256=?", (intent.sha256,))
        else:
            h = db.execute("SELECT phash, dhash, color, width, height FROM images WHERE id=?",
                           (intent.image_id,)).fetchone()
            if h and h["phash"]:
                db.execute("INSERT OR REPLACE INTO dataset_hashes VALUES (?,?,?,?,?,?,?,?)",
                           queue._dataset_row(to, intent.sha256, h["phash"], h["dhash"], h["color"],
                                              (h["width"] or 0) * (h["height"] or 0)))
        db.execute("DELETE FROM intents WHERE id=?", (intent.id,))


# --- copies of one content in the dataset ---------------------------------------------------
def dataset_copies(queue: "ReviewQueue", sha: str, every: bool = False) -> list[Path]:
    """Files under images/ holding this content, each one's bytes checked: those the queue named
    after it (any shoe folder, any suffix), and with every=True also the dataset's own photos of
    the same content (which only a person's rejection removes)."""
    root = queue.dataset_dir
    if not root.is_dir():
        return []
    names = list(root.glob(f"*/{sha}.*")) if all(c in "0123456789abcdef" for c in sha) else []
    if every:
        with queue.connect() as db:
            names += [Path(r[0]) for r in db.execute("SELECT path FROM dataset_hashes WHERE sha256=?", (sha,))]
    return [p for p in dict.fromkeys(names) if p.is_relative_to(root) and content_sha256(p) == sha]


def is_regular(path: Path) -> bool:
    """A plain file, not a link to one (a link's target may be anywhere), nor a FIFO."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def content_sha256(path: Path) -> str | None:
    """sha256 of a plain file's bytes; None for anything else or when it cannot be read."""
    h = hashlib.sha256()
    try:
        with os.fdopen(open_no_follow(path), "rb") as fh:
            while block := fh.read(1 << 20):
                h.update(block)
    except OSError:
        return None
    return h.hexdigest()
