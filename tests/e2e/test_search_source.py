"""The offline search source (tests/helpers/search_source.py): pages drawn from a labeled pool in the
proportions asked, ground truth for every URL, held-out photos never served, new photos every round;
and the real crawler (Chromium) crawling it into an inbox from the catalog written for the pool."""
from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
from collections import Counter
from pathlib import Path

import pytest
import requests

from shoefind.crawl.collect import crawl, crawl_settings
from shoefind.crawl.search_page import SearchEngine
from shoefind.crawl.targets import crawl_queries, read_catalog
from shoefind.features.table import build_table
from tests.helpers import make_photo
from tests.helpers.search_source import KINDS, Mix, SearchSource, load_truth, write_pool_catalog

pytestmark = pytest.mark.slow
needs_browser = pytest.mark.skipif(not (shutil.which("chromium") and shutil.which("chromedriver")),
                                   reason="needs chromium and chromedriver (apt-get install chromium chromium-driver)")
SHOES = [("Nike", "High", "Red", "Plain Sole", "Air Test"), ("Nike", "Mid", "Red", "Plain Sole", "Air Test Mid"),
         ("Nike", "Low", "Blue", "Plain Sole", "Dunk Test"), ("Vans", "Low", "Black", "Rubber Sole", "Old Test")]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def size_of(data: bytes) -> tuple[int, int]:
    from PIL import Image
    with Image.open(io.BytesIO(data)) as img:
        return img.size


@pytest.fixture(scope="module")
def pool(tmp_path_factory) -> tuple[Path, Path]:
    """Four shoes of 12 generated photos each (Brand_Top_Color_Sole_Name), and 8 distractors."""
    root = tmp_path_factory.mktemp("pool")
    for i, fields in enumerate(SHOES):
        for j in range(12):
            make_photo(root / "pool" / "_".join(fields) / f"photo {j}.jpg", color=(60 * i, 40 + 10 * j, 200 - 40 * i),
                       seed=100 * i + j)
    for j in range(8):
        make_photo(root / "other" / f"d{j}.png", color=(20 * j, 20 * j, 20 * j), seed=1000 + j, fmt="PNG")
    return root / "pool", root / "other"


def page(source: SearchSource, query: str) -> list[dict]:
    """The results a browser would get for `query`: the page's own RESULTS list."""
    html = requests.get(f"{source.base_url}/search", params={"q": query}, timeout=10).text
    return json.loads(re.search(r"const RESULTS = (\[.*?\]);\n", html).group(1))


def listed(source: SearchSource, query: str, results: list[dict]) -> list:
    by_url = {s.url: s for s in source.listings if s.query == query}
    return [by_url[r["full"]] for r in results]


def fetch_all(results: list[dict]) -> list[bytes]:
    return [requests.get(r["full"], timeout=10).content for r in results]


def test_a_page_mixes_the_kinds_asked_for_and_its_truth_matches_the_bytes(pool):
    folder, distractors = pool
    with SearchSource(folder, distractors, results_per_query=20, seed=3) as source:
        want = Mix().counts(20)
        assert sum(want.values()) == 20 and want["right"] == 11
        pages = {shoe: page(source, shoe.query) for shoe in source.shoes}   # before any photo is fetched
        for shoe, results in pages.items():
            served = listed(source, shoe.query, results)
            assert Counter(s.kind for s in served) == Counter({k: n for k, n in want.items() if n})
            for position, (result, s, data) in enumerate(zip(results, served, fetch_all(results))):
                assert sha(data) == s.sha256 and size_of(data) == (s.width, s.height)
                assert s.shoe == shoe.pool_class and "/thumb/" not in s.url
                if s.kind in ("right", "confusable"):
                    original = folder / s.source.split(":", 1)[1]
                    assert data == original.read_bytes() and original.parent.name == s.truth
                    assert (s.truth == shoe.pool_class) == (s.kind == "right")
                elif s.kind == "distractor":
                    assert s.truth is None and data == (distractors / Path(s.source).name).read_bytes()
                else:   # a copy of one of this shoe's photos
                    original = folder / s.original.split(":", 1)[1]
                    assert s.truth == shoe.pool_class == original.parent.name
                    short, orig_size = min(s.width, s.height), size_of(original.read_bytes())
                    if s.kind == "thumbnail":
                        assert short < source.min_short_side
                    else:
                        assert short >= source.min_short_side and s.width * s.height < orig_size[0] * orig_size[1]
                        # a copy of a photo on the same page comes after it, as a reseller's would
                        same_page = [i for i, o in enumerate(served) if o.source == s.original]
                        assert all(i < position for i in same_page)
                assert s.label_is_right(shoe.pool_class) == (s.kind not in ("confusable", "distractor"))
        assert source.page_counts() == {k: want[k] * len(source.shoes) for k in KINDS}


