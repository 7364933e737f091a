"""The crawl: for each query, find full-size images through the search page and file them.

Images go to `<dataset>/<Brand_Top_Color_Sole_Name>/<sha256>.<ext>`; every outcome goes to
the manifest. The browser (main thread) keeps finding URLs while a thread pool downloads, and
a query stops once it has `per_query` images (counting those of earlier runs).

Crash safety: an image is written to a hidden `.part` file, fsync'd, then renamed to its
content-hash name, and only then recorded. A crash leaves at most a `.part` file (removed by
the next run) or an image not yet recorded (rewritten in place under the same name).
"""
from __future__ import annotations

import os
import uuid
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from shoefind.crawl.targets import Query
from shoefind.crawl.download import DownloadFailed, Downloader, DownloadSettings, Fetched
from shoefind.crawl.manifest import LISTED_AGAIN, Manifest, manifest_path
from shoefind.crawl.search_page import Candidate, ImageSearch, PreviewFailure, SearchEngine, SearchTimeouts
from shoefind.errors import UserError

PART_SUFFIX = ".part"


@dataclass(frozen=True)
class CrawlSettings:
    per_query: int = 20
    concurrency: int = 4
    headless: bool = True
    max_results: int = 0      # results to look at per query before giving up; 0: 10 x per_query, at least 50
    download: DownloadSettings = field(default_factory=DownloadSettings)
    search: SearchTimeouts = field(default_factory=SearchTimeouts)


_DOWNLOAD_KEYS = set(DownloadSettings.__dataclass_fields__)
_SEARCH_KEYS = {"results_timeout": "results", "preview_timeout": "preview", "scroll_timeout": "scroll",
                "poll_interval": "poll"}


def crawl_settings(**overrides) -> CrawlSettings:
    """CrawlSettings from flat keys (per_query, read_timeout, preview_timeout, ...), for the CLI
    and for Prefect parameters; None values keep the default; an unknown key is an error."""
    overrides = {k: v for k, v in overrides.items() if v is not None}
    top = {k: overrides.pop(k) for k in ("per_query", "concurrency", "headless", "max_results") if k in overrides}
    download = {k: overrides.pop(k) for k in list(overrides) if k in _DOWNLOAD_KEYS}
    search = {_SEARCH_KEYS[k]: overrides.pop(k) for k in list(overrides) if k in _SEARCH_KEYS}
    if overrides:
        known = sorted({"per_query", "concurrency", "headless", "max_results", *_DOWNLOAD_KEYS, *_SEARCH_KEYS})
        raise UserError(f"unknown crawl setting(s) {sorted(overrides)} (known: {', '.join(known)})")
    return CrawlSettings(**top, download=DownloadSettings(**download), search=SearchTimeouts(**search))


@dataclass
class QueryReport:
    """Per query: how many full-size URLs were found and what became of them."""
    query: str
    shoe: str
    target: int
    already: int = 0        # images from earlier runs
    found: int = 0          # full-size URLs read from previews
    downloaded: int = 0
    skipped: int = 0        # URL already handled, or content already in the dataset
    failed: int = 0
    reasons: Counter = field(default_factory=Counter)

    @property
    def complete(self) -> bool:
        return self.already + self.downloaded >= self.target

    def as_row(self) -> dict:
        return {"query": self.query, "shoe": self.shoe, "target": self.target, "already": self.already,
                "found": self.found, "downloaded": self.downloaded, "skipped": self.skipped,
                "failed": self.failed, "complete": self.complete,
                "reasons": ", ".join(f"{k} x{n}" for k, n in sorted(self.reasons.items()))}


def remove_partial_files(dataset: Path) -> int:
    """Delete `.part` files a killed crawl left behind (call only while holding the manifest)."""
    removed = 0
    for part in dataset.glob(f"*/.*{PART_SUFFIX}"):
        part.unlink(missing_ok=True)
        removed += 1
    return removed


