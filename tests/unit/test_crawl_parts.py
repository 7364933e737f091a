"""The crawler's parts without a browser: shoe lists, address guard, downloads, manifest."""
from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from shoefind.crawl.targets import TargetError, queries_for, read_catalog, read_shoe_list
from shoefind.crawl.download import DownloadFailed, Downloader, DownloadSettings
from shoefind.crawl.manifest import Manifest, ManifestBusy
from shoefind.crawl.net_guard import AddressRefused, check_url
from shoefind.crawl.rate_limit import HostRateLimiter
from tests.helpers.fake_search_site import METADATA_URL, PRIVATE_URL, FakeSearchSite, sample_images

FAST = DownloadSettings(connect_timeout=2, read_timeout=1.0, total_timeout=10, retries=1, backoff=0.01,
                        per_host_interval=0, allow_loopback=True, max_bytes=2 * 1024 * 1024)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    images = sample_images(None, 3, tmp_path_factory.mktemp("images"))
    with FakeSearchSite(images, slow_seconds=3) as s:
        yield s


# --- what to crawl --------------------------------------------------------------------
def test_shoe_list_gives_folders_and_queries(tmp_path):
    (tmp_path / "shoes.yaml").write_text(
        "shoes:\n"
        "  - {name: Chuck 70 Sunflower, brand: Converse, color: Grey, hightop: Hi, sole: White Sole,\n"
        "     queries: [chuck 70 sunflower, chuck 70 sunflower]}\n"
        "  - {name: Samba, brand: Adidas, color: White, hightop: Low, sole: Gum}\n")
    shoes = read_shoe_list(tmp_path / "shoes.yaml")
    # aliases are normalised (Grey -> Gray, Hi -> High, Gum -> Gum Sole); the folder follows the convention
    assert shoes[0].folder == "Converse_High_Gray_White Sole_Chuck 70 Sunflower"
    assert [q.text for q in queries_for(shoes)] == ["chuck 70 sunflower", "Adidas Samba"]


def test_bad_shoe_lists_say_where(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("shoes:\n  - {name: Air_Max, brand: Nike, color: Red, hightop: Low, sole: Plain Sole}\n")
    with pytest.raises(TargetError, match=r"shoe #1.*'_'"):
        read_shoe_list(bad)
    bad.write_text("shoes:\n  - {name: Air Max, brand: Nike}\n")
    with pytest.raises(TargetError, match="missing color, hightop, sole"):
        read_shoe_list(bad)
    csv = tmp_path / "cat.csv"
    csv.write_text("name,brand\nX,Y\n")
    with pytest.raises(TargetError, match="missing columns"):
        read_catalog(csv)


def test_real_catalog_reads(shared_data):
    shoes = read_catalog(shared_data / "shoe-catalog-97.csv")
    assert len(shoes) == 97 and all(s.queries for s in shoes)


# --- addresses ------------------------------------------------------------------------
@pytest.mark.parametrize("url,why", [
    (PRIVATE_URL, "private"), (METADATA_URL, "link-local"), ("http://127.0.0.1/x", "loopback"),
    ("http://[::1]/x", "loopback"), ("http://0.0.0.0/x", "unspecified"), ("ftp://example.com/x", "scheme"),
    ("file:///etc/passwd", "scheme"),
])
def test_forbidden_urls_refused(url, why):
    with pytest.raises(AddressRefused, match=why):
        check_url(url)


def test_every_resolved_address_is_checked(monkeypatch):
    real = socket.getaddrinfo

    def fake(host, port, *a, **k):
        if host == "mixed.test":   # one public, one private address: refused
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port)),
                    (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.168.1.5", port))]
        return real(host, port, *a, **k)
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    with pytest.raises(AddressRefused, match="192.168.1.5 is a private address"):
        check_url("http://mixed.test/shoe.jpg")


def test_rebinding_at_connect_time_is_refused_before_connecting(monkeypatch):
    # DNS rebinding: the first lookup says public, the one at connect time says private.
    import urllib3.util.connection
    answers = iter(["93.184.216.34", "10.9.8.7"])
    real = socket.getaddrinfo
    connects = []

    def fake(host, port, *a, **k):
        if host == "rebind.test":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]
        return real(host, port, *a, **k)
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    # what urllib3's connections really call to open a socket
    monkeypatch.setattr(urllib3.util.connection, "create_connection",
                        lambda *a, **k: connects.append(a) or pytest.fail("connected"))
    with pytest.raises(DownloadFailed) as info:
        Downloader(FAST).fetch("http://rebind.test/img/x.jpg")
    assert info.value.reason == "refused" and "10.9.8.7" in info.value.detail and not connects


