"""Driving an image-search page in the browser: search, scroll, open previews, read full-size URLs.

What to click and where the full-size image appears are rules (rules/search_engines.yaml);
this module is only the interaction, the part that stays when the markup changes.
"""
from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from typing import Iterator
from urllib.parse import quote_plus, urlsplit

from shoefind.settings import load_rules
from shoefind.errors import UserError


class SearchUnavailable(UserError):
    """The search page cannot be reached or used; str() says why."""


@dataclass(frozen=True)
class SearchEngine:
    name: str
    base_url: str
    search_url: str
    thumbnails: tuple[str, ...]
    preview_image: tuple[str, ...]
    source_link: tuple[str, ...] = ()
    more_results: tuple[str, ...] = ()
    consent_buttons: tuple[str, ...] = ()
    thumbnail_url_patterns: tuple[str, ...] = ()

    @classmethod
    def from_rules(cls, name: str, base_url: str | None = None) -> "SearchEngine":
        engines = load_rules("search_engines")
        if name not in engines:
            raise UserError(f"unknown search engine '{name}' (rules/search_engines.yaml has: {', '.join(engines)})")
        spec = dict(engines[name])
        for key in ("base_url", "search_url", "thumbnails", "preview_image"):
            if not spec.get(key):
                raise UserError(f"rules/search_engines.yaml: engine '{name}' has no {key}")
        if base_url:
            spec["base_url"] = base_url.rstrip("/")
        lists = {k: tuple([v] if isinstance(v, str) else v or ()) for k, v in spec.items()
                 if k not in ("base_url", "search_url")}
        return cls(name=name, base_url=spec["base_url"], search_url=spec["search_url"], **lists)

    def url_for(self, query: str) -> str:
        return self.search_url.format(base_url=self.base_url, query=quote_plus(query))

    def check_reachable(self, timeout: float = 5.0) -> None:
        """Fail fast with one clear message when offline, before starting a browser."""
        parts = urlsplit(self.url_for("test"))
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            socket.create_connection((parts.hostname, port), timeout=timeout).close()
        except OSError as exc:
            reason = exc.strerror or str(exc) or type(exc).__name__
            raise SearchUnavailable(f"cannot reach {self.name} at {parts.hostname}:{port} ({reason}); "
                                    "are you offline?") from None

    def is_thumbnail_url(self, url: str) -> bool:
        return any(p in url for p in self.thumbnail_url_patterns)


@dataclass(frozen=True)
class SearchTimeouts:
    results: float = 15.0     # first results to appear
    preview: float = 10.0     # full-size URL to replace the thumbnail in the preview
    scroll: float = 5.0       # more results to load after scrolling
    poll: float = 0.05


@dataclass(frozen=True)
class Candidate:
    """A full-size image URL found through a result's preview."""
    query: str
    position: int
    image_url: str
    source_page: str | None
    thumbnail_url: str | None


@dataclass(frozen=True)
class PreviewFailure:
    """A result whose preview gave no usable full-size URL."""
    query: str
    position: int
    reason: str
    detail: str
    thumbnail_url: str | None


# The `prop` (src, href: absolute URLs) of the first displayed element matching the first
# selector that matches anything; XPath when the selector starts with "/" or "(".
_FIRST_VISIBLE_JS = """
const [selectors, prop] = arguments;
for (const sel of selectors) {
  let found = [];
  if (sel.startsWith('/') || sel.startsWith('(')) {
    const snap = document.evaluate(sel, document, null, XPathResult.ORDERED_NODE_SNAPSHOT_TYPE, null);
    for (let i = 0; i < snap.snapshotLength; i++) found.push(snap.snapshotItem(i));
  } else {
    found = Array.from(document.querySelectorAll(sel));
  }
  if (!found.length) continue;
  for (const el of found) {
    const style = window.getComputedStyle(el);
    if (el.getClientRects().length && style.visibility !== 'hidden' && style.display !== 'none') {
      return el[prop] || el.getAttribute(prop);
    }
  }
}
return null;
"""


def _by(selector: str):
    from selenium.webdriver.common.by import By
    return (By.XPATH, selector) if selector.startswith(("/", "(")) else (By.CSS_SELECTOR, selector)


def _find_all(scope, selectors) -> list:
    for sel in selectors:
        found = scope.find_elements(*_by(sel))
        if found:
            return found
    return []


def _is_real_url(url: str | None) -> bool:
    return bool(url) and url.startswith(("http://", "https://"))