def test_held_out_photos_and_copies_of_them_are_never_served(pool, tmp_path):
    folder, distractors = pool
    # a byte-identical copy of a held-out photo under another name must stay out too
    pool_copy = tmp_path / "pool"
    shutil.copytree(folder, pool_copy)
    held_out = sorted(pool_copy.rglob("photo [02468].jpg"))
    leak = held_out[0].parent / "same bytes.jpg"
    shutil.copyfile(held_out[0], leak)
    held_sha = {sha(p.read_bytes()) for p in held_out}
    seen: list = []
    with SearchSource(pool_copy, distractors, results_per_query=10, seed=1, exclude=held_out) as source:
        for _round in range(4):   # crawl every query until the pool runs dry
            for shoe in source.shoes:
                results = page(source, shoe.query)
                fetch_all(results)
                seen += listed(source, shoe.query, results)
        # nothing new is left but more copies of what was served
        for shoe in source.shoes:
            assert {s.kind for s in listed(source, shoe.query, page(source, shoe.query))} <= {"near-duplicate"}
    originals = {s.original or s.source for s in seen}
    assert not {s.sha256 for s in seen} & held_sha and f"pool:{leak.parent.name}/{leak.name}" not in originals
    served_pool = Counter(s.source for s in seen if s.kind in ("right", "confusable"))
    kept = [p for p in pool_copy.rglob("*.jpg") if p not in held_out and p != leak]
    # every photo not held out was served, each once over all rounds and queries
    assert sorted(served_pool) == sorted(f"pool:{p.parent.name}/{p.name}" for p in kept)
    assert set(served_pool.values()) == {1}
    assert len({s.sha256 for s in seen}) == len(seen)


def test_a_second_crawl_finds_new_photos_and_keeps_the_order_of_those_it_did_not_reach(pool):
    folder, distractors = pool
    with SearchSource(folder, distractors, results_per_query=10, seed=2) as source:
        query = source.shoes[1].query
        first = page(source, query)
        fetch_all(first[:6])                         # the crawl stopped after six
        second = page(source, query)
        first_urls, second_urls = [r["full"] for r in first], [r["full"] for r in second]
        assert not set(first_urls[:6]) & set(second_urls)
        # the photos it did not reach are still there, in the same order (copies may change)
        originals = {s.url for s in listed(source, query, first) if s.transform is None}
        assert [u for u in second_urls if u in originals] == [u for u in first_urls[6:] if u in originals]
        assert len(second) == 10
    with SearchSource(folder, distractors, results_per_query=10, seed=2, repeat=True) as again:
        results = page(again, query)
        fetch_all(results)
        assert [r["full"] for r in page(again, query)] == [r["full"] for r in results]


