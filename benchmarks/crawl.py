"""Benchmark: crawl throughput (images/s downloaded) against the local fake image-search site.

The real path end to end: headless Chromium opens each result's preview, waits for the
full-size URL (the site swaps it in after --preview-delay s), the thread pool downloads and
validates, files are written atomically and recorded. All images come from one host, so the
per-host politeness interval (default 0.5 s) caps throughput; the second run turns it off to
show what the pipeline itself does (real searches spread over many hosts).

    .venv/bin/python benchmarks/crawl.py [--images 40] [--preview-delay 0.1]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shoefind.crawl.collect import CrawlSettings, crawl, crawl_settings  # noqa: E402
from shoefind.crawl.targets import Query, Shoe  # noqa: E402
from shoefind.crawl.search_page import SearchEngine  # noqa: E402
from tests.helpers.fake_search_site import FakeSearchSite, sample_images  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"


def run(site: FakeSearchSite, n: int, label: str, **overrides) -> None:
    settings = crawl_settings(per_query=n, allow_loopback=True, **overrides)
    engine = SearchEngine.from_rules("localtest", base_url=site.base_url)
    shoe = Shoe("Bench Shoe", "Converse", "Black", "High", "White Sole", ("bench",))
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        [report] = crawl([Query("bench", shoe)], engine, Path(tmp) / "images", Path(tmp) / "data", settings)
        wall = time.perf_counter() - t0
        size = sum(p.stat().st_size for p in (Path(tmp) / "images").rglob("*") if p.is_file())
    print(f"{label:<44} {report.downloaded:3d} images in {wall:5.1f}s = {report.downloaded / wall:5.2f} images/s "
          f"({size / wall / 1e6:.1f} MB/s; browser start included)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=40)
    ap.add_argument("--preview-delay", type=float, default=0.1, help="seconds before the preview shows the full URL")
    args = ap.parse_args()
    defaults = CrawlSettings()
    with tempfile.TemporaryDirectory() as tmp:
        images = sample_images(SHARED if SHARED.is_dir() else None, args.images, Path(tmp))
    print(f"{len(images)} distinct images ({sum(map(len, images.values())) / 1e6:.1f} MB), "
          f"{'real photos' if SHARED.is_dir() else 'generated'}; concurrency {defaults.concurrency} (default)")
    with FakeSearchSite(images, preview_delay=args.preview_delay) as site:
        site.add_query("bench", site.good_results(list(images)))
        run(site, len(images), f"defaults (per-host interval {defaults.download.per_host_interval}s)")
        run(site, len(images), "defaults, per-host interval off", per_host_interval=0)


if __name__ == "__main__":
    main()