def test_connection_goes_to_the_checked_address_without_a_second_lookup(monkeypatch, site):
    # pinned.test resolves to the local site twice (URL check, connection check); any later
    # lookup (the connection resolving the name again) would be a rebinding chance: it fails.
    lookups = []
    real = socket.getaddrinfo

    def fake(host, port, *a, **k):
        if host == "pinned.test":
            lookups.append(host)
            if len(lookups) > 2:
                raise socket.gaierror(socket.EAI_NONAME, "looked up again")
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
        return real(host, port, *a, **k)
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    name = next(iter(site.images))
    before = site.hits.get(f"/img/{name}", 0)
    port = site.base_url.rsplit(":", 1)[1].rstrip("/")
    got = Downloader(FAST).fetch(f"http://pinned.test:{port}/img/{name}")
    assert got.sha256 == site.sha256_of(name) and site.hits[f"/img/{name}"] == before + 1
    assert lookups == ["pinned.test", "pinned.test"]


@pytest.mark.parametrize("address,why", [
    ("2002:0a00:0001::1", "private"), ("2002:7f00:0001::1", "loopback"), ("2002:a9fe:a9fe::1", "link-local"),
    ("fec0::1", "site-local"), ("64:ff9b::a00:1", "private"),
])
def test_ipv6_forms_wrapping_a_local_address_are_refused(address, why):
    with pytest.raises(AddressRefused, match=why):
        check_url(f"http://[{address}]/x.jpg")


def test_6to4_of_a_public_address_is_allowed():
    check_url("http://[2002:5db8:d822::1]/x.jpg")   # 93.184.216.34 inside


# --- downloads ------------------------------------------------------------------------
def test_good_image_and_redirect(site):
    name = next(iter(site.images))
    d = Downloader(FAST)
    got = d.fetch(site.url(f"/img/{name}"))
    assert got.sha256 == site.sha256_of(name) and got.extension in (".jpg", ".png", ".webp")
    redirected = d.fetch(site.url(f"/redirect/{name}"))
    assert redirected.sha256 == got.sha256 and redirected.url.endswith(f"/img/{name}")


@pytest.mark.parametrize("path,reason,retryable", [
    ("/missing/x.jpg", "http-404", False),
    ("/html-as-jpeg/x.jpg", "not-an-image", False),
    ("/huge/x.jpg", "too-large", False),
    ("/redirect-private/x.jpg", "refused", False),
    (PRIVATE_URL, "refused", False),
])
def test_bad_downloads_have_reasons(site, path, reason, retryable):
    with pytest.raises(DownloadFailed) as info:
        Downloader(FAST).fetch(site.url(path))
    assert info.value.reason == reason and info.value.retryable == retryable


def test_slow_server_times_out_after_retries(site):
    name = next(iter(site.images))
    before = site.hits.get(f"/slow/{name}", 0)
    t0 = time.monotonic()
    with pytest.raises(DownloadFailed) as info:
        Downloader(FAST).fetch(site.url(f"/slow/{name}"))
    assert info.value.reason == "timeout" and info.value.retryable
    assert site.hits[f"/slow/{name}"] - before == 2          # first try + one retry
    assert time.monotonic() - t0 < 5   # two read timeouts of 1 s, not the server's 3 s each (6 s)