def test_with_relist_a_photo_fetched_from_another_shoes_page_is_listed_once_on_its_own(pool, tmp_path):
    """relist=True: shoe A's photo fetched as one of B's "other shoes" comes first on A's next page, once,
    besides A's usual mix; photos fetched from A's own page and photos only listed elsewhere do not; a
    source resumed from the truth file remembers it."""
    folder, distractors = pool
    a, b = ("_".join(SHOES[0]), "_".join(SHOES[1]))
    mix = Mix(right=0.5, confusable=0.5, distractor=0, near_duplicate=0, thumbnail=0)
    kwargs = dict(mix=mix, results_per_query=8, seed=1, confusable_classes=1, relist=True,
                  truth_path=tmp_path / "truth.jsonl")
    with SearchSource(folder, distractors, **kwargs) as source:
        qa, qb = source.shoe_of[a].query, source.shoe_of[b].query
        own = page(source, qa)
        fetch_all(own[:2])                                   # two results fetched from A's own page
        on_b = listed(source, qb, page(source, qb))
        a_on_b = [s for s in on_b if s.truth == a]
        assert len(a_on_b) == 4                              # B's "other shoes" are all A's
        fetch_all([{"full": s.url} for s in a_on_b[:2]])     # two of them fetched there, two only listed
        fetched_on_b = [s.url for s in a_on_b[:2]]
        again = [r["full"] for r in page(source, qa)]
        assert again[:2] == fetched_on_b and len(again) == 10      # first, besides the page's 8
        # (B's photos fetched from A's page are relisted on B's)
        assert {r for r in source.relisted if r[0] == a} == {(a, Path(u).stem) for u in fetched_on_b}
        assert not set(fetched_on_b) & set(r["full"] for r in page(source, qa))     # once
    with SearchSource(folder, distractors, **kwargs) as resumed:
        assert not set(fetched_on_b) & set(r["full"] for r in page(resumed, qa))
    with SearchSource(folder, distractors, **(kwargs | {"relist": False, "truth_path": None})) as plain:
        on_b = [r for r in page(plain, qb) if any(s.truth == a for s in listed(plain, qb, [r]))]
        fetch_all(on_b)
        assert not {r["full"] for r in on_b} & {r["full"] for r in page(plain, qa)}


def test_the_same_seed_gives_the_same_pages(pool):
    folder, distractors = pool
    pages = []
    for seed in (5, 5, 6):
        with SearchSource(folder, distractors, results_per_query=12, seed=seed) as source:
            pages.append([(s.path, s.sha256, s.kind) for shoe in source.shoes
                          for s in listed(source, shoe.query, page(source, shoe.query))])
    assert pages[0] == pages[1] and pages[0] != pages[2]


def test_a_new_source_on_the_same_truth_file_goes_on_where_the_last_stopped(pool, tmp_path):
    folder, distractors = pool
    truth = tmp_path / "truth.jsonl"
    with SearchSource(folder, distractors, results_per_query=10, seed=4, truth_path=truth) as source:
        query = source.shoes[0].query
        first = listed(source, query, page(source, query))
        fetch_all(page(source, query)[:10])
    with SearchSource(folder, distractors, results_per_query=10, seed=4, truth_path=truth) as resumed:
        later = listed(resumed, query, page(resumed, query))
    assert not {s.path for s in first} & {s.path for s in later}
    recorded = load_truth(truth)
    assert {s.sha256 for s in first + later} <= set(recorded)
    assert all(recorded[s.sha256].truth == s.truth for s in first + later)


