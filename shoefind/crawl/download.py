"""Downloading one image URL safely: guarded addresses, timeouts, retries, size cap, byte checks.

The result is judged by its bytes (shoefind.images decodes them), never by Content-Type or
by the URL's extension: search results serve HTML as image/jpeg and JPEGs as text/plain.
"""
from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import requests

from shoefind.images import ImageError, open_image, probe, sha256_bytes
from shoefind.crawl.net_guard import AddressRefused, check_url, guarded_session
from shoefind.crawl.rate_limit import HostRateLimiter
from shoefind.errors import ShoefindError

EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp"}
USER_AGENT = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/124.0 Safari/537.36 shoefind-crawler")


@dataclass(frozen=True)
class DownloadSettings:
    connect_timeout: float = 5.0
    read_timeout: float = 15.0
    total_timeout: float = 60.0           # one deadline for the whole download: every redirect,
                                          # retry, header and body byte (a trickle never hits read_timeout)
    max_bytes: int = 20 * 1024 * 1024
    retries: int = 2                      # extra attempts after the first, for transient errors
    backoff: float = 0.5                  # seconds, doubled on each retry
    max_redirects: int = 5
    per_host_interval: float = 0.5        # politeness: seconds between requests to one host
    allow_loopback: bool = False          # tests only: the fake search site runs on 127.0.0.1


class DownloadFailed(ShoefindError):
    """`reason` is a short code for reports (http-404, timeout, refused, too-large, not-an-image...)."""

    def __init__(self, reason: str, detail: str, retryable: bool = False, final_url: str | None = None):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.retryable = retryable
        self.final_url = final_url


@dataclass(frozen=True)
class Fetched:
    url: str            # after redirects
    data: bytes
    sha256: str
    format: str         # JPEG | PNG | WEBP
    width: int
    height: int

    @property
    def extension(self) -> str:
        return EXTENSIONS[self.format]


def validate_image(data: bytes, url: str) -> tuple[str, int, int]:
    """(format, width, height) of decodable JPEG/PNG/WebP bytes, else DownloadFailed."""
    try:
        info = probe(data)
        if info.format not in EXTENSIONS:
            raise DownloadFailed("unsupported-format", f"{info.format} (want JPEG, PNG or WebP)", final_url=url)
        open_image(data)   # full decode: catches truncated and corrupt files the header hides
    except ImageError as exc:
        raise DownloadFailed("not-an-image", str(exc).split(": ", 1)[-1], final_url=url) from None
    return info.format, info.width, info.height


class _Deadline:
    """Cuts a download off at its deadline, however the server frames or trickles it.

    A timer shuts down the socket being read (headers or body, any framing), which ends any
    blocked read at once; `fired` tells the reader that what it got was cut short."""

    def __init__(self, seconds: float):
        self.at = time.monotonic() + seconds
        self.fired = False
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def remaining(self) -> float:
        return max(0.0, self.at - time.monotonic())

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sock = sock
            if self.fired:
                _shutdown(sock)

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            if self._sock is not None:
                _shutdown(self._sock)

    def cancel(self) -> None:
        self._timer.cancel()
        with self._lock:
            self._sock = None


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed


class Downloader:
    """Thread-safe: one per crawl, shared by the download threads."""

    def __init__(self, settings: DownloadSettings = DownloadSettings()):
        self.settings = settings
        self._current = threading.local()   # this thread's download deadline
        self.session = guarded_session(settings.allow_loopback, on_response_socket=self._watch)
        self.session.headers["User-Agent"] = USER_AGENT
        self.rate = HostRateLimiter(settings.per_host_interval)

    def close(self) -> None:
        self.session.close()

    def _watch(self, sock: socket.socket) -> None:
        deadline = getattr(self._current, "deadline", None)
        if deadline is not None:
            deadline.watch(sock)

    def fetch(self, url: str) -> Fetched:
        """Download and validate `url` within settings.total_timeout; raises DownloadFailed with a reason."""
        s = self.settings
        deadline = self._current.deadline = _Deadline(s.total_timeout)
        try:
            for attempt in range(s.retries + 1):
                try:
                    final_url, data = self._get(url, deadline)
                    if deadline.fired:
                        raise self._too_slow(url)
                    break
                except (DownloadFailed, OSError) as exc:
                    if deadline.fired:
                        raise self._too_slow(getattr(exc, "final_url", None) or url) from None
                    if not isinstance(exc, DownloadFailed):
                        raise DownloadFailed("connection", _short(str(exc)), retryable=True, final_url=url) from None
                    pause = s.backoff * (2 ** attempt)
                    if not exc.retryable or attempt == s.retries or pause >= deadline.remaining():
                        raise
                    time.sleep(pause)
        finally:
            deadline.cancel()
            self._current.deadline = None
        fmt, width, height = validate_image(data, final_url)
        return Fetched(final_url, data, sha256_bytes(data), fmt, width, height)

    def _too_slow(self, url: str) -> DownloadFailed:
        return DownloadFailed("timeout", f"download took over {self.settings.total_timeout:g}s",
                              retryable=True, final_url=url)

    def _get(self, url: str, deadline: _Deadline) -> tuple[str, bytes]:
        s = self.settings
        current = url
        for _ in range(s.max_redirects + 1):
            if deadline.fired:
                raise self._too_slow(current)
            try:
                check_url(current, s.allow_loopback)
            except AddressRefused as exc:
                raise DownloadFailed("refused", str(exc), final_url=current) from None
            except OSError as exc:   # DNS failure: may be transient
                raise DownloadFailed("dns", str(exc), retryable=True, final_url=current) from None
            self.rate.wait(urlsplit(current).hostname or "")
            try:
                left = max(0.01, deadline.remaining())
                resp = self.session.get(current, stream=True, allow_redirects=False,
                                        timeout=(min(s.connect_timeout, left), min(s.read_timeout, left)))
            except AddressRefused as exc:
                raise DownloadFailed("refused", str(exc), final_url=current) from None
            except (requests.exceptions.InvalidURL, requests.exceptions.InvalidSchema,
                    requests.exceptions.MissingSchema) as exc:
                raise DownloadFailed("bad-url", _short(str(exc)), final_url=current) from None
            except requests.RequestException as exc:
                raise _network_failure(exc, current) from None
            with resp:
                if resp.is_redirect:
                    # Followed by hand so every hop's address is checked before connecting.
                    current = urljoin(current, resp.headers["location"])
                    continue
                if resp.status_code >= 400:
                    transient = resp.status_code in (408, 425, 429) or resp.status_code >= 500
                    raise DownloadFailed(f"http-{resp.status_code}", resp.reason or "error status",
                                         retryable=transient, final_url=current)
                return current, self._read_capped(resp, current, deadline)
        raise DownloadFailed("too-many-redirects", f"more than {s.max_redirects}", final_url=current)

    def _read_capped(self, resp: requests.Response, url: str, deadline: _Deadline) -> bytes:
        s = self.settings
        declared = resp.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > s.max_bytes:
            raise DownloadFailed("too-large", f"{int(declared):,} bytes declared, cap is {s.max_bytes:,}",
                                 final_url=url)
        chunks, size = [], 0
        try:
            for chunk in resp.iter_content(64 * 1024):
                size += len(chunk)
                if size > s.max_bytes:
                    raise DownloadFailed("too-large", f"more than the cap of {s.max_bytes:,} bytes", final_url=url)
                if deadline.fired:
                    raise self._too_slow(url)
                chunks.append(chunk)
        except requests.RequestException as exc:
            raise _network_failure(exc, url) from None
        return b"".join(chunks)


def _network_failure(exc: requests.RequestException, url: str) -> DownloadFailed:
    text = str(exc)
    if isinstance(exc, requests.Timeout) or "timed out" in text.lower():
        return DownloadFailed("timeout", _short(text), retryable=True, final_url=url)
    if isinstance(exc, requests.exceptions.SSLError):
        return DownloadFailed("tls", _short(text), final_url=url)
    return DownloadFailed("connection", _short(text), retryable=True, final_url=url)


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
