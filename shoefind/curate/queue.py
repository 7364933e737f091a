"""The filter's memory: every image seen, its verdict and reasons, and the manual-review queue.

One SQLite file (DATA_DIR/filter/queue.sqlite), keyed by content (sha256), so rerunning a
filter never re-queues an image that was already decided, whatever its file name.
Each image also has one stored copy under the data dir, placed by its status:
accepted -> images/<shoe>/<sha256>.<ext> (the dataset), review -> filter/review/,
rejected -> filter/rejected/ (kept, with its reasons, until purge). Sources are only read.
A person's decision moves that copy and changes the row as one transaction (decisions.py): a
process killed half way is finished by the next open; `review --check` (queue_check.py) repairs
what older versions or hands left behind.

With a trained model (shoefind.registry.triage), each image also carries the shoe its crawl query
was for (`intended`), the model's top guesses with probabilities, the label it suggests and its
margin; a decision may file an image under another shoe (`label`). `informative_order` puts the
waiting images where a person's decision teaches the model most first.
"""
from __future__ import annotations

import contextlib
import difflib
import json
import os
import shutil
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from shoefind.curate.decisions import INTENTS_SCHEMA, Intent, carry_out, decision_lock, finish_pending, recover
from shoefind.errors import UserError
from shoefind.images import ImageError, open_image
from shoefind.settings import DataLayout
from shoefind.walk import open_no_follow

STATUSES = ("accepted", "rejected", "review", "purged")
UNSORTED = "_unsorted"

SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    id INTEGER PRIMARY KEY,
    sha256 TEXT UNIQUE NOT NULL,
    source TEXT NOT NULL,
    shoe TEXT NOT NULL,
    status TEXT NOT NULL,
    rule TEXT,
    reasons TEXT NOT NULL DEFAULT '[]',
    scores TEXT NOT NULL DEFAULT '{}',
    width INTEGER, height INTEGER, format TEXT, file_bytes INTEGER,
    phash TEXT, dhash TEXT, color TEXT,
    duplicate_of TEXT,
    stored_path TEXT,
    decided_by TEXT,
    decision TEXT,
    created_at TEXT NOT NULL,
    decided_at TEXT,
    run_id TEXT,
    intended TEXT,
    guesses TEXT NOT NULL DEFAULT '[]',
    suggested TEXT,
    margin REAL,
    triaged_by TEXT,
    label TEXT
);
CREATE INDEX IF NOT EXISTS images_status ON images(status);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL,
    duplicate_of TEXT,
    seen_at TEXT NOT NULL,
    run_id TEXT
);
CREATE TABLE IF NOT EXISTS dataset_hashes (
    path TEXT PRIMARY KEY,
    size INTEGER, mtime_ns INTEGER, sha256 TEXT,
    phash TEXT, dhash TEXT, color TEXT, pixels INTEGER
);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    started_at TEXT NOT NULL,
    folder TEXT NOT NULL,
    summary TEXT
);
"""


# Columns added after the first release: a queue written by an older version gains them on open.
ADDED_COLUMNS = {"images": {"intended": "TEXT", "guesses": "TEXT NOT NULL DEFAULT '[]'", "suggested": "TEXT",
                            "margin": "REAL", "triaged_by": "TEXT", "label": "TEXT"},
                 "intents": {"label": "TEXT"}}


def _add_columns(db: sqlite3.Connection) -> None:
    for table, columns in ADDED_COLUMNS.items():
        have = {r[1] for r in db.execute(f"PRAGMA table_info({table})")}
        for name, kind in columns.items():
            if name not in have:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def safe_shoe_folder(name: str) -> str:
    """A shoe folder name that stays one folder inside images/ whatever the crawl called it."""
    cleaned = "".join(ch for ch in str(name) if ch not in "/\\\0").strip()
    return cleaned if cleaned not in ("", ".", "..") else UNSORTED


@dataclass
class QueueItem:
    id: int
    sha256: str
    source: str
    shoe: str
    status: str
    rule: str | None
    reasons: list
    scores: dict
    width: int | None
    height: int | None
    format: str | None
    duplicate_of: str | None
    stored_path: str | None
    decided_by: str | None
    decision: str | None
    created_at: str
    decided_at: str | None
    intended: str | None = None       # the shoe (folder) the crawl query was for; None: dropped by hand
    guesses: list = field(default_factory=list)   # the model's top shoes: [{"shoe": folder, "probability": p}]
    suggested: str | None = None      # a shoe the model is sure of, other than the intended one
    margin: float | None = None       # the model's top-1 minus top-2 probability
    triaged_by: str | None = None     # the registry model that scored it
    label: str | None = None          # the shoe a decision filed it under, when not its own folder

    @property
    def folder(self) -> str:
        """The shoe folder its accepted copy lives in."""
        return self.label or self.shoe

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class NotAcceptable(UserError):
    """A decision the queue refuses (an unreadable file cannot be accepted)."""


@dataclass(frozen=True)
class Decision:
    """The outcome of one decision of a batch: the item as now stored, or why not."""
    ref: str
    decision: str
    item: QueueItem | None
    error: str | None

    def as_dict(self) -> dict:
        return {"ref": self.ref, "decision": self.decision, "ok": self.error is None,
                "item": self.item.as_dict() if self.item else None, "error": self.error}


class ReviewQueue:
    def __init__(self, data_dir: str | os.PathLike):
        self.data_dir = Path(data_dir)
        self.root = DataLayout(self.data_dir).filter_dir
        self.root.mkdir(parents=True, exist_ok=True)
        self.path = DataLayout(self.data_dir).filter_queue
        with self.connect() as db:
            db.executescript(SCHEMA + INTENTS_SCHEMA)
            _add_columns(db)
        # decisions a killed process left half done are finished before anything reads the queue
        self.recovered: list[str] = recover(self)

    @contextlib.contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        # One short connection per operation: the review server answers from several threads.
        db = sqlite3.connect(self.path, timeout=30)
        db.row_factory = sqlite3.Row
        try:
            db.execute("PRAGMA journal_mode=WAL")
            with db:
                yield db
        finally:
            db.close()

    # --- where copies live -------------------------------------------------------------
    @property
    def dataset_dir(self) -> Path:
        return DataLayout(self.data_dir).images

    def target_path(self, status: str, sha: str, shoe: str, suffix: str) -> Path | None:
        if status == "accepted":
            return self.dataset_dir / safe_shoe_folder(shoe) / f"{sha}{suffix}"
        if status in ("review", "rejected"):
            return self.root / status / f"{sha}{suffix}"
        return None

    def _place(self, source: Path, target: Path, move: bool) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        if move:
            os.replace(source, target)
            return
        tmp = target.with_name(f".{target.name}.part")
        # never through a symbolic link: a file swapped for a link after the scan must not
        # bring another file's bytes into the data dir
        with os.fdopen(open_no_follow(source), "rb") as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst)
        os.replace(tmp, target)  # a half-copied file never appears under its real name

    # --- reading ----------------------------------------------------------------------
    @staticmethod
    def _item(row: sqlite3.Row) -> QueueItem:
        d = dict(row)
        for k in ("phash", "dhash", "color", "file_bytes", "run_id"):
            d.pop(k, None)
        d["reasons"] = json.loads(d["reasons"] or "[]")
        d["scores"] = json.loads(d["scores"] or "{}")
        d["guesses"] = json.loads(d.get("guesses") or "[]")
        return QueueItem(**d)

    def _rows_by_sha(self, columns: str, shas: Iterable[str]) -> list[sqlite3.Row]:
        """`columns` of the images with these contents, 500 per query (SQLite's bound-parameter limit)."""
        shas = list(dict.fromkeys(shas))
        rows: list[sqlite3.Row] = []
        with self.connect() as db:
            for start in range(0, len(shas), 500):
                chunk = shas[start:start + 500]
                rows += db.execute(f"SELECT {columns} FROM images WHERE sha256 IN ({','.join('?' * len(chunk))})",
                                   chunk).fetchall()
        return rows

    def known_shas(self, shas: Iterable[str]) -> set[str]:
        return {r[0] for r in self._rows_by_sha("sha256", shas)}

    def items(self, status: str | None = None, order: str = "id") -> list[QueueItem]:
        """Images (of one status), in queue order or with order="informative" most informative first."""
        with self.connect() as db:
            if status:
                rows = db.execute("SELECT * FROM images WHERE status=? ORDER BY id", (status,)).fetchall()
            else:
                rows = db.execute("SELECT * FROM images ORDER BY id").fetchall()
        items = [self._item(r) for r in rows]
        if order == "informative":
            return informative_order(items, self.accepted_per_shoe())
        if order != "id":
            raise UserError(f"order must be id or informative, not {order!r}")
        return items

    def items_by_sha(self, shas: Iterable[str]) -> list[QueueItem]:
        """The queue's images with these contents (those it has), in queue order."""
        return sorted((self._item(r) for r in self._rows_by_sha("*", shas)), key=lambda i: i.id)

    def accepted_per_shoe(self) -> dict[str, int]:
        """Photos in each shoe folder of the dataset (whoever put them there)."""
        from shoefind.images import is_image_name
        if not self.dataset_dir.is_dir():
            return {}
        return {p.name: sum(1 for f in p.iterdir() if is_image_name(f) and not f.name.startswith("."))
                for p in self.dataset_dir.iterdir() if p.is_dir() and not p.is_symlink()}

    def get(self, ref: str | int) -> QueueItem:
        """An image by queue id or (a unique prefix of) its sha256 (hex digits only: matched
        exactly, never as a pattern)."""
        text = str(ref).strip().lower()
        with self.connect() as db:
            if isinstance(ref, int) or text.isdigit():
                rows = db.execute("SELECT * FROM images WHERE id=?", (int(text),)).fetchall()
            elif text and all(c in "0123456789abcdef" for c in text) and len(text) <= 64:
                rows = db.execute("SELECT * FROM images WHERE substr(sha256, 1, ?) = ?", (len(text), text)).fetchall()
            else:
                raise KeyError(f"no image {ref} in the review queue: give a queue id or the start of a sha256 "
                               "(hex digits)")
        if not rows:
            raise KeyError(f"no image {ref} in the review queue")
        if len(rows) > 1:
            raise KeyError(f"{ref} matches {len(rows)} images; give more of the sha256")
        return self._item(rows[0])

    def counts(self) -> dict[str, int]:
        with self.connect() as db:
            rows = db.execute("SELECT status, COUNT(*) FROM images GROUP BY status").fetchall()
        return {s: 0 for s in STATUSES} | {r[0]: r[1] for r in rows}

    def pending_hashes(self) -> list[dict]:
        """Images waiting for review, as duplicate candidates for the next batch."""
        with self.connect() as db:
            rows = db.execute("SELECT sha256, phash, dhash, color, width, height, stored_path FROM images "
                              "WHERE status='review' AND phash IS NOT NULL").fetchall()
        return [dict(r) for r in rows]

    # --- writing ----------------------------------------------------------------------
    def record(self, verdicts: list[dict], run_id: str) -> list[str]:
        """Store new verdicts and place each image's copy; returns the shas stored. Known shas
        are left alone.

        A verdict: sha256, source, shoe, status, rule, reasons, scores, width, height, format,
        file_bytes, phash, dhash, color, duplicate_of, suffix.
        """
        known = self.known_shas(v["sha256"] for v in verdicts)
        stored = []
        rows, hashed = [], []
        for v in verdicts:
            if v["sha256"] in known:
                continue
            known.add(v["sha256"])
            # a model sure of another shoe the search listed it for files it there (v["label"])
            label = v.get("label") if v["status"] == "accepted" and v.get("label") != v["shoe"] else None
            target = self.target_path(v["status"], v["sha256"], label or v["shoe"], v.get("suffix", ".bin"))
            if target is not None and not target.exists():
                self._place(Path(v["source"]), target, move=False)
            if target is not None and v["status"] == "accepted" and v.get("phash") is not None:
                hashed.append(self._dataset_row(target, v["sha256"], _hex(v["phash"]), _hex(v["dhash"]),
                                                json.dumps(v.get("color") or []),
                                                (v.get("width") or 0) * (v.get("height") or 0)))
            rows.append((v["sha256"], str(v["source"]), v["shoe"], v["status"], v.get("rule"),
                     json.dumps(v.get("reasons", [])), json.dumps(v.get("scores", {})), v.get("width"),
                     v.get("height"), v.get("format"), v.get("file_bytes"), _hex(v.get("phash")),
                     _hex(v.get("dhash")), json.dumps(v.get("color") or []), v.get("duplicate_of"),
                     str(target) if target else None,
                     None if v["status"] == "review" else v.get("decided_by") or "rules",
                     now(), None if v["status"] == "review" else now(), run_id, v.get("intended"),
                     json.dumps(v.get("guesses") or []), v.get("suggested"), v.get("margin"), v.get("triaged_by"),
                     label))
            stored.append(v["sha256"])
        if rows:
            # copies are placed first, rows written after in one transaction: a crash in between
            # leaves copies without rows, which the next run simply redoes
            with self.connect() as db:
                db.executemany(
                    "INSERT INTO images (sha256, source, shoe, status, rule, reasons, scores, width, height, format,"
                    " file_bytes, phash, dhash, color, duplicate_of, stored_path, decided_by, created_at, decided_at,"
                    " run_id, intended, guesses, suggested, margin, triaged_by, label)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
                # the next run need not decode what it just accepted
                db.executemany("INSERT OR REPLACE INTO dataset_hashes VALUES (?,?,?,?,?,?,?,?)", hashed)
        return stored

    @staticmethod
    def _dataset_row(path: Path, sha: str, phash: str | None, dhash: str | None, color: str, pixels: int) -> tuple:
        st = path.stat()
        return (str(path), st.st_size, st.st_mtime_ns, sha, phash, dhash, color, pixels)

    def record_files(self, files: list[tuple[str, str, str | None]], run_id: str) -> None:
        """(path, sha256, path of the first file with the same content) for every file seen."""
        with self.connect() as db:
            db.executemany("INSERT OR IGNORE INTO files (path, sha256, duplicate_of, seen_at, run_id) "
                           "VALUES (?,?,?,?,?)", [(p, s, d, now(), run_id) for p, s, d in files])

    def decide(self, ref: str | int, decision: str, reviewer: str = "reviewer", label: str | None = None,
               rule: str | None = None) -> QueueItem:
        """A person's accept/reject: stored with the time, and the image's copy moved to match.
        Rejecting removes every copy of the image from the dataset. A transaction (decisions.py):
        a process killed half way leaves nothing that the next open does not finish.

        label: accept it under this shoe folder instead of its own ("suggested": the model's
        suggestion, else its top guess). rule: the rule recorded (default: "reviewer" for a
        rejection, the image's own for an acceptance; a model's decisions give theirs)."""
        if decision not in ("accept", "reject"):
            raise UserError(f"decision must be accept or reject, not {decision!r}")
        if label is not None and decision != "accept":
            raise UserError("a label files an accepted photo under a shoe: give it with accept, not reject")
        with decision_lock(self.root):
            self.recovered += finish_pending(self)
            item = self.get(ref)  # read under the lock: another decision on it has finished
            if item.status == "purged":
                raise UserError(f"image {item.id} was purged; it cannot be decided again")
            folder = self.resolve_label(item, label) if label is not None else None
            if folder == item.shoe:
                folder = None           # its own folder: no label to keep
            status = "accepted" if decision == "accept" else "rejected"
            suffix = Path(item.stored_path).suffix if item.stored_path else ".bin"
            target = self.target_path(status, item.sha256, folder or item.shoe, suffix)
            current = Path(item.stored_path) if item.stored_path else None
            if status == "accepted" and (item.status != "accepted" or folder != item.label):
                self._check_decodes(item, current if current and current.is_file() else Path(item.source))
            carry_out(self, Intent(item.id, item.sha256, status, decision, reviewer, now(),
                                   rule or ("reviewer" if status == "rejected" else item.rule),
                                   item.stored_path, str(target), item.source,
                                   label=folder if status == "accepted" else None))
        return self.get(item.id)

    def resolve_label(self, item: QueueItem, label: str) -> str:
        """The shoe folder a --label names: "suggested" is the model's suggestion (else its top guess);
        any other must be a shoe folder of the dataset or one the model or the crawl named."""
        text = str(label).strip()
        if text.lower() == "suggested":
            named = item.suggested or next((g["shoe"] for g in item.guesses if g.get("shoe")), None)
            if not named:
                raise UserError(f"image {item.id} has no suggested label (no model has scored it); "
                                "give the shoe folder to file it under")
            return named
        known = set(self.accepted_per_shoe()) | {s for s in (item.shoe, item.intended, item.suggested) if s} | \
            {g["shoe"] for g in item.guesses if g.get("shoe")}
        if text in known:
            return text
        close = difflib.get_close_matches(text, sorted(known), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise UserError(f"no shoe '{text}' in the dataset {self.dataset_dir}{hint}: a label is a shoe folder of the "
                        "dataset, one of the model's guesses, or 'suggested'")

    def annotate(self, ref: str | int, guesses: list, suggested: str | None, margin: float | None,
                 triaged_by: str | None, reason: dict | None = None) -> QueueItem:
        """Store a model's view of an image (a newer model scoring a waiting image again)."""
        item = self.get(ref)
        reasons = [r for r in item.reasons if not str(r.get("rule", "")).startswith("triage:")]
        if reason:
            reasons.append(reason)
        with self.connect() as db:
            db.execute("UPDATE images SET guesses=?, suggested=?, margin=?, triaged_by=?, reasons=? WHERE id=?",
                       (json.dumps(guesses), suggested, margin, triaged_by, json.dumps(reasons), item.id))
        return self.get(item.id)

    def mark(self, ref: str | int, rule: str, reason: dict) -> QueueItem:
        """Give a waiting image a new rule and reason (it stays in review, its copy where it is)."""
        item = self.get(ref)
        if item.status != "review":
            raise ValueError(f"image {item.id} is not waiting for review (status {item.status})")
        with self.connect() as db:
            db.execute("UPDATE images SET rule=?, reasons=? WHERE id=? AND status='review'",
                       (rule, json.dumps([*item.reasons, reason]), item.id))
        return self.get(item.id)

    def reopen(self, ref: str | int, rule: str | None = None) -> QueueItem:
        """Undo a decision of a person or a model: the image goes back to the review queue (its copy with
        it), waiting under `rule` (default: the rule it was decided by)."""
        with decision_lock(self.root):
            self.recovered += finish_pending(self)
            item = self.get(ref)
            if item.status not in ("accepted", "rejected") or item.decided_by in (None, "rules"):
                raise ValueError(f"image {item.id} has no decision by a person to undo (status {item.status})")
            suffix = Path(item.stored_path).suffix if item.stored_path else ".bin"
            target = self.target_path("review", item.sha256, item.shoe, suffix)
            carry_out(self, Intent(item.id, item.sha256, "review", None, None, None,
                                   rule or (None if item.rule == "reviewer" else item.rule),
                                   item.stored_path, str(target), item.source, label=None))
        return self.get(item.id)

    def duplicate_path(self, sha256: str) -> Path | None:
        """Where the image with this content lives now (queue copy or dataset file), if anywhere."""
        with self.connect() as db:
            row = db.execute("SELECT stored_path FROM images WHERE sha256=?", (sha256,)).fetchone()
            rows = [row["stored_path"]] if row and row["stored_path"] else []
            rows += [r["path"] for r in db.execute("SELECT path FROM dataset_hashes WHERE sha256=?", (sha256,))]
        return next((Path(p) for p in rows if Path(p).is_file()), None)

    @staticmethod
    def _check_decodes(item: QueueItem, path: Path) -> None:
        """Only a readable image may enter the dataset, whatever a person clicks."""
        if not path.is_file():
            return  # decide() reports the missing file
        try:
            open_image(path)
        except ImageError as exc:
            raise NotAcceptable(f"image {item.id} cannot be accepted: {str(exc).split(': ', 1)[-1]} "
                                "(only a readable image may enter the dataset)") from None

    def decide_many(self, decisions: list[tuple[str, str]], reviewer: str = "reviewer",
                    label: str | None = None) -> list[Decision]:
        """Apply each (ref, accept|reject) on its own; every one's outcome is returned, so a
        bad reference in a batch never hides what was done before or after it. label: every
        accepted one is filed under it (see decide)."""
        out = []
        for ref, decision in decisions:
            try:
                out.append(Decision(ref, decision, self.decide(ref, decision, reviewer,
                                                               label if decision == "accept" else None), None))
            except (KeyError, ValueError, OSError) as exc:
                out.append(Decision(ref, decision, None, str(exc).strip("'\"")))
        return out

    def purge(self) -> int:
        """Delete the kept copies of rejected images; their rows stay so they are never re-queued."""
        count = 0
        for item in self.items("rejected"):
            if item.stored_path and Path(item.stored_path).is_relative_to(self.root):
                Path(item.stored_path).unlink(missing_ok=True)
            with self.connect() as db:
                db.execute("UPDATE images SET status='purged', stored_path=NULL WHERE id=?", (item.id,))
            count += 1
        return count

    def save_run(self, run_id: str, folder: str, summary: dict) -> None:
        with self.connect() as db:
            db.execute("INSERT OR REPLACE INTO runs (id, started_at, folder, summary) VALUES (?,?,?,?)",
                       (run_id, now(), folder, json.dumps(summary, default=str)))

    # --- hashes of the dataset, for duplicate checks across runs ----------------------
    def dataset_hashes(self, compute) -> list[dict]:
        """pHash/dHash of every image under images/, computed only for new or changed files.

        compute(paths) -> list of ImageCheck-like objects (sha256, phash, dhash, color, pixels).
        """
        from shoefind.images import is_image_name
        from shoefind.walk import list_files
        # links are not followed (a dataset's link may point anywhere, or at a FIFO)
        files = [p for p in list_files(self.dataset_dir).files if is_image_name(p)
                 and not p.name.startswith(".")] if self.dataset_dir.is_dir() else []
        with self.connect() as db:
            have = {r["path"]: dict(r) for r in db.execute("SELECT * FROM dataset_hashes")}
        stale = [p for p in files if (st := p.stat()) and (str(p) not in have or have[str(p)]["size"] != st.st_size
                                                           or have[str(p)]["mtime_ns"] != st.st_mtime_ns)]
        if stale:
            rows = []
            for p, check in zip(stale, compute(stale)):
                st = p.stat()
                rows.append((str(p), st.st_size, st.st_mtime_ns, check.sha256, _hex(check.phash), _hex(check.dhash),
                             json.dumps(check.color or []), check.pixels))
            with self.connect() as db:
                db.executemany("INSERT OR REPLACE INTO dataset_hashes VALUES (?,?,?,?,?,?,?,?)", rows)
                have.update({r[0]: dict(zip(("path", "size", "mtime_ns", "sha256", "phash", "dhash", "color",
                                             "pixels"), r)) for r in rows})
        present = {str(p) for p in files}
        return [h for path, h in have.items() if path in present and h["phash"]]


def informative_order(items: list[QueueItem], accepted: dict[str, int]) -> list[QueueItem]:
    """Most informative first: where the model is least sure (smallest margin; an image no model has
    scored counts as unsure), weighted up for shoes with the fewest accepted photos (a photo of a shoe
    with 3 photos teaches more than one of a shoe with 300). Ties keep queue order."""
    counts = [n for n in accepted.values() if n > 0]
    typical = float(np.median(counts)) if counts else 1.0

    def need(item: QueueItem) -> float:
        uncertain = 1.0 - (item.margin if item.margin is not None else 0.0)
        shoe = item.label or item.intended or item.shoe or item.suggested or \
            next((g["shoe"] for g in item.guesses if g.get("shoe")), "")
        return uncertain * ((typical + 1.0) / (accepted.get(shoe, 0) + 1.0)) ** 0.5

    return sorted(items, key=lambda i: (-need(i), i.id))


def _hex(value: int | None) -> str | None:
    # SQLite integers are signed 64-bit; a 64-bit hash is stored as 16 hex digits.
    return None if value is None else f"{int(value):016x}"


def from_hex(value: str | None) -> int | None:
    return None if value is None else int(value, 16)