def test_the_pool_catalog_crawls_every_shoe_and_names_the_pool_folders(pool, tmp_path):
    folder, distractors = pool
    classes = tmp_path / "nike-classes"                 # a pool of bare class names, like nike-silhouettes
    for name, fields in zip(("j1_high", "j1_mid", "dunk_low"), SHOES):
        shutil.copytree(folder / "_".join(fields), classes / name)
    for root, expect_layout in ((folder, "catalog"), (classes, "catalog")):
        catalog = tmp_path / f"{root.name}.csv"
        shoes = write_pool_catalog(root, catalog)
        queries = crawl_queries(catalog=catalog)
        assert [q.shoe.folder for q in queries] == [s.folder for s in read_catalog(catalog)] == \
            [s.shoe.folder for s in shoes]
        table = build_table(root, catalog=catalog)    # the catalog's names find the pool's folders
        assert table.layout == expect_layout and set(table.shoes["folder"]) == {p.name for p in root.iterdir()}
        assert not [i for i in table.issues if i.kind in ("no-images", "not-in-catalog")], table.issues
        with SearchSource(root, distractors, results_per_query=8, seed=0) as source:
            for q in queries:
                served = listed(source, q.text, page(source, q.text))
                assert [s for s in served if s.kind == "right"] and {s.shoe for s in served} == \
                    {source.pool_class_of_folder(q.shoe.folder)}
            assert page(source, "a shoe nobody sells") == []
    assert {s.shoe.folder for s in write_pool_catalog(classes, tmp_path / "c.csv")} == {
        "Nike_High_White_Plain Sole_j1 high", "Nike_Mid_White_Plain Sole_j1 mid", "Nike_Low_White_Plain Sole_dunk low"}
    assert {s.shoe.folder for s in write_pool_catalog(classes, tmp_path / "d.csv", color="Black",
                                                       overrides={"dunk_low": {"color": "Gray"}})} == {
        "Nike_High_Black_Plain Sole_j1 high", "Nike_Mid_Black_Plain Sole_j1 mid", "Nike_Low_Gray_Plain Sole_dunk low"}


def test_a_pool_it_cannot_use_is_one_clear_error(pool, tmp_path):
    from shoefind.errors import UserError
    folder, _ = pool
    with pytest.raises(UserError, match="is not a folder"):
        SearchSource(tmp_path / "nowhere")
    one = tmp_path / "one"
    shutil.copytree(folder / "_".join(SHOES[0]), one / "_".join(SHOES[0]))
    with pytest.raises(UserError, match="at least two shoe folders, found 1"):
        SearchSource(one)
    (tmp_path / "plain" / "j1_high").mkdir(parents=True)
    with pytest.raises(UserError, match="cannot tell the brand of 'j1_high'"):
        write_pool_catalog(tmp_path / "plain", tmp_path / "plain.csv")
    with pytest.raises(ValueError, match="mix shares"):
        Mix(right=0, confusable=0, distractor=0, near_duplicate=0, thumbnail=0).counts(10)


def test_other_shoes_come_from_the_most_confusable_first(pool):
    import numpy as np

    from tests.helpers.search_source import confusable_order
    folder, distractors = pool
    # by name: the same model first, then the same top
    order = confusable_order(["dunk_high", "dunk_low", "j1_high", "j1_low", "j1_mid", "j3"])
    assert order["j1_high"][:3] == ["j1_mid", "j1_low", "dunk_high"] and order["dunk_low"][0] == "dunk_high"
    assert confusable_order(["_".join(s) for s in SHOES])["_".join(SHOES[0])][0] == "_".join(SHOES[1])
    names = ["_".join(s) for s in SHOES]
    # class means: shoe 0 looks most like shoe 3, then shoe 2, and least like shoe 1
    means = {names[0]: np.array([1.0, 0, 0, 0]), names[3]: np.array([0.9, 0.1, 0, 0]),
             names[2]: np.array([0.5, 0, 0.8, 0]), names[1]: np.array([-1.0, 0, 0, 1])}
    with SearchSource(folder, distractors, seed=0, class_means=means, confusable_classes=2, results_per_query=30,
                      mix=Mix(right=0, confusable=1, distractor=0, near_duplicate=0, thumbnail=0)) as source:
        assert source.confusables[names[0]] == [names[3], names[2], names[1]]
        served = listed(source, source.shoe_of[names[0]].query, page(source, source.shoe_of[names[0]].query))
        # 12 photos each: when both have run out, the next shoe in order fills the page
        assert Counter(s.truth for s in served) == {names[3]: 12, names[2]: 12, names[1]: 6}
    with SearchSource(folder, distractors, seed=0, class_means=means, confusable_classes=2, results_per_query=9,
                      mix=Mix(right=0, confusable=1, distractor=0, near_duplicate=0, thumbnail=0)) as source:
        served = listed(source, source.shoe_of[names[0]].query, page(source, source.shoe_of[names[0]].query))
        assert Counter(s.truth for s in served) == {names[3]: 6, names[2]: 3}     # the nearest twice as often