def test_rate_limiter_spaces_requests_per_host():
    """Judged on the slots the limiter grants (not on when threads got to run), so a loaded
    machine cannot fail it."""
    limiter = HostRateLimiter(0.1)
    granted = []

    def hit():
        slot = limiter.wait("a.test")
        granted.append((slot, time.monotonic()))
    threads = [threading.Thread(target=hit) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    slots = sorted(slot for slot, _ in granted)
    assert all(b - a >= 0.1 - 1e-9 for a, b in zip(slots, slots[1:]))
    assert all(returned >= slot for slot, returned in granted)      # nobody went before its slot


def test_rate_limiter_does_not_delay_another_host():
    limiter = HostRateLimiter(30.0)
    limiter.wait("a.test")
    t0 = time.monotonic()
    limiter.wait("b.test")            # a.test's next slot is 30 s away; b.test's is now
    limiter.wait("a.test.example")
    assert time.monotonic() - t0 < 15


# --- manifest -------------------------------------------------------------------------
def test_manifest_survives_a_torn_line_and_is_exclusive(tmp_path):
    path = tmp_path / "m.jsonl"
    with Manifest.open(path) as m:
        m.append({"query": "q", "shoe": "S", "image_url": "http://a/1", "status": "downloaded",
                  "sha256": "ab", "path": "S/ab.jpg"})
        m.append({"query": "q", "shoe": "S", "image_url": "http://a/2", "status": "failed",
                  "reason": "timeout", "retryable": True})
    with open(path, "a") as fh:
        fh.write('{"query": "q", "status": "downl')   # killed mid-write
    with Manifest.open(path) as m:
        assert m.torn_lines == 1 and m.url_done("http://a/1") and not m.url_done("http://a/2")
        assert m.path_of_content("ab") == "S/ab.jpg" and m.downloaded_for("q", "S") == 1
        m.append({"query": "q", "shoe": "S", "image_url": "http://a/3", "status": "failed", "reason": "http-404"})
        # the same path in the same process is one shared instance; another process is refused
        assert Manifest.open(path) is m
        m.close()
        import subprocess
        import sys
        code = ("import sys; from shoefind.crawl.manifest import Manifest, ManifestBusy\n"
                "try: Manifest.open(sys.argv[1])\nexcept ManifestBusy: sys.exit(3)")
        assert subprocess.run([sys.executable, "-c", code, str(path)]).returncode == 3
    lines = path.read_text().splitlines()
    assert json.loads(lines[-1])["image_url"] == "http://a/3"
    with Manifest.open(path) as m:
        assert m.url_done("http://a/3")


# --- browser discovery ----------------------------------------------------------------
def test_without_a_local_driver_offline_is_one_clear_error(monkeypatch):
    from webdriver_manager.chrome import ChromeDriverManager

    from shoefind.crawl import browser

    def offline(self):   # what webdriver-manager does without internet; never really downloads here
        raise ConnectionError("Could not reach host. Are you offline?")
    monkeypatch.setattr(browser, "LOCAL_DRIVERS", ("/nonexistent/chromedriver",))
    monkeypatch.setattr(browser.shutil, "which", lambda name: None)
    monkeypatch.delenv("SHOEFIND_CHROMEDRIVER", raising=False)
    monkeypatch.setattr(ChromeDriverManager, "install", offline)
    with pytest.raises(browser.BrowserUnavailable, match="no local chromedriver.*offline"):
        browser._driver_path()


def test_local_driver_is_preferred(monkeypatch):
    from shoefind.crawl import browser
    monkeypatch.delenv("SHOEFIND_CHROMEDRIVER", raising=False)
    if not __import__("os").path.exists("/usr/bin/chromedriver"):
        pytest.skip("no Debian chromedriver here")
    assert browser._driver_path() == "/usr/bin/chromedriver"
    opts = browser.chrome_options("/tmp/profile")
    assert "--headless=new" in opts.arguments and "--disable-background-networking" in opts.arguments
    assert "--user-data-dir=/tmp/profile" in opts.arguments


# --- one deadline per download, whatever the framing ---------------------------------
class DripServer:
    """Loopback server that trickles a response one byte at a time in several framings.
    Each response stops by itself after DRIP_S seconds, or when the client hangs up."""

    DRIP_S = 12.0

    def __init__(self):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        drip = self.DRIP_S

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def trickle(self, data: bytes, step: float = 0.3):
                end = time.monotonic() + drip
                for byte in data:
                    if time.monotonic() > end:
                        return
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(step)

            def do_GET(self):
                body = b"\xff\xd8" + b"x" * 200
                try:
                    if self.path == "/length":       # Content-Length, body one byte at a time
                        self.send_response(200)
                        self.send_header("Content-Type", "image/jpeg")
                        self.send_header("Content-Length", str(len(body)))
                        self.end_headers()
                        self.trickle(body)
                    elif self.path == "/chunked":    # chunked, one byte per chunk
                        self.send_response(200)
                        self.send_header("Transfer-Encoding", "chunked")
                        self.end_headers()
                        end = time.monotonic() + drip
                        for byte in body:
                            if time.monotonic() > end:
                                return
                            self.wfile.write(b"1\r\n" + bytes([byte]) + b"\r\n")
                            self.wfile.flush()
                            time.sleep(0.3)
                    elif self.path == "/close":      # no length: the body ends when the server closes
                        self.close_connection = True
                        self.wfile.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
                        self.trickle(body)
                    elif self.path == "/headers":    # even the status line and headers trickle
                        self.trickle(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Slow: " + b"y" * 200)
                except OSError:
                    pass   # the client gave up: that is the point

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path):
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("framing", ["/length", "/chunked", "/close", "/headers"])
def test_total_timeout_holds_whatever_the_framing(framing):
    settings = DownloadSettings(connect_timeout=2, read_timeout=5, total_timeout=0.6, retries=2, backoff=0.01,
                                per_host_interval=0, allow_loopback=True)
    with DripServer() as server:
        t0 = time.monotonic()
        with pytest.raises(DownloadFailed) as info:
            Downloader(settings).fetch(server.url(framing))
        took = time.monotonic() - t0
    assert info.value.reason == "timeout" and "over 0.6s" in info.value.detail
    # the server would drip for 12 s and each byte comes well within read_timeout: only the
    # total deadline can have stopped it (generous margin for a loaded machine)
    assert took < DripServer.DRIP_S / 2
