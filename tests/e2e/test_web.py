"""The web page: `shoefind web` driven in headless Chromium, and its failure messages."""
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import REPO
from tests.helpers.infer_dataset import catalog_photo, make_catalog_dataset
from tests.helpers import png_header_only
from tests.helpers.browser import headless_chromium



def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
            return r.read() == b"ok"
    except OSError:
        return False


@pytest.fixture
def web_server(tiny_model, tmp_path):
    """`shoefind web` on a free port, with a small catalog; stopped (its whole process group) after."""
    ds = make_catalog_dataset(tmp_path / "catalog")
    port = free_port()
    log = open(tmp_path / "web.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "shoefind.cli.main", "web", "--port", str(port), "--model", tiny_model,
                             "--dataset", str(ds), "--data-dir", str(tmp_path / "data")],
                            cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 90
        while not healthy(port):
            assert proc.poll() is None, (tmp_path / "web.log").read_text()
            assert time.time() < deadline, "web page did not start in 90 s"
            time.sleep(0.5)
        yield f"http://127.0.0.1:{port}", port, ds
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
        log.close()


@pytest.fixture
def browser():
    with headless_chromium("1400,1800") as driver:
        yield driver


def test_upload_identify_change_and_requery_in_a_real_browser(web_server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait
    url, port, ds = web_server
    wait = WebDriverWait(browser, 60)

    def page_text():
        return browser.find_element(By.TAG_NAME, "body").text

    def upload(path):
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "input[type=file]"))[0].send_keys(str(path))

    browser.get(url)
    # bad uploads: one clear message each, and the page keeps working
    html = tmp_path / "page.jpg"
    html.write_bytes(b"<!DOCTYPE html><html>gone</html>")
    upload(html)
    wait.until(lambda d: "page.jpg: it is an HTML/XML page, not an image" in page_text())
    upload(png_header_only(tmp_path / "bomb.png", 30000, 30000))
    wait.until(lambda d: "decompression bomb" in page_text())
    assert "Traceback" not in page_text()

    upload(catalog_photo(ds, "Air Test Red"))
    wait.until(lambda d: "Identified:" in page_text() and "colour:" in page_text())
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".st-key-results-nearest img")) == 5)

    box = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "input[aria-label='Change it in words']"))[0]
    box.send_keys("same brand but blue", Keys.ENTER)
    grid = ".st-key-results-change img"
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, grid)) == 2)
    wait.until(lambda d: all(int(i.get_attribute("naturalWidth") or 0) > 0
                             for i in d.find_elements(By.CSS_SELECTOR, grid)))
    text = page_text()
    assert "brand: same as the photo (Nike)" in text
    assert "Air Test Blue" in text and "Dunk Test Blue" in text
    # the catalog's own photo: said next to the identification, which stays on top of the text search
    assert "This photo is in the catalog, labeled Air Test Red" in text
    assert text.index("Identified:") < text.index("This photo is in the catalog") < text.index(
        "Search the catalog by text")
    shots = Path(os.environ.get("SHOEFIND_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(shots / "web-page.png"))

    # clicking a result makes it the next query; the change applies to it
    browser.find_element(By.CSS_SELECTOR, ".st-key-use-change-0 button").click()
    wait.until(lambda d: "never the photo's own shoe: Air Test Blue" in page_text()
               or "never the photo's own shoe: Dunk Test Blue" in page_text())
    assert healthy(port)


def test_page_messages_for_unknown_model_and_empty_catalog(tiny_model, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("SHOEFIND_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("SHOEFIND_WEB_DATASET", str(tmp_path / "empty"))
    monkeypatch.setenv("SHOEFIND_MODEL", tiny_model)
    at = AppTest.from_file(str(REPO / "shoefind" / "web" / "app.py"), default_timeout=60).run()
    assert not at.exception and "has no shoes" in at.error[0].value
    monkeypatch.setenv("SHOEFIND_MODEL", str(tmp_path / "nope.pt"))
    at = AppTest.from_file(str(REPO / "shoefind" / "web" / "app.py"), default_timeout=60).run()
    assert not at.exception and "neither a CLIP model name" in at.error[0].value


def test_web_command_refuses_an_unknown_model(tmp_path):
    from typer.testing import CliRunner

    from shoefind.cli.main import app
    res = CliRunner().invoke(app, ["web", "--model", str(tmp_path / "nope.pt")])
    assert res.exit_code == 2 and "neither a CLIP model name" in " ".join(res.output.split())


def test_pick_a_catalog_photo_change_it_and_filter_the_results(tiny_model, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest
    ds = make_catalog_dataset(tmp_path / "catalog")
    monkeypatch.setenv("SHOEFIND_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("SHOEFIND_WEB_DATASET", str(ds))
    monkeypatch.setenv("SHOEFIND_MODEL", tiny_model)
    at = AppTest.from_file(str(REPO / "shoefind" / "web" / "app.py"), default_timeout=60).run()
    at.selectbox(key="pick").set_value(str(catalog_photo(ds, "Air Test Red"))).run()
    assert any(h.value.startswith("Identified:") for h in at.subheader)
    assert any("This photo is in the catalog, labeled **Air Test Red**" in i.value for i in at.info)
    at.text_input(key="change").input("same brand, different colour").run()
    shown = [m.value for m in at.markdown if " · score " in m.value]
    assert len(shown) == 2 and all("Nike · Blue" in s for s in shown)     # the Nike shoes that are not red
    at.multiselect(key="filter-hightop").set_value(["High"]).run()
    shown = [m.value for m in at.markdown if " · score " in m.value]
    assert [s.split("**")[1] for s in shown] == ["Air Test Blue"]
    assert not at.exception and not at.error
