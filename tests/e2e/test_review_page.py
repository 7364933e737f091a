"""The review page in a real headless Chromium: keyboard decisions land in the queue and dataset;
pagination, filters, sort, bulk decisions, undo, duplicates side by side; the server's safety."""
from __future__ import annotations

import json
import os
import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from shoefind.curate.crawl_checks import CrawlRules, load_crawl_rules
from shoefind.curate.filter import run_filter
from shoefind.curate.queue import ReviewQueue
from shoefind.curate.review_server import ReviewServer
from tests.helpers import filter_inputs as inputs
from tests.helpers.review_queue import LONG_NAME, ODD_FOLDER, fill_queue
from tests.helpers.browser import headless_chromium

SHOE = "Converse_High_Green_Plain Sole_Chuck 70 Midnight Clover"
# where browser tests save screenshots (scripts/screenshots.sh points it at docs/)
SCREENSHOTS = os.environ.get("SHOEFIND_SCREENSHOTS")


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
    with headless_chromium("1200,900") as driver:
        yield driver


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
    req = urllib.request.Request(server.base_url + "api/decide", data=json.dumps({"id": item.id, "decision": "accept"})
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
        urllib.request.urlopen(server.base_url + "image/99999?token=" + server.token, timeout=5)
    assert missing.value.code == 404
    rebound = urllib.request.Request(server.base_url + "api/queue", headers={"Host": "evil.example:80",
                                                                            "X-Review-Token": server.token})
    with pytest.raises(urllib.error.HTTPError) as wrong_host:
        urllib.request.urlopen(rebound, timeout=5)
    assert wrong_host.value.code == 421


def raw_request(server, data: bytes) -> tuple[int, dict, bytes]:
    """Send bytes as they are (no client-side checks) and read the whole answer."""
    host, port = server.server_address[:2]
    with socket.create_connection((host, port), timeout=10) as conn:
        conn.sendall(data)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def test_image_bytes_need_the_token_or_the_page_session(server):
    item = server.queue.items("review")[0]
    with pytest.raises(urllib.error.HTTPError) as anonymous:
        urllib.request.urlopen(server.base_url + f"image/{item.id}", timeout=5)
    assert anonymous.value.code == 403
    for path in ("", "api/queue"):
        with pytest.raises(urllib.error.HTTPError) as no_token:
            urllib.request.urlopen(server.base_url + path, timeout=5)
        assert no_token.value.code == 403
    # the printed link opens the page and gives the browser a same-origin, HttpOnly session cookie
    with urllib.request.urlopen(server.url, timeout=5) as resp:
        cookie = resp.headers["Set-Cookie"]
    assert server.token in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    session = urllib.request.Request(server.base_url + f"image/{item.id}", headers={"Cookie": cookie.split(";")[0]})
    with urllib.request.urlopen(session, timeout=5) as resp:
        assert resp.read() == Path(item.stored_path).read_bytes()
    wrong = urllib.request.Request(server.base_url + f"image/{item.id}", headers={"Cookie": "shoefind_review=nope"})
    with pytest.raises(urllib.error.HTTPError) as forged:
        urllib.request.urlopen(wrong, timeout=5)
    assert forged.value.code == 403


MALFORMED = {
    "huge float id": (b"POST /api/decide HTTP/1.1\r\nHost: {host}\r\nX-Review-Token: {token}\r\n"
                      b"Content-Length: {n}\r\n\r\n", b'{"id": 1e308, "decision": "accept"}'),
    "id past SQLite": (b"POST /api/decide HTTP/1.1\r\nHost: {host}\r\nX-Review-Token: {token}\r\n"
                       b"Content-Length: {n}\r\n\r\n", b'{"id": 99999999999999999999999, "decision": "accept"}'),
    "bulk with a bad id": (b"POST /api/decide HTTP/1.1\r\nHost: {host}\r\nX-Review-Token: {token}\r\n"
                           b"Content-Length: {n}\r\n\r\n", b'{"ids": [1, "1e308"], "decision": "reject"}'),
    "Content-Length abc": (b"POST /api/decide HTTP/1.1\r\nHost: {host}\r\nX-Review-Token: {token}\r\n"
                           b"Content-Length: abc\r\n\r\n", b"{}"),
    "negative Content-Length": (b"POST /api/decide HTTP/1.1\r\nHost: {host}\r\nX-Review-Token: {token}\r\n"
                                b"Content-Length: -5\r\n\r\n", b"{}"),
    "body not JSON": (b"POST /api/decide HTTP/1.1\r\nHost: {host}\r\nX-Review-Token: {token}\r\n"
                      b"Content-Length: {n}\r\n\r\n", b"\xff\xfe not json"),
    "image id 1e308": (b"GET /image/1e308?token={token} HTTP/1.1\r\nHost: {host}\r\n\r\n", b""),
    "image id too big": (b"GET /image/99999999999999999999999?token={token} HTTP/1.1\r\nHost: {host}\r\n\r\n", b""),
    "raw non-ASCII path": (b"GET /image/\xe9\xff?token={token} HTTP/1.1\r\nHost: {host}\r\n\r\n", b""),
    "raw non-ASCII header": (b"GET /api/queue HTTP/1.1\r\nHost: {host}\r\nX-Review-Token: \xe9\xff\r\n\r\n", b""),
    "bad page number": (b"GET /api/queue?page=1e308&token={token} HTTP/1.1\r\nHost: {host}\r\n\r\n", b""),
    "30 query fields": (b"GET /api/queue?" + b"&".join(b"f%d=1" % i for i in range(29)) +
                        b"&token={token} HTTP/1.1\r\nHost: {host}\r\n\r\n", b""),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_requests_get_400_with_the_framing_headers(server, case):
    head, body = MALFORMED[case]
    host = f"127.0.0.1:{server.server_address[1]}".encode()
    head = (head.replace(b"{host}", host).replace(b"{token}", server.token.encode())
            .replace(b"{n}", str(len(body)).encode()))
    before = server.queue.counts()
    status, headers, answer = raw_request(server, head.replace(b"Connection", b"X") + body)
    assert status in (400, 403), (status, answer)   # the non-ASCII token header is simply not the token
    if case != "raw non-ASCII header":
        assert status == 400 and json.loads(answer)["error"]
    assert headers["x-frame-options"] == "DENY" and "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    assert server.queue.counts() == before
    with urllib.request.urlopen(server.url, timeout=5) as resp:      # and the server still answers
        assert resp.status == 200


def test_every_response_forbids_framing(server):
    item = server.queue.items("review")[0]
    urls = [server.url, server.base_url, server.base_url + f"api/queue?token={server.token}",
            server.base_url + f"image/{item.id}?token={server.token}", server.base_url + "nowhere"]
    for url in urls:
        try:
            resp = urllib.request.urlopen(url, timeout=5)
        except urllib.error.HTTPError as exc:
            resp = exc
        assert resp.headers["X-Frame-Options"] == "DENY", url
        assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"], url
        assert resp.headers["X-Content-Type-Options"] == "nosniff", url


@pytest.fixture
def big_server(tmp_path, data_dir):
    queue = fill_queue(data_dir, tmp_path / "crawl", n=60)
    srv = ReviewServer(queue, load_crawl_rules().human_rules, port=0)
    srv.start_in_background()
    yield srv
    srv.shutdown()
    srv.server_close()


def overflowing_cards(browser) -> list[str]:
    """Cards (or anything inside them) whose content is wider than the box."""
    return browser.execute_script("""
        const bad = [];
        document.querySelectorAll('.card').forEach(c => {
          [c, ...c.querySelectorAll('*')].forEach(e => {
            if (e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).display !== 'inline') bad.push(c.id + ' ' + e.className);
          });
          const box = c.getBoundingClientRect();
          c.querySelectorAll('*').forEach(e => { const r = e.getBoundingClientRect();
            if (r.width && (r.right > box.right + 1 || r.left < box.left - 1)) bad.push(c.id + ' child ' + e.className); });
        });
        return bad;""")


def test_review_page_on_a_large_queue(big_server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select, WebDriverWait

    queue = big_server.queue
    wait = WebDriverWait(browser, 15)
    cards = lambda: browser.find_elements(By.CSS_SELECTOR, ".card")  # noqa: E731
    browser.get(big_server.url)
    wait.until(lambda d: len(cards()) == 48)                        # pagination: 61 items, 48 per page
    assert "page 1 of 2 (61 images)" in browser.find_element(By.ID, "page-info").text
    assert "0 of 61 decided" in browser.find_element(By.ID, "progress").text

    # long names wrap, nothing overflows a card; a screenshot shows it
    assert any(LONG_NAME in c.text.replace("\n", "") for c in cards())
    assert overflowing_cards(browser) == []
    shots = Path(SCREENSHOTS) if SCREENSHOTS else tmp_path
    shots.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(shots / "review-page.png"))

    # a folder not named Brand_Top_Color_Sole_Name carries a warning badge; a good one does not
    for c in cards()[:6]:
        badge = c.find_elements(By.CSS_SELECTOR, ".badge.warn")
        assert bool(badge) == (ODD_FOLDER in c.text), c.text
    # the possible duplicate is shown side by side with its match, both images loaded
    browser.find_element(By.ID, "next").click()
    wait.until(lambda d: "page 2 of 2" in d.find_element(By.ID, "page-info").text and len(cards()) == 13)
    pair = browser.find_element(By.CSS_SELECTOR, ".card.pair")
    images = pair.find_elements(By.CSS_SELECTOR, "img")
    assert len(images) == 2
    wait.until(lambda d: all(d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", i)
                             for i in images))
    assert "its possible duplicate" in pair.text
    assert overflowing_cards(browser) == []

    # filters by reason and folder, from the facets the server counted
    Select(browser.find_element(By.ID, "f-reason")).select_by_value("possible_duplicate")
    wait.until(lambda d: len(cards()) == 1 and "1 images" in d.find_element(By.ID, "page-info").text)
    Select(browser.find_element(By.ID, "f-reason")).select_by_value("")
    Select(browser.find_element(By.ID, "f-folder")).select_by_value(ODD_FOLDER)
    wait.until(lambda d: "(20 images)" in d.find_element(By.ID, "page-info").text)
    assert all(ODD_FOLDER in c.text for c in cards())
    Select(browser.find_element(By.ID, "f-folder")).select_by_value("")

    # sort by a score, high first
    Select(browser.find_element(By.ID, "f-sort")).select_by_value("shoe:desc")
    wait.until(lambda d: "(61 images)" in d.find_element(By.ID, "page-info").text and len(cards()) == 48)
    shown = [c.get_attribute("data-id") for c in cards()]
    scores = [queue.get(int(i)).scores["shoe"] for i in shown]
    assert scores == sorted(scores, reverse=True) and scores[0] > scores[-1]

    # bulk: select three, reject them together; each lands in rejected/
    for k in range(3):          # each click re-renders the grid: find the card again
        cards()[k].find_element(By.CSS_SELECTOR, "input.select").click()
    browser.find_element(By.ID, "bulk-reject").click()
    wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-last-bulk") == "3:reject")
    rejected = [queue.get(int(i)) for i in shown[:3]]
    assert all(r.status == "rejected" and r.decided_by == "review-page" for r in rejected)
    assert "3 of 61 decided" in browser.find_element(By.ID, "progress").text

    # keyboard still works: accept the current card, then undo it
    body = browser.find_element(By.TAG_NAME, "body")
    cards()[5].find_element(By.CSS_SELECTOR, ".shoe").click()
    target = int(cards()[5].get_attribute("data-id"))
    body.send_keys("a")
    wait.until(lambda d: "4 of 61 decided" in d.find_element(By.ID, "progress").text)
    accepted = queue.get(target)
    assert accepted.status == "accepted" and Path(accepted.stored_path).is_file()
    body.send_keys("u")
    wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-last-undo") == str(target))
    back = queue.get(target)
    assert back.status == "review" and back.decided_by is None and Path(back.stored_path).is_file()
    assert not Path(accepted.stored_path).exists()                 # out of the dataset again
    assert "3 of 61 decided" in browser.find_element(By.ID, "progress").text
    body.send_keys(Keys.ARROW_RIGHT)
    assert browser.find_element(By.CSS_SELECTOR, ".card.current").get_attribute("data-id") != str(target)