def store_image(dataset: Path, folder: str, fetched: Fetched) -> str:
    """Write atomically as <sha256>.<ext> in the shoe's folder; returns the dataset-relative path."""
    target_dir = dataset / folder
    target_dir.mkdir(parents=True, exist_ok=True)
    name = f"{fetched.sha256}{fetched.extension}"
    tmp = target_dir / f".{fetched.sha256}.{uuid.uuid4().hex[:8]}{PART_SUFFIX}"
    try:
        with open(tmp, "wb") as fh:
            fh.write(fetched.data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target_dir / name)
    finally:
        tmp.unlink(missing_ok=True)
    dir_fd = os.open(target_dir, os.O_RDONLY)
    try:
        os.fsync(dir_fd)   # make the rename itself durable before the manifest says so
    finally:
        os.close(dir_fd)
    return f"{folder}/{name}"


class Crawler:
    """One crawl session over a dataset: shared manifest, downloader and thread pool."""

    def __init__(self, engine: SearchEngine, dataset: Path, manifest: Manifest,
                 settings: CrawlSettings = CrawlSettings(),
                 on_event: Callable[[str, dict], None] | None = None):
        self.engine = engine
        self.dataset = Path(dataset)
        self.manifest = manifest
        self.settings = settings
        self.on_event = on_event or (lambda kind, record: None)
        self.downloader = Downloader(settings.download)

    def close(self) -> None:
        self.downloader.close()

    def run_query(self, search: ImageSearch, pool: ThreadPoolExecutor, query: Query) -> QueryReport:
        folder = query.shoe.folder
        report = QueryReport(query.text, folder, self.settings.per_query)
        report.already = self.manifest.downloaded_for(query.text, folder)
        need = self.settings.per_query - report.already
        if need <= 0:
            return report
        # When every result fails (all refused, say), scrolling could go on for ever: give up.
        limit = self.settings.max_results or max(50, 10 * self.settings.per_query)
        in_flight: dict = {}
        claimed: set[str] = set()
        results = search.results(query.text)
        looked_at = 0
        exhausted = False
        try:
            while True:
                while not exhausted and report.downloaded + len(in_flight) < need:
                    item = next(results, None) if looked_at < limit else None
                    looked_at += 1
                    if item is None:
                        exhausted = True
                    elif isinstance(item, PreviewFailure):
                        self._record_preview_failure(query, item, report)
                    else:
                        report.found += 1
                        if item.image_url in claimed or self.manifest.url_done(item.image_url):
                            report.skipped += 1
                            report.reasons["seen-url"] += 1
                            self._record_listed_again(query, item)
                            continue
                        claimed.add(item.image_url)
                        in_flight[pool.submit(self._download, query, item)] = item
                if not in_flight:
                    break
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    in_flight.pop(future)
                    status, reason = future.result()
                    if status == "downloaded":
                        report.downloaded += 1
                    elif status == "duplicate":
                        report.skipped += 1
                        report.reasons["duplicate-content"] += 1
                    else:
                        report.failed += 1
                        report.reasons[reason] += 1
        finally:
            results.close()
            for future in in_flight:
                future.cancel()
        return report

    def _record_listed_again(self, query: Query, item: Candidate) -> None:
        """An image fetched for one shoe listed for another: recorded, so the filter knows the search
        gave it two names (it is not fetched again)."""
        earlier = self.manifest.listed_again(item.image_url, query.shoe.folder)
        if earlier is None:
            return
        rec = self.manifest.append({"query": query.text, "shoe": query.shoe.folder, "status": LISTED_AGAIN,
                                    "image_url": item.image_url, "source_page": item.source_page,
                                    "position": item.position, "sha256": earlier[0], "fetched_for": earlier[1]})
        self.on_event(LISTED_AGAIN, rec)

    def _record_preview_failure(self, query: Query, item: PreviewFailure, report: QueryReport) -> None:
        report.failed += 1
        report.reasons[item.reason] += 1
        rec = self.manifest.append({
            "query": query.text, "shoe": query.shoe.folder, "status": "failed", "reason": item.reason,
            "detail": item.detail, "image_url": None, "thumbnail_url": _short_url(item.thumbnail_url),
            "source_page": None, "position": item.position, "retryable": True})
        self.on_event("failed", rec)

    def _download(self, query: Query, item: Candidate) -> tuple[str, str | None]:
        """Runs in a pool thread: fetch, deduplicate by content, store, record."""
        base = {"query": query.text, "shoe": query.shoe.folder, "image_url": item.image_url,
                "source_page": item.source_page, "position": item.position}
        try:
            fetched = self.downloader.fetch(item.image_url)
        except DownloadFailed as exc:
            rec = self.manifest.append({**base, "status": "failed", "reason": exc.reason, "detail": exc.detail,
                                        "final_url": exc.final_url, "retryable": exc.retryable})
            self.on_event("failed", rec)
            return "failed", exc.reason
        except Exception as exc:  # one strange URL (bad IDNA, odd redirect) must not end the crawl
            rec = self.manifest.append({**base, "status": "failed", "reason": "error",
                                        "detail": f"{type(exc).__name__}: {exc}"[:300], "retryable": False})
            self.on_event("failed", rec)
            return "failed", "error"
        facts = {"final_url": fetched.url, "sha256": fetched.sha256, "size": len(fetched.data),
                 "format": fetched.format, "width": fetched.width, "height": fetched.height}
        # Check-then-store under the manifest lock: two threads with the same bytes keep one file.
        with self.manifest.lock:
            existing = self.manifest.path_of_content(fetched.sha256)
            if existing:
                rec = self.manifest.append({**base, **facts, "status": "duplicate", "duplicate_of": existing})
                self.on_event("duplicate", rec)
                return "duplicate", None
            path = store_image(self.dataset, query.shoe.folder, fetched)
            rec = self.manifest.append({**base, **facts, "status": "downloaded", "path": path})
        self.on_event("downloaded", rec)
        return "downloaded", None