class ImageSearch:
    """One browser tab driving one engine; `results(query)` yields candidates in page order."""

    def __init__(self, driver, engine: SearchEngine, timeouts: SearchTimeouts = SearchTimeouts()):
        self.driver = driver
        self.engine = engine
        self.timeouts = timeouts

    def results(self, query: str) -> Iterator[Candidate | PreviewFailure]:
        from selenium.common.exceptions import (ElementClickInterceptedException, ElementNotInteractableException,
                                                StaleElementReferenceException, TimeoutException, WebDriverException)
        self._open(query)
        position = 0
        while True:
            thumbs = _find_all(self.driver, self.engine.thumbnails)
            if position >= len(thumbs):
                if not self._load_more(len(thumbs)):
                    return
                continue
            thumb = thumbs[position]
            position += 1
            thumb_src = None
            try:
                thumb_src = thumb.get_attribute("src")
                found = self._open_preview(thumb, thumb_src)
            except TimeoutException:
                yield PreviewFailure(query, position, "preview-timeout",
                                     f"no full-size URL within {self.timeouts.preview:g}s", thumb_src)
                continue
            except (StaleElementReferenceException, ElementNotInteractableException,
                    ElementClickInterceptedException) as exc:
                yield PreviewFailure(query, position, "preview-click", type(exc).__name__, thumb_src)
                continue
            except WebDriverException as exc:
                raise SearchUnavailable(f"the browser failed on '{query}': {(exc.msg or '').splitlines()[0]}") from None
            image_url, source_page = found
            yield Candidate(query, position, image_url, source_page, thumb_src)

    # --- steps ------------------------------------------------------------------------
    def _open(self, query: str) -> None:
        from selenium.common.exceptions import TimeoutException, WebDriverException
        from selenium.webdriver.support.ui import WebDriverWait
        url = self.engine.url_for(query)
        try:
            self.driver.get(url)
        except TimeoutException:
            raise SearchUnavailable(f"{self.engine.name} did not load {url} in time") from None
        except WebDriverException as exc:
            raise SearchUnavailable(f"cannot open {url}: {(exc.msg or '').splitlines()[0]}") from None
        if self.driver.execute_script("return !!document.querySelector('#main-frame-error, body.neterror')"):
            raise SearchUnavailable(f"cannot load {url} (the browser shows a network error page; offline?)")
        self._dismiss_consent()
        try:
            WebDriverWait(self.driver, self.timeouts.results, self.timeouts.poll).until(
                lambda d: _find_all(d, self.engine.thumbnails))
        except TimeoutException:
            pass   # no results (or the selectors are out of date): the caller sees zero found

    def _dismiss_consent(self) -> None:
        for button in _find_all(self.driver, self.engine.consent_buttons):
            try:
                if button.is_displayed():
                    button.click()
                    return
            except Exception:  # a consent dialog that cannot be clicked is not fatal
                continue

    def _click(self, element) -> None:
        from selenium.common.exceptions import ElementClickInterceptedException, ElementNotInteractableException
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", element)
        try:
            element.click()
        except (ElementClickInterceptedException, ElementNotInteractableException):
            # an overlay (sticky header, tooltip) covers it: a DOM click still opens the preview
            self.driver.execute_script("arguments[0].click();", element)

    def _preview_src(self) -> str | None:
        return self._first_visible(self.engine.preview_image, "src")

    def _first_visible(self, selectors, prop: str) -> str | None:
        # One script call instead of several WebDriver round trips per poll.
        return self.driver.execute_script(_FIRST_VISIBLE_JS, list(selectors), prop)

    def _open_preview(self, thumb, thumb_src: str | None) -> tuple[str, str | None]:
        from selenium.webdriver.support.ui import WebDriverWait
        before = self._preview_src()
        self._click(thumb)

        def full_size_url(_):
            src = self._preview_src()
            # The panel first shows the thumbnail (often a data: URL); the real URL comes later.
            if (_is_real_url(src) and src != thumb_src and src != before
                    and not self.engine.is_thumbnail_url(src)):
                return src
            return None

        image_url = WebDriverWait(self.driver, self.timeouts.preview, self.timeouts.poll).until(full_size_url)
        source = self._first_visible(self.engine.source_link, "href") if self.engine.source_link else None
        if not _is_real_url(source):
            source = None
        return image_url, source

    def _load_more(self, count: int) -> bool:
        """Scroll (and press "more results"); True if more thumbnails appeared in time."""
        self.driver.execute_script("window.scrollTo(0, document.body.scrollHeight);")
        deadline = time.monotonic() + self.timeouts.scroll
        pressed = False
        while time.monotonic() < deadline:
            if len(_find_all(self.driver, self.engine.thumbnails)) > count:
                return True
            if not pressed:
                for button in _find_all(self.driver, self.engine.more_results):
                    try:
                        if button.is_displayed():
                            self.driver.execute_script("arguments[0].click();", button)
                            pressed = True
                            break
                    except Exception:
                        continue
            time.sleep(self.timeouts.poll)
            self.driver.execute_script("window.scrollTo(0, document.body.scrollHeight);")
        return False
