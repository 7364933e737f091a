"""Screenshots for the README: the web page, the review page and an HTML report, as small PNGs in docs/.

    .venv/bin/python scripts/screenshots.py [--out docs]

Needs Debian's chromium + chromedriver. Everything is made here, offline: a generated catalog
and a tiny random CLIP for the web page; a generated review queue; a few-shot comparison with
the offline efficientnet-lite0 backbone on ../shared/data/nike-silhouettes when it is there
(else on the generated catalog) for the report.
"""
from __future__ import annotations

import argparse
import io
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MAX_BYTES = 300_000
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def browser(width: int, height: int):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={width},{height}", "--hide-scrollbars"):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)


def save_small(png: bytes, path: Path, width: int = 1100) -> Path:
    """Scale to `width` and reduce colours until the PNG is under MAX_BYTES."""
    from PIL import Image
    img = Image.open(io.BytesIO(png)).convert("RGB")
    if img.width > width:
        img = img.resize((width, round(img.height * width / img.width)), Image.LANCZOS)
    for colours in (256, 128, 64, 32):
        buf = io.BytesIO()
        img.quantize(colours, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(buf, "PNG",
                                                                                             optimize=True)
        if buf.tell() < MAX_BYTES:
            break
        img = img.resize((round(img.width * 0.9), round(img.height * 0.9)), Image.LANCZOS)
    path.write_bytes(buf.getvalue())
    print(f"{path} ({path.stat().st_size // 1024} KB)")
    return path


def review_page(out: Path, work: Path) -> Path:
    from shoefind.curate.crawl_checks import load_crawl_rules
    from shoefind.curate.review_server import ReviewServer
    from tests.helpers.review_queue import fill_queue
    server = ReviewServer(fill_queue(work / "review-data", work / "crawl", n=60), load_crawl_rules().human_rules)
    server.start_in_background()
    driver = browser(1280, 1000)
    try:
        driver.get(server.url)
        _wait(lambda: len(driver.find_elements("css selector", ".card img")) == 48)
        driver.execute_script("document.querySelectorAll('.card')[2].querySelector('input.select').click();"
                              "document.querySelectorAll('.card')[4].querySelector('input.select').click();")
        time.sleep(1.0)
        driver.execute_script("window.scrollTo(0, 0)")
        return save_small(driver.get_screenshot_as_png(), out / "review-page.png")
    finally:
        driver.quit()
        server.shutdown()
        server.server_close()


def report(out: Path, work: Path) -> Path:
    from shoefind.encoders.load import load_model
    from shoefind.learn.methods import compare_methods
    from shoefind.evaluate.methods_report import write_comparison
    from shoefind.features.cache import EmbeddingCache
    from shoefind.features.embed import embed_images
    from shoefind.features.table import build_table
    from tests.helpers.infer_dataset import make_catalog_dataset

    shared = REPO.parent / "shared" / "data" / "nike-silhouettes"
    dataset = work / "nike-silhouettes"
    if shared.is_dir():      # 10 photos per model: enough for 1-4 shots, quick to embed
        for folder in sorted(p for p in shared.iterdir() if p.is_dir()):
            (dataset / folder.name).mkdir(parents=True)
            for photo in sorted(folder.iterdir())[:10]:
                shutil.copy(photo, dataset / folder.name / photo.name)
    else:
        dataset = make_catalog_dataset(work / "catalog", photos_per_shoe=5)
    encoder = load_model("efficientnet-lite0")
    table = build_table(dataset)
    cache = EmbeddingCache(work / "embeddings", encoder.cache_key)
    embed_images(encoder, cache, [(str(table.root / p), s) for p, s in zip(table.images["path"], table.images["sha256"])])
    comparison = compare_methods(encoder, table, cache, ["fewshot"], [1, 2, 4])
    run = work / "run"
    run.mkdir()
    write_comparison(run, comparison, str(dataset), ["fewshot"])
    driver = browser(1200, 1700)
    try:
        driver.get((run / "report.html").as_uri())
        time.sleep(1.0)
        return save_small(driver.get_screenshot_as_png(), out / "report.png")
    finally:
        driver.quit()


def web_page(out: Path, work: Path) -> Path:
    import socket
    import urllib.request

    from shoefind.encoders.families.tiny import make_tiny
    from tests.helpers.infer_dataset import catalog_photo, make_catalog_dataset
    ds = make_catalog_dataset(work / "web-catalog")
    model = make_tiny(work / "tiny.pt", seed=0)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "shoefind.cli.main", "web", "--port", str(port), "--model",
                             str(model), "--dataset", str(ds), "--data-dir", str(work / "web-data")],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            env=dict(os.environ, PYTHONPATH=str(REPO)))

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                return r.read() == b"ok"
        except OSError:
            return False
    driver = None
    try:
        _wait(healthy, 120)
        driver = browser(1300, 1250)
        driver.get(f"http://127.0.0.1:{port}")
        _wait(lambda: driver.find_elements("css selector", "input[type=file]"), 60)
        driver.find_elements("css selector", "input[type=file]")[0].send_keys(str(catalog_photo(ds, "Air Test Red")))
        _wait(lambda: driver.find_elements("css selector", "input[aria-label='Change it in words']"), 60)
        from selenium.webdriver.common.keys import Keys
        driver.find_element("css selector", "input[aria-label='Change it in words']").send_keys(
            "same brand but blue", Keys.ENTER)
        _wait(lambda: len(driver.find_elements("css selector", ".st-key-results-change img")) == 2, 60)
        time.sleep(1.5)
        return save_small(driver.get_screenshot_as_png(), out / "web-page.png")
    finally:
        if driver is not None:
            driver.quit()
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:      # `shoefind web` should stop on SIGTERM; never leave it behind
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _wait(condition, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while not condition():
        if time.time() > deadline:
            raise TimeoutError("the page did not get ready in time")
        time.sleep(0.3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs")
    parser.add_argument("--only", choices=["web", "review", "report"], action="append")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    makers = {"review": review_page, "report": report, "web": web_page}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only or list(makers):
            work = Path(tmp) / name
            work.mkdir()
            makers[name](args.out, work)


if __name__ == "__main__":
    main()
