"""A headless Chromium for crawling: local Debian chromium/chromedriver first, a fresh profile.

webdriver-manager is only a fallback for machines without a local driver; offline it fails,
and that becomes one clear BrowserUnavailable message.
"""
from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path
from typing import Iterator
from shoefind.errors import UserError

LOCAL_BROWSERS = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
LOCAL_DRIVERS = ("/usr/bin/chromedriver",)


class BrowserUnavailable(UserError):
    """No usable Chromium/chromedriver; str() says what to install."""


def _first_existing(candidates, setting: str) -> str | None:
    from shoefind.settings import current
    override = getattr(current(), setting)
    if override:
        return override if Path(override).exists() else None
    for path in candidates:
        if Path(path).exists():
            return path
    return shutil.which(Path(candidates[0]).name)


def local_browser() -> tuple[str | None, str | None]:
    """(chromium, chromedriver) this machine has: $SHOEFIND_CHROMIUM / $SHOEFIND_CHROMEDRIVER first, then the
    Debian paths and PATH; None for what is missing. The crawler uses exactly these."""
    return _first_existing(LOCAL_BROWSERS, "chromium"), _first_existing(LOCAL_DRIVERS, "chromedriver")


def chrome_options(profile_dir: str, headless: bool = True, window: str = "1280,1600"):
    from selenium.webdriver import ChromeOptions
    opts = ChromeOptions()
    binary = _first_existing(LOCAL_BROWSERS, "chromium")
    if binary:
        opts.binary_location = binary
    args = [
        f"--user-data-dir={profile_dir}",          # fresh profile: no cookies or history carried over
        "--disable-background-networking",          # no update checks, sync, or safe-browsing pings
        "--disable-component-update",
        "--disable-default-apps",
        "--disable-sync",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-dev-shm-usage",                  # containers have a small /dev/shm
        "--no-sandbox",                             # containers run as root without user namespaces
        "--disable-gpu",
        f"--window-size={window}",
        "--lang=en-US",
    ]
    if headless:
        args.append("--headless=new")
    for arg in args:
        opts.add_argument(arg)
    return opts


def _driver_path() -> str:
    local = _first_existing(LOCAL_DRIVERS, "chromedriver")
    if local:
        return local
    try:
        from webdriver_manager.chrome import ChromeDriverManager
        from webdriver_manager.core.os_manager import ChromeType
        return ChromeDriverManager(chrome_type=ChromeType.CHROMIUM).install()
    except Exception as exc:  # webdriver-manager raises many types; all mean "no driver"
        raise BrowserUnavailable(
            "no local chromedriver (apt-get install chromium chromium-driver) and webdriver-manager "
            f"could not download one (offline?): {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        ) from None


@contextlib.contextmanager
def chromium(headless: bool = True, page_load_timeout: float = 30.0) -> Iterator:
    """A Selenium Chrome driver, quit and its profile deleted on exit."""
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="shoefind-chromium-")
    try:
        try:
            driver = webdriver.Chrome(service=Service(_driver_path()), options=chrome_options(profile, headless))
        except WebDriverException as exc:
            raise BrowserUnavailable(f"cannot start Chromium: {(exc.msg or str(exc)).splitlines()[0]}") from None
        driver.set_page_load_timeout(page_load_timeout)
        try:
            yield driver
        finally:
            with contextlib.suppress(Exception):
                driver.quit()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
