"""`shoefind review --check`: the queue database and the files on disk agree, or are made to.

Two kinds of disagreement, each repaired where it can be:
- a missing copy: a row whose stored copy is gone. Another file with the same content (an orphan,
  found below) or the source, when its bytes still match, is put where the row's status says.
  A rejected image with no copy left is marked purged (what --purge would have done); an accepted
  or waiting one with no copy anywhere is reported, for a person to decide.
- an orphan: a file no row claims. Under images/ (the dataset), a copy of an image that is not
  accepted (a queue copy left by a crash, or a rejected photo) is removed: it would be trained on.
  A dataset photo the queue never saw, or one a crawl rule (not a person) turned away as a
  duplicate, is the user's and is left alone. Under filter/review and filter/rejected, a file no
  row points at is removed (the crawl folder still has it; the next filter run copies it again).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from shoefind.curate.decisions import content_sha256, decision_lock, is_regular
from shoefind.curate.queue import QueueItem, ReviewQueue

DECIDED_BY_RULES = (None, "rules")


@dataclass(frozen=True)
class Finding:
    kind: str            # "missing copy" | "orphan" | "partial copy"
    path: str | None
    image_id: int | None
    action: str          # what was done, or why nothing could be
    repaired: bool

    def line(self) -> str:
        subject = f"image {self.image_id}" if self.path is None else self.path
        return f"{self.kind} {subject}: {self.action}"

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class CheckReport:
    images: int
    files: int
    findings: list[Finding]

    @property
    def unrepaired(self) -> list[Finding]:
        return [f for f in self.findings if not f.repaired]

    def as_dict(self) -> dict:
        return {"images": self.images, "files": self.files, "findings": [f.as_dict() for f in self.findings],
                "unrepaired": len(self.unrepaired)}


def check_queue(queue: ReviewQueue) -> CheckReport:
    with decision_lock(queue.root):
        return _Check(queue).run()


class _Check:
    def __init__(self, queue: ReviewQueue):
        self.queue = queue
        self.findings: list[Finding] = []
        self.shared = (queue.dataset_dir, queue.root / "review", queue.root / "rejected")

    def run(self) -> CheckReport:
        files = self._files()
        items = self.queue.items()
        by_sha = {i.sha256: i for i in items}
        content = {p: self._sha(p) for p in files}
        claimed = {Path(i.stored_path) for i in items if i.stored_path and i.status != "purged"}
        spare: dict[str, list[Path]] = {}
        for path in files:
            item = by_sha.get(content[path])
            if path not in claimed and item is not None and self._queues(path, item):
                spare.setdefault(item.sha256, []).append(path)
        for item in items:
            if item.status in ("accepted", "review", "rejected") and not is_regular(Path(item.stored_path or "")):
                self._restore(item, spare.get(item.sha256, []))
        claimed = {Path(i.stored_path) for i in self.queue.items() if i.stored_path and i.status != "purged"}
        for path in files:
            if is_regular(path) and path not in claimed:
                self._orphan(path, by_sha.get(content[path]))
        return CheckReport(len(items), len(files), self.findings)

    def _files(self) -> list[Path]:
        found = []
        for root in self.shared:
            if not root.is_dir():
                continue
            for path in sorted(root.rglob("*")):
                if path.name.startswith(".") and path.name.endswith(".part") and is_regular(path):
                    path.unlink()
                    self.findings.append(Finding("partial copy", str(path), None, "removed (a copy cut short)", True))
                elif is_regular(path) and not path.name.startswith("."):
                    found.append(path)
        return found

    def _sha(self, path: Path) -> str | None:
        # the dataset's hashes are cached by size and mtime; files of the queue's own folders are few
        if path.is_relative_to(self.queue.dataset_dir):
            st = path.stat()
            with self.queue.connect() as db:
                row = db.execute("SELECT sha256 FROM dataset_hashes WHERE path=? AND size=? AND mtime_ns=?",
                                 (str(path), st.st_size, st.st_mtime_ns)).fetchone()
            if row:
                return row[0]
        return content_sha256(path)

    def _restore(self, item: QueueItem, spare: list[Path]) -> None:
        suffix = Path(item.stored_path).suffix if item.stored_path else ".bin"
        target = self.queue.target_path(item.status, item.sha256, item.folder, suffix)
        found = next((p for p in spare if p.exists()), None)
        if found is not None:
            self.queue._place(found, target, move=True)
            how = f"moved {found} there"
        elif content_sha256(Path(item.source)) == item.sha256:
            self.queue._place(Path(item.source), target, move=False)
            how = f"copied again from its source {item.source}"
        elif item.status == "rejected":
            with self.queue.connect() as db:
                db.execute("UPDATE images SET status='purged', stored_path=NULL WHERE id=?", (item.id,))
            self.findings.append(Finding("missing copy", None, item.id, "rejected and no copy left: marked purged "
                                         "(its verdict stays, so it is never queued again)", True))
            return
        else:
            self.findings.append(Finding("missing copy", None, item.id,
                                         f"{item.status}, but no copy is left, in the data folder or at its source "
                                         f"{item.source}: put the photo back, or reject it", False))
            return
        with self.queue.connect() as db:
            db.execute("UPDATE images SET stored_path=? WHERE id=?", (str(target), item.id))
            if item.stored_path:
                db.execute("DELETE FROM dataset_hashes WHERE path=?", (item.stored_path,))
        self.findings.append(Finding("missing copy", None, item.id, f"{item.status}: {how} ({target})", True))

    def _queues(self, path: Path, item: QueueItem) -> bool:
        """Is this unclaimed file the queue's to move or remove? Its own folders' files are; in the
        dataset, a copy it named after the image, or a photo of the content a person rejected. The
        user's own photo that a crawled copy merely duplicated (rejected by a rule) is not."""
        if not path.is_relative_to(self.queue.dataset_dir):
            return True
        if item.status == "accepted":
            return False  # a photo of the dataset (maybe a second copy of an accepted one)
        return path.stem == item.sha256 or (item.status in ("rejected", "purged")
                                            and item.decided_by not in DECIDED_BY_RULES)

    def _orphan(self, path: Path, item: QueueItem | None) -> None:
        if path.is_relative_to(self.queue.dataset_dir):
            if item is not None and self._queues(path, item):
                self._drop(path, f"image {item.id} is {item.status}, not accepted: removed from the dataset")
        elif item is None:
            self._drop(path, "no queue row points at it: removed")
        else:
            self._drop(path, f"a second copy of image {item.id} ({item.status}, kept at {item.stored_path}): removed")

    def _drop(self, path: Path, why: str) -> None:
        path.unlink(missing_ok=True)
        with self.queue.connect() as db:
            db.execute("DELETE FROM dataset_hashes WHERE path=?", (str(path),))
        self.findings.append(Finding("orphan", str(path), None, why, True))
