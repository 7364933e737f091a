"""The review page with a model's guesses, in a real headless Chromium: the waiting photos come most
informative first, each card shows the shoe it was crawled for and the model's guesses with their
probabilities, and accepting the model's suggested label is one click (or the S key); the photo is filed
under that shoe through the decision transactions."""
from __future__ import annotations

from pathlib import Path

import pytest

from shoefind.curate.crawl_checks import load_crawl_rules
from shoefind.curate.queue import ReviewQueue
from shoefind.curate.review_server import ReviewServer
from tests.helpers import make_photo
from tests.helpers.review_queue import _verdict
from tests.helpers.browser import headless_chromium

RED, BLUE, GREEN = ("Nike_High_Red_Plain Sole_Air Test", "Nike_Low_Blue_Plain Sole_Dunk Test",
                    "Vans_Low_Green_Rubber Sole_Old Test")


@pytest.fixture
def server(tmp_path, data_dir):
    for shoe in (RED, BLUE, GREEN):
        make_photo(data_dir / "images" / shoe / "own.jpg", seed=hash(shoe) % 100)
    rows = []
    for i, (margin, guesses, suggested) in enumerate([(0.93, [(RED, 0.95), (GREEN, 0.02)], None),
                                                      (0.94, [(BLUE, 0.96), (RED, 0.02)], BLUE),
                                                      (0.05, [(GREEN, 0.48), (RED, 0.43)], None)]):
        path = make_photo(tmp_path / "crawl" / RED / f"photo {i}.jpg", color=(60 * i, 90, 200), seed=i)
        rows.append(_verdict(path, RED, [{"rule": "triage:unsure", "reason": "model m0001 is unsure"}], {})
                    | {"intended": RED, "guesses": [{"shoe": s, "probability": p} for s, p in guesses],
                       "suggested": suggested, "margin": margin, "triaged_by": "m0001"})
    queue = ReviewQueue(data_dir)
    queue.record(rows, run_id="test")
    srv = ReviewServer(queue, load_crawl_rules().human_rules, port=0)
    srv.start_in_background()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def browser():
    with headless_chromium("1200,900") as driver:
        yield driver


def test_accepting_the_suggested_label_is_one_click(server, browser, data_dir):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    queue = server.queue
    wait = WebDriverWait(browser, 20)
    cards = lambda: browser.find_elements(By.CSS_SELECTOR, ".card")  # noqa: E731
    browser.get(server.url)
    wait.until(lambda d: len(cards()) == 3)
    names = [queue.get(int(c.get_attribute("data-id"))).source for c in cards()]
    # most informative first: the photo the model is least sure of leads
    assert Path(names[0]).name == "photo 2.jpg"
    first = cards()[0].text
    assert "crawled for" not in first and "Old Test 0.48" in first and "Air Test 0.43" in first
    suggested = next(c for c in cards() if "Accept as " + BLUE in c.text)
    target = int(suggested.get_attribute("data-id"))
    suggested.find_element(By.CSS_SELECTOR, "button.accept-as").click()
    wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-last-decision") == f"{target}:accepted")
    item = queue.get(target)
    assert (item.status, item.folder, item.decided_by) == ("accepted", BLUE, "review-page")
    assert (data_dir / "images" / BLUE / f"{item.sha256}.jpg").is_file()
    assert not (data_dir / "images" / RED / f"{item.sha256}.jpg").exists()

    # the S key files the current card under its offer (the top guess when no suggestion): the unsure one
    unsure = int(cards()[0].get_attribute("data-id"))
    cards()[0].find_element(By.CSS_SELECTOR, ".shoe").click()
    browser.find_element(By.TAG_NAME, "body").send_keys("s")
    wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-last-decision") == f"{unsure}:accepted")
    assert queue.get(unsure).folder == GREEN
    # undo puts it back, under its own folder
    browser.find_element(By.TAG_NAME, "body").send_keys("u")
    wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-last-undo") == str(unsure))
    assert (queue.get(unsure).status, queue.get(unsure).label) == ("review", None)
