"""A local stand-in for an image-search page, for the crawler's tests and benchmark.

It behaves like Google Images where it matters to the crawler: a grid of thumbnails (some
data: URLs), a preview panel that swaps the thumbnail for the full-size URL after a delay
(JavaScript), and infinite scroll that loads more results. Behind the results sit the
awkward cases a real crawl meets: 404, a slow server, redirects, HTML served as image/jpeg,
a file over the size cap, one image under two URLs, private addresses, a preview that never
resolves. Runs on 127.0.0.1 in a thread; nothing leaves the machine.
"""
from __future__ import annotations

import hashlib
import html
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

PRIVATE_URL = "http://10.0.0.1/private/shoe.jpg"
METADATA_URL = "http://169.254.169.254/latest/meta-data/shoe.jpg"


@dataclass(frozen=True)
class Result:
    """One search result: what the preview reveals and what the crawler should make of it."""
    full_url: str | None     # path on this site ("/img/a") or absolute URL; None: preview never resolves
    expect: str              # "downloaded" | "duplicate" | a failure reason code
    thumb_data_url: bool = False
    image: str | None = None  # the image name behind it, for good ones


class FakeSearchSite:
    def __init__(self, images: dict[str, bytes], preview_delay: float = 0.1, scroll_delay: float = 0.15,
                 page_size: int = 6, slow_seconds: float = 3.0, huge_bytes: int = 3 * 1024 * 1024,
                 image_delay: float = 0.0):
        self.images = dict(images)
        self.preview_delay = preview_delay
        self.scroll_delay = scroll_delay
        self.page_size = page_size
        self.slow_seconds = slow_seconds
        self.huge_bytes = huge_bytes
        self.image_delay = image_delay
        self.queries: dict[str, list[Result]] = {}
        self.hits: dict[str, int] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # --- content ------------------------------------------------------------------
    def add_query(self, text: str, results: list[Result]) -> None:
        self.queries[text.lower()] = results

    def tricky_results(self, good: list[str], spare: str) -> list[Result]:
        """Good images interleaved with every awkward case; `spare` is an image used only
        behind the slow URL. Needs at least 4 good images."""
        g = good
        bad = [
            Result("/missing/nothing.jpg", "http-404"),
            Result(f"/slow/{spare}", "timeout"),
            Result(f"/redirect/{g[2]}", "downloaded", image=g[2]),
            Result("/html-as-jpeg/page.jpg", "not-an-image"),
            Result("/huge/big.jpg", "too-large"),
            Result(f"/img/{g[0]}?copy=1", "duplicate"),         # same bytes as g[0], another URL
            Result(PRIVATE_URL, "refused"),
            Result(METADATA_URL, "refused"),
            Result("/redirect-private/x.jpg", "refused"),       # refused after the redirect
            Result(None, "preview-timeout"),
        ]
        first = [Result(f"/img/{g[0]}", "downloaded", thumb_data_url=True, image=g[0]),
                 Result(f"/img/{g[1]}", "downloaded", image=g[1])]
        rest = [Result(f"/img/{name}", "downloaded", thumb_data_url=i % 2 == 0, image=name)
                for i, name in enumerate(g[3:])]
        return first + bad + rest

    def good_results(self, names: list[str]) -> list[Result]:
        return [Result(f"/img/{n}", "downloaded", thumb_data_url=i % 3 == 0, image=n) for i, n in enumerate(names)]

    def sha256_of(self, name: str) -> str:
        return hashlib.sha256(self.images[name]).hexdigest()

    # --- server -------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, full_url: str) -> str:
        return full_url if full_url.startswith("http") else self.base_url + full_url

    def start(self) -> "FakeSearchSite":
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):   # keep test output clean
                pass

            def do_GET(self):
                try:
                    site._handle(self)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="fake-search-site", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _count(self, path: str) -> None:
        with self._lock:
            self.hits[path] = self.hits.get(path, 0) + 1

    def _handle(self, req: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(req.path)
        path = unquote(parts.path)
        self._count(req.path)
        kind, _, name = path.lstrip("/").partition("/")
        if kind == "search":
            q = parse_qs(parts.query).get("q", [""])[0]
            return _send(req, 200, "text/html; charset=utf-8", self._search_page(q).encode())
        if kind in ("img", "thumb") and name in self.images:
            if kind == "img" and self.image_delay:
                time.sleep(self.image_delay)
            return _send(req, 200, "image/jpeg", self.images[name])
        if kind == "slow" and name in self.images:
            time.sleep(self.slow_seconds)
            return _send(req, 200, "image/jpeg", self.images[name])
        if kind == "redirect":
            return _redirect(req, f"/img/{name}")
        if kind == "redirect-private":
            return _redirect(req, PRIVATE_URL)
        if kind == "html-as-jpeg":
            return _send(req, 200, "image/jpeg", b"<!doctype html><html><body>Not a shoe</body></html>")
        if kind == "huge":
            # No Content-Length: the downloader must stop counting bytes itself.
            req.send_response(200)
            req.send_header("Content-Type", "image/jpeg")
            req.send_header("Connection", "close")
            req.end_headers()
            block = b"\xff" * 65536
            for _ in range(self.huge_bytes // len(block) + 1):
                req.wfile.write(block)
            req.close_connection = True
            return
        if kind == "page":
            return _send(req, 200, "text/html", f"<html><body>source page of {html.escape(name)}</body></html>".encode())
        return _send(req, 404, "text/html", b"<html><body>404 not found</body></html>")

    def _search_page(self, query: str) -> str:
        results = self.queries.get(query.lower(), [])
        items = []
        for i, r in enumerate(results):
            thumb_name = r.image or next(iter(self.images))
            thumb = (f"data:image/gif;base64,R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw=={i}"
                     if r.thumb_data_url else f"/thumb/{thumb_name}?n={i}")
            items.append({"thumb": thumb, "full": self.url(r.full_url) if r.full_url else None,
                          "source": f"{self.base_url}/page/result-{i}"})
        return SEARCH_PAGE.replace("__RESULTS__", json.dumps(items)) \
            .replace("__PAGE__", str(self.page_size)) \
            .replace("__PREVIEW_MS__", str(int(self.preview_delay * 1000))) \
            .replace("__SCROLL_MS__", str(int(self.scroll_delay * 1000))) \
            .replace("__QUERY__", html.escape(query))


def _send(req, status: int, ctype: str, body: bytes) -> None:
    req.send_response(status)
    req.send_header("Content-Type", ctype)
    req.send_header("Content-Length", str(len(body)))
    req.end_headers()
    req.wfile.write(body)


def _redirect(req, location: str) -> None:
    req.send_response(302)
    req.send_header("Location", location)
    req.send_header("Content-Length", "0")
    req.end_headers()


SEARCH_PAGE = """<!doctype html>
<html><head><title>__QUERY__ - Fake Images</title>
<style>
  body { margin: 0; font-family: sans-serif; }
  #results { width: 60%; display: flex; flex-wrap: wrap; }
  .result { width: 45%; height: 700px; margin: 4px; background: #eee; }
  .result img.thumb { width: 100%; height: 100%; object-fit: cover; cursor: pointer; }
  #preview { position: fixed; right: 0; top: 0; width: 35%; display: none; }
  #preview img.full { width: 100%; min-height: 50px; }
</style></head>
<body>
<div id="results"></div>
<div id="preview"><img class="full" alt="preview"><a class="source" href="#">Visit</a></div>
<script>
  const RESULTS = __RESULTS__;
  const PAGE = __PAGE__, PREVIEW_MS = __PREVIEW_MS__, SCROLL_MS = __SCROLL_MS__;
  let shown = 0, loading = false, timer = null;
  function render(n) {
    const box = document.getElementById('results');
    for (const r of RESULTS.slice(shown, shown + n)) {
      const div = document.createElement('div');
      div.className = 'result';
      const img = document.createElement('img');
      img.className = 'thumb';
      img.src = r.thumb;
      img.addEventListener('click', () => openPreview(r));
      div.appendChild(img);
      box.appendChild(div);
    }
    shown = Math.min(RESULTS.length, shown + n);
  }
  function openPreview(r) {
    // Like Google: the panel shows the thumbnail first, the full-size URL arrives later.
    const panel = document.getElementById('preview');
    const full = panel.querySelector('img.full');
    clearTimeout(timer);
    panel.style.display = 'block';
    full.src = r.thumb;
    panel.querySelector('a.source').href = r.source;
    if (r.full) timer = setTimeout(() => { full.src = r.full; }, PREVIEW_MS);
  }
  window.addEventListener('scroll', () => {
    if (loading || shown >= RESULTS.length) return;
    if (window.innerHeight + window.scrollY >= document.body.scrollHeight - 200) {
      loading = true;
      setTimeout(() => { render(PAGE); loading = false; }, SCROLL_MS);
    }
  });
  render(PAGE);
</script>
</body></html>
"""


def sample_images(shared_data: Path | None, count: int, tmp_dir: Path) -> dict[str, bytes]:
    """`count` distinct images: real photos from ../shared/data when present, else generated."""
    images: dict[str, bytes] = {}
    seen: set[str] = set()
    if shared_data and shared_data.is_dir():
        files = sorted(p for sub in ("findyourshoes-labeled", "converse-crawl")
                       for p in (shared_data / sub).rglob("*")
                       if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp") and p.stat().st_size < 1_500_000)
        for p in files:
            data = p.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            if digest not in seen:
                seen.add(digest)
                images[f"shoe{len(images):03d}{p.suffix.lower()}"] = data
            if len(images) == count:
                return images
    from tests.helpers import make_photo
    i = 0
    while len(images) < count:
        fmt = ("JPEG", "PNG", "WEBP")[i % 3]
        path = make_photo(tmp_dir / f"gen{i}.{fmt.lower()}", color=((37 * i) % 256, 90, 200 - i), seed=i, fmt=fmt)
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest not in seen:
            seen.add(digest)
            images[f"gen{len(images):03d}.{fmt.lower()}"] = data
        i += 1
    return images
