"""The crawler end to end: Debian's Chromium drives the fake image-search site on 127.0.0.1."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from shoefind.crawl.collect import crawl, crawl_settings
from shoefind.crawl.targets import Query, Shoe
from shoefind.crawl.search_page import SearchEngine
from tests.helpers.fake_search_site import PRIVATE_URL, FakeSearchSite, Result, sample_images

from tests.helpers import REPO  # noqa: E402
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (shutil.which("chromium") and shutil.which("chromedriver")),
                       reason="needs chromium and chromedriver (apt-get install chromium chromium-driver)"),
]
SHOE = Shoe("Chuck 70 Test", "Converse", "Black", "High", "White Sole", ("converse chuck 70 test",))
FOLDER = "Converse_High_Black_White Sole_Chuck 70 Test"
# Small timeouts keep the file under a minute, with margin for a loaded machine:
# the slow server (4 s) must time out, a local image (< 0.1 s) must never.
SETTINGS = dict(allow_loopback=True, connect_timeout=2, read_timeout=1.5, retries=1, backoff=0.05,
                per_host_interval=0.01, max_bytes=2 * 1024 * 1024, results_timeout=10, preview_timeout=2,
                scroll_timeout=1, poll_interval=0.05)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    shared = REPO.parent / "shared" / "data"   # real photos when present, generated ones otherwise
    return sample_images(shared if shared.is_dir() else None, 9, tmp_path_factory.mktemp("site-images"))


@pytest.fixture(scope="module")
def site(images):
    names = list(images)
    with FakeSearchSite(images, slow_seconds=4) as s:
        s.add_query("converse chuck 70 test", s.tricky_results(names[:8], spare=names[8]))
        s.add_query("plenty", s.good_results(names[:8]))
        s.add_query("another shoe test", s.good_results(names[2:8]))   # overlaps "plenty"
        s.add_query("all refused", [Result(f"{PRIVATE_URL}?n={i}", "refused") for i in range(10)])
        yield s


def manifest_records(data_dir: Path, dataset: Path) -> list[dict]:
    path = data_dir / "crawl" / f"{dataset.name}.manifest.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def dataset_files(dataset: Path) -> list[str]:
    return sorted(str(p.relative_to(dataset)) for p in dataset.rglob("*") if p.is_file())


def expected_files(site, results) -> list[str]:
    good = {r.image for r in results if r.expect == "downloaded"}
    ext = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp"}
    from shoefind.images import probe
    return sorted(f"{FOLDER}/{site.sha256_of(n)}{ext[probe(site.images[n]).format]}" for n in good)


def test_crawl_keeps_exactly_the_good_images_and_records_every_bad_one(site, tmp_path):
    dataset, data_dir = tmp_path / "images", tmp_path / "data"
    engine = SearchEngine.from_rules("localtest", base_url=site.base_url)
    results = site.queries["converse chuck 70 test"]
    # a target above what the site has: the crawler must scroll to the end of the results
    [report] = crawl([Query("converse chuck 70 test", SHOE)], engine, dataset, data_dir,
                     crawl_settings(per_query=20, **SETTINGS))

    assert dataset_files(dataset) == expected_files(site, results)
    for path in dataset_files(dataset):   # named by content
        assert Path(path).stem == __import__("hashlib").sha256((dataset / path).read_bytes()).hexdigest()

    records = manifest_records(data_dir, dataset)
    by_url = {r["image_url"]: r for r in records if r["image_url"]}
    for r in results:
        if r.full_url is None:
            continue
        rec = by_url[site.url(r.full_url)]
        outcome = rec["status"] if rec["status"] != "failed" else rec["reason"]
        assert outcome == r.expect, rec
        assert rec["query"] == "converse chuck 70 test" and rec["shoe"] == FOLDER and rec["time"]
        if rec["status"] == "downloaded":
            assert rec["sha256"] and rec["size"] == len((dataset / rec["path"]).read_bytes())
            assert rec["source_page"].startswith(site.base_url + "/page/")
    assert [r["reason"] for r in records if r["image_url"] is None] == ["preview-timeout"]
    # the preview's full-size URL was used, never the thumbnail
    assert not any("/thumb/" in (r["image_url"] or "") or (r["image_url"] or "").startswith("data:")
                   for r in records)

    good = len(expected_files(site, results))
    assert report.downloaded == good and report.skipped == 1 and report.failed == 8
    assert report.reasons == Counter({"refused": 3, "http-404": 1, "timeout": 1, "not-an-image": 1,
                                      "too-large": 1, "preview-timeout": 1, "duplicate-content": 1})
    assert report.found == len([r for r in results if r.full_url])

    # a rerun finds nothing new: good URLs skipped, nothing downloaded twice
    [again] = crawl([Query("converse chuck 70 test", SHOE)], engine, dataset, data_dir,
                    crawl_settings(per_query=20, **SETTINGS))
    assert again.downloaded == 0 and again.already == good
    assert dataset_files(dataset) == expected_files(site, results)
    downloaded = [r["sha256"] for r in manifest_records(data_dir, dataset) if r["status"] == "downloaded"]
    assert len(downloaded) == len(set(downloaded)) == good


def test_crawl_stops_at_the_per_query_target(site, tmp_path):
    engine = SearchEngine.from_rules("localtest", base_url=site.base_url)
    [report] = crawl([Query("plenty", SHOE)], engine, tmp_path / "images", tmp_path / "data",
                     crawl_settings(per_query=3, **SETTINGS))
    assert report.downloaded == 3 and report.complete
    assert len(dataset_files(tmp_path / "images")) == 3
    assert len(manifest_records(tmp_path / "data", tmp_path / "images")) == 3
    # once complete, a rerun does not even open the browser
    [again] = crawl([Query("plenty", SHOE)], SearchEngine.from_rules("localtest", base_url="http://127.0.0.1:9"),
                    tmp_path / "images", tmp_path / "data", crawl_settings(per_query=3, **SETTINGS))
    assert again.already == 3 and again.downloaded == 0


OTHER = Shoe("Chuck 70 Other", "Converse", "Red", "High", "White Sole", ("another shoe test",))
OTHER_FOLDER = "Converse_High_Red_White Sole_Chuck 70 Other"


def test_a_photo_listed_for_two_shoes_goes_to_a_person(site, tmp_path, capsys):
    """The search names one photo for two shoes: the manifest says so, the filter sends it to review,
    and a model's earlier decision on it is reopened (a person's stands)."""
    from shoefind.curate.crawl_checks import CrawlRules
    from shoefind.curate.filter import run_filter
    from shoefind.curate.queue import ReviewQueue
    dataset, data_dir = tmp_path / "images", tmp_path / "data"
    engine = SearchEngine.from_rules("localtest", base_url=site.base_url)
    names = list(site.images)
    sha = {n: site.sha256_of(n) for n in names}
    rules = CrawlRules(without_model="review")
    crawl([Query("plenty", SHOE)], engine, dataset, data_dir, crawl_settings(per_query=4, **SETTINGS))
    run_filter(dataset, data_dir, rules=rules)
    queue = ReviewQueue(data_dir)
    by_sha = {i.sha256: i for i in queue.items()}
    queue.decide(by_sha[sha[names[2]]].id, "accept", reviewer="model:m0001")
    queue.decide(by_sha[sha[names[3]]].id, "accept", reviewer="alice")

    # "plenty" fetches names[4]; "another shoe test" then lists names[2..4] again and fetches 5..7
    crawl([Query("plenty", SHOE), Query("another shoe test", OTHER)], engine, dataset, data_dir,
          crawl_settings(per_query=5, **SETTINGS))
    again = [r for r in manifest_records(data_dir, dataset) if r["status"] == "listed-again"]
    assert sorted(r["sha256"] for r in again) == sorted(sha[n] for n in names[2:5])
    assert {(r["shoe"], r["fetched_for"]) for r in again} == {(OTHER_FOLDER, FOLDER)}
    result = run_filter(dataset, data_dir, rules=rules)
    assert result.summary["listed_for_several"] == 1 and result.summary["reopened"] == 1
    from shoefind.cli.filter import _print_summary       # what `shoefind filter` prints
    _print_summary(result.summary)
    assert "listed by the search for two shoes, sent to review: 1 new, 1 reopened" in capsys.readouterr().out

    items = {i.sha256: i for i in ReviewQueue(data_dir).items()}
    new_one, model_said, alice_said = items[sha[names[4]]], items[sha[names[2]]], items[sha[names[3]]]
    assert (new_one.status, new_one.rule) == ("review", "listed_for_several")
    assert any(FOLDER in r["reason"] and OTHER_FOLDER in r["reason"] for r in new_one.reasons)
    assert (model_said.status, model_said.rule) == ("review", "listed_for_several")
    queue = ReviewQueue(data_dir)
    assert Path(model_said.stored_path).parent == queue.root / "review" and Path(model_said.stored_path).is_file()
    assert not list((queue.dataset_dir / FOLDER).glob(f"{sha[names[2]]}*"))    # out of the dataset again
    assert alice_said.status == "accepted"
    # a model that later finds it no shoe of the catalog settles it for good: the next run does not reopen it
    queue.decide(model_said.id, "reject", reviewer="model:m0002", rule="triage:not-in-catalog")
    assert run_filter(dataset, data_dir, rules=rules).summary["reopened"] == 0
    assert queue.get(model_said.id).status == "rejected"
    # a rerun of the crawl lists nothing twice
    crawl([Query("plenty", SHOE), Query("another shoe test", OTHER)], engine, dataset, data_dir,
          crawl_settings(per_query=5, **SETTINGS))
    assert len([r for r in manifest_records(data_dir, dataset) if r["status"] == "listed-again"]) == 3


def test_crawl_gives_up_after_max_results(site, tmp_path):
    engine = SearchEngine.from_rules("localtest", base_url=site.base_url)
    [report] = crawl([Query("all refused", SHOE)], engine, tmp_path / "images", tmp_path / "data",
                     crawl_settings(per_query=2, max_results=4, **SETTINGS))
    assert (report.found, report.failed, report.downloaded) == (4, 4, 0)
    assert report.reasons == Counter({"refused": 4}) and not report.complete


def _cli(site, tmp_path, *extra) -> list[str]:
    shoes = tmp_path / "shoes.yaml"
    shoes.write_text("shoes:\n  - {name: Chuck 70 Test, brand: Converse, color: Black, hightop: High,\n"
                     "     sole: White Sole, queries: [plenty]}\n")
    return [sys.executable, "-m", "shoefind.cli.main", "crawl", "--shoes", str(shoes), "--engine", "localtest",
            "--base-url", site.base_url, "--allow-loopback", "--data-dir", str(tmp_path / "data"),
            "--per-query", "20", "--read-timeout", "5", "--preview-timeout", "5", "--scroll-timeout", "1",
            "--host-interval", "0", "--concurrency", "1", *extra]


def _wait_for_downloads(data_dir: Path, dataset: Path, n: int, proc, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if sum(r["status"] == "downloaded" for r in manifest_records(data_dir, dataset)) >= n:
                return
        except FileNotFoundError:
            pass
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    pytest.fail(f"no {n} downloads within {timeout}s")


def test_interrupted_and_killed_crawls_resume_without_loss_or_duplicates(images, tmp_path):
    names = list(images)[:8]
    with FakeSearchSite(images, image_delay=0.3) as site:   # slow images: there is time to interrupt
        site.add_query("plenty", site.good_results(names))
        data_dir, dataset = tmp_path / "data", tmp_path / "data" / "inbox"
        env = {**os.environ, "PYTHONPATH": str(REPO)}

        # Ctrl-C: one clear line, exit 130, running downloads finish and are recorded
        # Ctrl-C as at a terminal: a runner that started the tests in the background (bash `&`)
        # has SIGINT ignored, which children inherit and Python then keeps (seen: exit 0, not 130)
        proc = subprocess.Popen(_cli(site, tmp_path), cwd=REPO, env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        _wait_for_downloads(data_dir, dataset, 1, proc)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 130, err
        assert "interrupted" in err and "Traceback" not in err

        # a crash (SIGKILL of the whole process group, browser included) mid-download
        proc = subprocess.Popen(_cli(site, tmp_path), cwd=REPO, env=env, text=True, start_new_session=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        before = sum(r["status"] == "downloaded" for r in manifest_records(data_dir, dataset))
        _wait_for_downloads(data_dir, dataset, before + 1, proc)
        time.sleep(0.1)   # most likely inside the next download
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)

        # rerun to the end
        done = subprocess.run(_cli(site, tmp_path, "--json"), cwd=REPO, env=env, text=True,
                              capture_output=True, timeout=120)
        assert done.returncode == 0, done.stderr
        summary = json.loads(done.stdout)
        assert summary["queries"][0]["already"] + summary["downloaded"] == 8

    records = manifest_records(data_dir, dataset)
    downloaded = [r for r in records if r["status"] == "downloaded"]
    assert sorted(r["sha256"] for r in downloaded) == sorted(site.sha256_of(n) for n in names)   # each once
    files = dataset_files(dataset)
    assert len(files) == 8 and not [f for f in files if Path(f).name.startswith(".")]   # no partial files
    assert sorted(f.split("/")[1].split(".")[0] for f in files) == sorted(site.sha256_of(n) for n in names)


def test_offline_search_is_one_clear_error(tmp_path):
    shoes = tmp_path / "shoes.yaml"
    shoes.write_text("- {name: Samba, brand: Adidas, color: White, hightop: Low, sole: Gum Sole}\n")
    # port 9 (discard) on loopback: nothing listens, like an unreachable search engine
    done = subprocess.run([sys.executable, "-m", "shoefind.cli.main", "crawl", "--shoes", str(shoes), "--engine", "localtest",
                           "--base-url", "http://127.0.0.1:9", "--data-dir", str(tmp_path / "data")],
                          cwd=REPO, text=True, capture_output=True, timeout=60)
    assert done.returncode == 2
    assert "cannot reach localtest" in done.stderr and "Traceback" not in done.stderr
