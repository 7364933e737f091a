"""The crawl manifest: an append-only JSONL log of every image URL the crawler tried.

One line per attempt outcome (downloaded, duplicate, failed) with query, source page, image
URL, sha256, size, time and reason, and a `listed-again` line when a search lists an image already
fetched for one shoe in the results of a query for another (the filter sends such a photo to a person:
the search itself could not say which shoe it shows). Each line is written with a single O_APPEND write and
fsync'd, so a crash leaves at most one torn last line, which is ignored on reading. A rerun
reads the log to skip URLs and content it already has.

One process holds a dataset's manifest at a time (a lock file); inside a process every user
of the same path shares one instance, so concurrent Prefect tasks see each other's work.
"""
from __future__ import annotations

import fcntl
import json
import os
import threading
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from shoefind.errors import UserError
from shoefind.settings import DataLayout

# A failed URL is tried again on a rerun only if the failure may be temporary.
FINAL_STATUSES = ("downloaded", "duplicate")
LISTED_AGAIN = "listed-again"


class ManifestBusy(UserError):
    """Another process is crawling into the same dataset."""


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class Manifest:
    _open: dict[Path, "Manifest"] = {}
    _registry_lock = threading.Lock()

    @classmethod
    def open(cls, path: str | os.PathLike) -> "Manifest":
        """The shared instance for `path` (refcounted; pair with close() or use `with`)."""
        path = Path(path).resolve()
        with cls._registry_lock:
            inst = cls._open.get(path)
            if inst is None:
                inst = cls._open[path] = cls(path)
            inst._users += 1
            return inst

    def __init__(self, path: Path):
        self.path = path
        self.lock = threading.RLock()
        self._users = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_fh = open(path.with_name(path.name + ".lock"), "w")
        try:
            fcntl.flock(self._lock_fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_fh.close()
            raise ManifestBusy(f"another crawl is writing {path} (lock held); wait for it to finish") from None
        self.records: list[dict] = []
        self.torn_lines = 0
        self._load()
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        if self._last_byte() not in (b"", b"\n"):
            os.write(self._fd, b"\n")   # a crash tore the last line: start the next one cleanly

    def _last_byte(self) -> bytes:
        with open(self.path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            if fh.tell() == 0:
                return b""
            fh.seek(-1, os.SEEK_END)
            return fh.read(1)

    def _load(self) -> None:
        self._final_urls: set[str] = set()
        self._content: dict[str, str] = {}       # sha256 -> dataset-relative path
        self._downloaded: Counter = Counter()    # (query, shoe) -> images
        self._url_content: dict[str, tuple[str, str]] = {}   # fetched URL -> (sha256, shoe it was fetched for)
        self._listed: set[tuple[str, str]] = set()           # (sha256, shoe) pairs some record lists
        if not self.path.exists():
            return
        with open(self.path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    self.torn_lines += 1
                    continue
                self.records.append(rec)
                self._index(rec)

    def _index(self, rec: dict) -> None:
        url, status = rec.get("image_url"), rec.get("status")
        if url and (status in FINAL_STATUSES or (status == "failed" and not rec.get("retryable"))):
            self._final_urls.add(url)
        if status == "downloaded":
            self._content.setdefault(rec["sha256"], rec["path"])
            self._downloaded[(rec.get("query"), rec.get("shoe"))] += 1
        if status in (*FINAL_STATUSES, LISTED_AGAIN) and rec.get("sha256"):
            if url and status != LISTED_AGAIN:
                self._url_content.setdefault(url, (rec["sha256"], rec.get("shoe")))
            self._listed.add((rec["sha256"], rec.get("shoe")))

    def __enter__(self) -> "Manifest":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        with Manifest._registry_lock:
            self._users -= 1
            if self._users > 0:
                return
            Manifest._open.pop(self.path, None)
        os.close(self._fd)
        self._lock_fh.close()   # releases the flock

    # --- questions a crawl asks -------------------------------------------------------
    def url_done(self, url: str) -> bool:
        with self.lock:
            return url in self._final_urls

    def path_of_content(self, sha256: str) -> str | None:
        with self.lock:
            return self._content.get(sha256)

    def listed_again(self, url: str, shoe: str) -> tuple[str, str] | None:
        """(sha256, shoe it was fetched for) when `url` was fetched for another shoe and no record yet
        lists its content for `shoe`; else None."""
        with self.lock:
            known = self._url_content.get(url)
            if known is None or known[1] == shoe or (known[0], shoe) in self._listed:
                return None
            return known

    def downloaded_for(self, query: str, shoe: str) -> int:
        with self.lock:
            return self._downloaded[(query, shoe)]

    # --- recording --------------------------------------------------------------------
    def append(self, record: dict) -> dict:
        rec = {"time": now_iso(), **record}
        line = (json.dumps(rec, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8")
        with self.lock:
            os.write(self._fd, line)   # one write on an O_APPEND fd: lines never interleave
            os.fsync(self._fd)
            self.records.append(rec)
            self._index(rec)
        return rec


def manifest_path(data_dir: Path, dataset: Path) -> Path:
    """data/crawl/<dataset folder name>.manifest.jsonl (like data/tables/<folder name>)."""
    return DataLayout(Path(data_dir)).crawl / f"{Path(dataset).resolve().name}.manifest.jsonl"