@needs_browser
def test_the_crawler_crawls_the_pool_source_into_an_inbox(shared_data, tmp_path):
    """Two rounds of the real crawler (Chromium, the localtest engine's selectors) on nike-silhouettes
    with converse-crawl as distractors: what lands in the inbox is the page's mix, every file's
    ground truth is known, held-out photos never come, and the second round brings only new ones."""
    pool, distractors = shared_data / "nike-silhouettes", shared_data / "converse-crawl"
    held_out = [p for i, p in enumerate(sorted(pool.rglob("*.png"))) if i % 4 == 0]
    catalog = tmp_path / "catalog.csv"
    write_pool_catalog(pool, catalog)
    queries = [q for q in crawl_queries(catalog=catalog) if q.shoe.name in ("j1 high", "j1 mid")]
    inbox, data_dir = tmp_path / "data" / "inbox", tmp_path / "data"
    settings = dict(allow_loopback=True, read_timeout=10, results_timeout=10, preview_timeout=5, scroll_timeout=2,
                    per_host_interval=0, poll_interval=0.05, concurrency=2)
    mix = Mix(right=0.5, confusable=0.2, distractor=0.1, near_duplicate=0.1, thumbnail=0.1)
    source = SearchSource(pool, distractors, mix=mix, results_per_query=10, seed=0, exclude=held_out,
                          truth_path=tmp_path / "truth.jsonl")
    held_sha = {sha(p.read_bytes()) for p in held_out}
    want = mix.counts(10)
    assert set(want.values()) == {5, 2, 1}
    rounds: list[dict[str, list[Path]]] = []
    with source:
        engine = SearchEngine.from_rules("localtest", base_url=source.base_url)
        for per_query in (10, 20):     # the crawler's target counts earlier rounds: 10 more each time
            before = {p for p in inbox.rglob("*") if p.is_file()}
            reports = crawl(queries, engine, inbox, data_dir, crawl_settings(per_query=per_query, **settings))
            assert [(r.downloaded, r.failed, r.skipped) for r in reports] == [(10, 0, 0)] * len(queries), \
                [r.as_row() for r in reports]
            new = [p for p in inbox.rglob("*") if p.is_file() and p not in before]
            rounds.append({q.shoe.folder: [p for p in new if p.parent.name == q.shoe.folder] for q in queries})
    truth = load_truth(tmp_path / "truth.jsonl")
    for files_by_shoe in rounds:
        for shoe_folder, files in files_by_shoe.items():
            records = [truth[p.stem] for p in files]        # the crawler names files by their sha256
            assert Counter(r.kind for r in records) == Counter({k: n for k, n in want.items() if n})
            pool_class = source.pool_class_of_folder(shoe_folder)
            for path, record in zip(files, records):
                assert record.shoe == pool_class and sha(path.read_bytes()) == record.sha256
                if record.kind in ("right", "confusable"):   # the very bytes of the pool photo it names
                    assert path.read_bytes() == (pool / record.source.split(":", 1)[1]).read_bytes()
                    assert (record.truth == pool_class) == (record.kind == "right")
            assert not {p.stem for p in files} & held_sha
    first = {truth[p.stem].original or truth[p.stem].source for files in rounds[0].values() for p in files}
    second = [truth[p.stem] for files in rounds[1].values() for p in files]
    # round 2: no pool photo of round 1 again; its near-duplicates copy photos round 1 brought
    assert not {r.source for r in second if r.kind != "near-duplicate"} & first - {None}
    assert {r.original for r in second if r.kind == "near-duplicate"} <= first