def _short_url(url: str | None, limit: int = 300) -> str | None:
    # thumbnails are often multi-kilobyte data: URLs; the manifest needs only a hint
    if url and len(url) > limit:
        return url[:limit] + "..."
    return url


def crawl(queries: list[Query], engine: SearchEngine, dataset: str | os.PathLike, data_dir: str | os.PathLike,
          settings: CrawlSettings = CrawlSettings(),
          on_event: Callable[[str, dict], None] | None = None,
          on_query: Callable[[QueryReport], None] | None = None) -> list[QueryReport]:
    """Crawl every query into `dataset`; the manifest lives in data_dir/crawl/. One browser for all."""
    from shoefind.crawl.browser import chromium

    dataset = Path(dataset).resolve()
    if settings.per_query < 1:
        raise UserError("per-query target must be at least 1")
    reports: list[QueryReport] = []
    with Manifest.open(manifest_path(Path(data_dir), dataset)) as manifest:
        with manifest.lock:   # writers hold this lock while a .part file exists: none is in progress
            remove_partial_files(dataset)
        pending = [q for q in queries if manifest.downloaded_for(q.text, q.shoe.folder) < settings.per_query]
        if pending:
            engine.check_reachable(timeout=min(5.0, settings.search.results))
        crawler = Crawler(engine, dataset, manifest, settings, on_event)
        pool = ThreadPoolExecutor(max_workers=max(1, settings.concurrency), thread_name_prefix="download")
        try:
            if pending:
                with chromium(headless=settings.headless) as driver:
                    search = ImageSearch(driver, engine, settings.search)
                    for query in queries:
                        report = crawler.run_query(search, pool, query)
                        reports.append(report)
                        if on_query:
                            on_query(report)
            else:
                for query in queries:
                    report = crawler.run_query(None, pool, query)   # all complete: no browser needed
                    reports.append(report)
                    if on_query:
                        on_query(report)
        finally:
            # Ctrl-C: drop queued downloads, let running ones finish so each is stored and recorded.
            pool.shutdown(wait=True, cancel_futures=True)
            crawler.close()
    return reports
