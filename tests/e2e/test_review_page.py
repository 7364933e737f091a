"""The review page in a real headless Chromium: keyboard decisions land in the queue and dataset."""
from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from shoefind.curate.crawl_checks import CrawlRules, load_crawl_rules
from shoefind.curate.filter import run_filter
from shoefind.curate.queue import ReviewQueue
from shoefind.curate.review_server import ReviewServer
from tests.helpers import filter_inputs as inputs

SHOE = "Converse_High_Green_Plain Sole_Chuck 70 Midnight Clover"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture
def server(tmp_path, data_dir):
    crawl = tmp_path / "crawl" / SHOE
    for i, colour in enumerate([(200, 30, 30), (30, 160, 60), (40, 40, 200)]):
        inputs.photo(crawl / f"photo {i}.jpg", color=colour, seed=i)
    run_filter(crawl.parent, data_dir, checker=None, rules=CrawlRules(without_model="review"))
    srv = ReviewServer(ReviewQueue(data_dir), load_crawl_rules().human_rules, port=0)
    srv.start_in_background()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def browser():
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        pytest.skip("Debian chromium/chromedriver are not installed")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1200,900"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    yield driver
    driver.quit()


def test_keyboard_review_in_headless_chromium(server, browser, data_dir):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    queue = server.queue
    waiting = queue.items("review")
    assert len(waiting) == 3
    browser.get(server.url)
    wait = WebDriverWait(browser, 15)
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".card")) == 3)
    page = browser.find_element(By.TAG_NAME, "body").text
    assert "0 of 3 decided" in page
    assert "heel" in page.lower()                        # the human rules are shown
    assert "semantic:skipped" in page                    # and each image's reasons
    # every thumbnail really loaded
    assert all(browser.execute_script("return arguments[0].naturalWidth", img) > 0
               for img in browser.find_elements(By.CSS_SELECTOR, ".card img"))

    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys("a")                                  # accept the first
    wait.until(ec.text_to_be_present_in_element((By.ID, "progress"), "1 of 3 decided"))
    body.send_keys("r")                                  # reject the second (the cursor moved on)
    wait.until(ec.text_to_be_present_in_element((By.ID, "progress"), "2 of 3 decided"))
    body.send_keys(Keys.ARROW_LEFT)                      # moving back over decided cards changes nothing
    browser.find_elements(By.CSS_SELECTOR, ".card")[2].find_element(By.CSS_SELECTOR, "button.accept").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "progress"), "3 of 3 decided"))

    first, second, third = (queue.get(i.id) for i in waiting)
    assert (first.status, second.status, third.status) == ("accepted", "rejected", "accepted")
    assert first.decided_by == "review-page" and first.decided_at
    dataset = data_dir / "images" / SHOE
    assert sorted(p.name for p in dataset.iterdir()) == sorted(f"{i.sha256}.jpg" for i in (first, third))
    assert Path(second.stored_path).is_file() and Path(second.stored_path).parent.name == "rejected"
    assert queue.counts()["review"] == 0


def test_writes_need_the_page_token(server):
    item = server.queue.items("review")[0]
    req = urllib.request.Request(server.url + "api/decide", data=json.dumps({"id": item.id, "decision": "accept"})
                                 .encode(), headers={"Content-Type": "application/json"}, method="POST")
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(req, timeout=5)
    assert exc.value.code == 403
    assert server.queue.get(item.id).status == "review"
    req.add_header("X-Review-Token", server.token)
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert json.load(resp)["item"]["status"] == "accepted"
    assert server.server_address[0] == "127.0.0.1"
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(server.url + "image/99999", timeout=5)
    assert missing.value.code == 404
    rebound = urllib.request.Request(server.url + "api/queue", headers={"Host": "evil.example:80"})
    with pytest.raises(urllib.error.HTTPError) as wrong_host:
        urllib.request.urlopen(rebound, timeout=5)
    assert wrong_host.value.code == 421
