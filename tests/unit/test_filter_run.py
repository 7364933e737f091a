"""The crawl filter end to end (shoefind.curate.filter + review queue), without Prefect."""
from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from shoefind.curate.crawl_checks import CrawlRules
from shoefind.curate.filter import run_filter, summary_markdown
from shoefind.curate.queue import ReviewQueue
from shoefind.curate.semantic import load_checker
from tests.helpers import filter_inputs as inputs

SHOE = "Converse_High_Yellow_Plain Sole_Chuck 70 Sunflower"
COLOURS = [(220, 40, 40), (30, 120, 40), (30, 60, 200), (240, 200, 30), (150, 40, 160)]
NO_MODEL = CrawlRules(without_model="accept")


def make_inbox(root: Path) -> dict[str, Path]:
    """Five distinct good photos, an exact and a near duplicate, and every kind of bad file."""
    shoe = root / SHOE
    files = {f"good{i}": inputs.photo(shoe / f"good {i}.jpg", size=(480, 360), color=c, seed=i)
             for i, c in enumerate(COLOURS)}
    files["exact"] = shoe / "copy of good 0.jpg"
    files["exact"].write_bytes(files["good0"].read_bytes())
    files["near"] = shoe / "good 1 small.jpg"
    Image.open(files["good1"]).resize((320, 240)).save(files["near"], quality=90)
    bad = root / "Nike_Low_White_Plain Sole_Air Force 1"
    files.update({
        "truncated": inputs.truncated_jpeg(bad / "truncated.jpg"),
        "html": inputs.html_as_jpg(bad / "page.jpg"),
        "empty": inputs.empty_file(bad / "empty.jpg"),
        "bomb": inputs.decompression_bomb(bad / "bomb.png"),
        "cmyk": inputs.cmyk_jpeg(bad / "cmyk photo.jpg"),
        "deep": inputs.png_16bit(bad / "16bit.png"),
        "anim": inputs.animated_png(bad / "anim.png"),
        "unicode": inputs.photo(bad / "chaussure été 👟.jpg", color=(90, 200, 200), seed=11),
        "dots": inputs.photo(bad / "..shoe..jpg", color=(200, 120, 60), seed=12),
        "banner": inputs.photo(bad / "banner.jpg", size=(1200, 300), color=(10, 10, 10), seed=13),
    })
    (bad / "notes.txt").write_text("not an image")
    return files


@pytest.fixture
def inbox(tmp_path) -> tuple[Path, dict[str, Path]]:
    root = tmp_path / "inbox"
    return root, make_inbox(root)


def _by_source(result) -> dict[str, dict]:
    return {Path(v["source"]).name: v for v in result.verdicts}


def test_every_file_is_classified_with_a_reason_and_nothing_is_lost(inbox, data_dir):
    root, files = inbox
    result = run_filter(root, data_dir, checker=None, semantic_note="no model", rules=NO_MODEL)
    s, v = result.summary, _by_source(result)
    assert s["files"] == 17 and s["exact_duplicates"] == 1 and s["new"] == 16
    assert s["skipped_names"] == ["Nike_Low_White_Plain Sole_Air Force 1/notes.txt"]
    for name, words in [("truncated.jpg", "truncated"), ("page.jpg", "HTML"), ("empty.jpg", "empty"),
                        ("bomb.png", "decompression bomb")]:
        assert v[name]["status"] == "rejected" and v[name]["rule"] == "unreadable"
        assert words.lower() in v[name]["reasons"][0]["reason"].lower()
    assert v["anim.png"]["rule"] == "animated"
    assert v["banner.jpg"]["rule"] == "max_aspect_ratio"
    assert v["good 1 small.jpg"]["rule"] == "near_duplicate"
    assert v["good 1 small.jpg"]["duplicate_of"] == v["good 1.jpg"]["sha256"]
    accepted = {n for n, x in v.items() if x["status"] == "accepted"}
    # of two identical files the first in path order stands for both
    assert accepted == {"copy of good 0.jpg", "good 1.jpg", "good 2.jpg", "good 3.jpg", "good 4.jpg",
                        "cmyk photo.jpg", "16bit.png", "chaussure été 👟.jpg", "..shoe..jpg"}
    assert s["accepted"] == 9 and s["rejected"] == 7 and s["queued"] == 0
    assert s["rejected_by_rule"] == {"animated": 1, "max_aspect_ratio": 1, "near_duplicate": 1, "unreadable": 4}
    # accepted copies land in the dataset under their content hash, with the decoded format's suffix
    for name in accepted:
        x = v[name]
        assert Path(x["source"]).is_file()  # the source is only read
        stored = data_dir / "images" / x["shoe"] / f"{x['sha256']}{x['suffix']}"
        assert stored.read_bytes() == Path(x["source"]).read_bytes()
    # rejected images are kept, with their reasons, until a purge
    queue = ReviewQueue(data_dir)
    rejected = queue.items("rejected")
    assert len(rejected) == 7 and all(Path(i.stored_path).is_file() and i.reasons for i in rejected)
    assert all(Path(i.stored_path).is_relative_to(data_dir / "filter" / "rejected") for i in rejected)
    assert not any(p.suffix == ".jpg" for p in (data_dir / "filter" / "rejected").glob(f"{v['page.jpg']['sha256']}*"))
    assert "exact duplicates | 1" in summary_markdown(s)


def test_rerun_is_idempotent_and_new_files_are_picked_up(inbox, data_dir):
    root, files = inbox
    first = run_filter(root, data_dir, checker=None, rules=CrawlRules())  # without_model: review
    assert first.summary["queued"] == 9
    queue = ReviewQueue(data_dir)
    item = queue.items("review")[0]
    queue.decide(item.id, "reject")
    again = run_filter(root, data_dir, checker=None, rules=CrawlRules())
    assert again.summary["new"] == 0 and again.summary["known"] == 16 and again.summary["queued"] == 0
    assert queue.get(item.id).status == "rejected"  # a decided image is never re-queued
    assert queue.counts()["review"] == 8
    # the same content under a new name is known; a new photo is new
    (root / SHOE / "renamed.jpg").write_bytes(files["good2"].read_bytes())
    inputs.photo(root / SHOE / "fresh.jpg", color=(120, 80, 20), seed=40)
    third = run_filter(root, data_dir, checker=None, rules=CrawlRules())
    assert third.summary["new"] == 1 and third.summary["known"] == 16 and third.summary["exact_duplicates"] == 2


def test_near_duplicate_of_the_dataset_is_rejected_and_a_larger_copy_goes_to_review(tmp_path, data_dir):
    first = tmp_path / "crawl1" / SHOE
    original = inputs.photo(first / "a.jpg", size=(480, 360), color=(30, 60, 200), seed=7)
    run_filter(first.parent, data_dir, checker=None, rules=NO_MODEL)
    second = tmp_path / "crawl2" / SHOE
    second.mkdir(parents=True)
    Image.open(original).resize((400, 300)).save(second / "smaller.jpg", quality=90)
    Image.open(original).resize((960, 720)).save(second / "larger.jpg", quality=90)
    v = _by_source(run_filter(second.parent, data_dir, checker=None, rules=NO_MODEL))
    assert v["smaller.jpg"]["rule"] == "near_duplicate"
    assert v["larger.jpg"]["status"] == "review" and v["larger.jpg"]["rule"] == "larger_duplicate"


def test_exact_copy_of_a_dataset_image_placed_by_hand(tmp_path, data_dir):
    shoe_dir = data_dir / "images" / SHOE
    inputs.photo(shoe_dir / "by hand.jpg", color=(30, 60, 200), seed=8)
    crawl = tmp_path / "crawl" / SHOE
    crawl.mkdir(parents=True)
    (crawl / "same.jpg").write_bytes((shoe_dir / "by hand.jpg").read_bytes())
    v = _by_source(run_filter(crawl.parent, data_dir, checker=None, rules=NO_MODEL))
    assert v["same.jpg"]["rule"] == "exact_duplicate"


def test_loose_images_follow_the_rule(tmp_path, data_dir):
    crawl = tmp_path / "crawl"
    inputs.photo(crawl / "loose.jpg", seed=9)
    v = _by_source(run_filter(crawl, data_dir, checker=None, rules=NO_MODEL))
    assert v["loose.jpg"]["status"] == "review" and v["loose.jpg"]["rule"] == "loose_images"


@pytest.mark.parametrize("reject, accept, outcome", [(0.0, 0.0, "rejected"), (1.01, 0.0, "accepted"),
                                                     (1.01, 1.01, "review")])
def test_semantic_check_with_the_tiny_model(tmp_path, data_dir, tiny_model, reject, accept, outcome):
    crawl = tmp_path / "crawl" / SHOE
    inputs.photo(crawl / "a.jpg", seed=1)
    inputs.photo(crawl / "b.jpg", color=(20, 90, 200), seed=2)
    checker, note, _ = load_checker(tiny_model)
    assert checker is not None and "RANDOM" in note
    result = run_filter(crawl.parent, data_dir, checker, note,
                        rules=CrawlRules(reject_confidence=reject, accept_confidence=accept))
    for v in result.verdicts:
        assert v["status"] == outcome
        assert set(v["scores"]) == {"whole_shoe", "heel_closeup", "not_a_shoe", "face", "several_shoes"}
        assert abs(sum(v["scores"].values()) - 1) < 1e-3
        if outcome == "rejected":
            assert v["rule"].startswith("semantic:") and v["rule"] != "semantic:uncertain"
        if outcome == "review":
            assert v["rule"] == "semantic:uncertain"


def test_no_model_skips_the_semantic_check_with_a_note(tmp_path, data_dir, monkeypatch):
    monkeypatch.setenv("SHOEFIND_OFFLINE", "1")
    monkeypatch.setenv("SHOEFIND_CLIP_CACHE", str(tmp_path / "no-weights"))
    monkeypatch.delenv("SHOEFIND_MODEL", raising=False)
    checker, note, detail = load_checker(None)
    assert checker is None and "skipped" in note and "ViT-B-32.pt" in detail
    crawl = tmp_path / "crawl" / SHOE
    inputs.photo(crawl / "a.jpg", seed=1)
    result = run_filter(crawl.parent, data_dir, checker, note, rules=CrawlRules())
    assert result.verdicts[0]["status"] == "review" and result.verdicts[0]["rule"] == "semantic:skipped"
    assert "skipped" in result.summary["semantic"]


def test_purge_deletes_rejected_copies_but_keeps_the_verdicts(inbox, data_dir):
    root, _ = inbox
    run_filter(root, data_dir, checker=None, rules=NO_MODEL)
    queue = ReviewQueue(data_dir)
    assert queue.purge() == 7
    assert not any((data_dir / "filter" / "rejected").iterdir())
    assert queue.counts()["purged"] == 7
    assert run_filter(root, data_dir, checker=None, rules=NO_MODEL).summary["new"] == 0


def test_converse_crawl_numbers_and_shared_stays_untouched(shared_data, data_dir):
    crawl = shared_data / "converse-crawl"
    before = {p: p.stat().st_mtime_ns for p in crawl.rglob("*")}
    s = run_filter(crawl, data_dir, checker=None, semantic_note="no model", rules=CrawlRules()).summary
    assert s["files"] == 159 and s["exact_duplicates"] == 55 and s["new"] == 104
    assert s["near_duplicate_groups"], "the crawl has near duplicates"
    # the two colourways never group together, whatever pHash says
    for g in s["near_duplicate_groups"]:
        assert len({Path(d["path"]).parts[0] for d in g["duplicates"]} | {Path(g["keep"]).parts[0]}) == 1
    assert s["rejected_by_rule"].get("near_duplicate", 0) >= 1
    assert {p: p.stat().st_mtime_ns for p in crawl.rglob("*")} == before
    assert not (crawl / ".." / "filter").exists()
    rerun = run_filter(crawl, data_dir, checker=None, rules=CrawlRules()).summary
    assert rerun["new"] == 0 and rerun["known"] == 104 and rerun["exact_duplicates"] == 55


def test_a_run_interrupted_after_placing_copies_is_completed_not_rejected(tmp_path, data_dir):
    crawl = tmp_path / "crawl" / SHOE
    inputs.photo(crawl / "a.jpg", seed=21)
    run_filter(crawl.parent, data_dir, checker=None, rules=NO_MODEL)
    (data_dir / "filter" / "queue.sqlite").unlink()  # the verdicts were never written
    for extra in (data_dir / "filter").glob("queue.sqlite-*"):
        extra.unlink()
    v = run_filter(crawl.parent, data_dir, checker=None, rules=NO_MODEL).verdicts[0]
    assert v["status"] == "accepted" and v["reasons"][0]["rule"] == "already_placed"


def test_a_png_with_a_broken_chunk_fails_pillow_verify(tmp_path):
    from shoefind.curate.crawl_checks import check_file
    path = inputs.photo(tmp_path / "crc.png", size=(300, 300))
    data = bytearray(path.read_bytes())
    data[40] ^= 0xFF  # inside the first IDAT chunk: its CRC no longer matches
    path.write_bytes(bytes(data))
    check = check_file(path, CrawlRules())
    assert check.failures and check.failures[0][0] == "unreadable"


def test_one_picture_in_two_shoe_folders_goes_to_review(tmp_path, data_dir):
    crawl = tmp_path / "crawl"
    photo = inputs.photo(crawl / SHOE / "a.jpg", seed=31)
    (crawl / "Vans_Low_Black_Plain Sole_Old Skool").mkdir()
    (crawl / "Vans_Low_Black_Plain Sole_Old Skool" / "b.jpg").write_bytes(photo.read_bytes())
    result = run_filter(crawl, data_dir, checker=None, rules=NO_MODEL)
    assert result.summary["exact_duplicates"] == 1
    (v,) = result.verdicts
    assert v["status"] == "review" and v["rule"] == "label_conflict"
    assert "Old Skool" in v["reasons"][0]["reason"] and "Sunflower" in v["reasons"][0]["reason"]


def test_when_dhash_is_unsure_a_person_decides(tmp_path, data_dir):
    from shoefind.curate.dedupe import hamming
    crawl = tmp_path / "crawl" / SHOE
    a = inputs.photo(crawl / "a.jpg", size=(480, 360), color=(30, 60, 200), seed=7)
    Image.open(a).resize((400, 300)).save(crawl / "b.jpg", quality=90)
    probe = run_filter(crawl.parent, tmp_path / "probe", checker=None, rules=NO_MODEL).verdicts
    dp, dd = hamming(probe[0]["phash"], probe[1]["phash"]), hamming(probe[0]["dhash"], probe[1]["dhash"])
    assert dd >= 1
    # the same pair, judged with a dHash bound just under its distance and a review bound above it
    rules = CrawlRules(without_model="accept", phash_max_distance=max(dp, 1), dhash_max_distance=dd - 1,
                       review_dhash_max_distance=dd)
    v = _by_source(run_filter(crawl.parent, data_dir, checker=None, rules=rules))
    assert v["a.jpg"]["status"] == v["b.jpg"]["status"] == "review"
    assert v["b.jpg"]["rule"] == "possible_duplicate" and "a.jpg" in v["b.jpg"]["reasons"][-1]["reason"]


def test_symlinks_in_the_inbox_are_listed_and_never_followed(tmp_path, data_dir):
    secret_dir = tmp_path / "private"
    secret = inputs.photo(secret_dir / "passport.jpg", color=(5, 6, 7), seed=21)
    (secret_dir / "notes.txt").write_text("my bank PIN is 1234")
    crawl = tmp_path / "crawl"
    shoe = crawl / SHOE
    inputs.photo(shoe / "real.jpg", seed=3)
    (shoe / "leak.jpg").symlink_to(secret_dir / "notes.txt")     # text behind an image name
    (shoe / "photo.jpg").symlink_to(secret)                       # a real photo, outside the inbox
    (shoe / "elsewhere").symlink_to(secret_dir)                   # a folder outside
    (crawl / "loop").symlink_to(".")
    (shoe / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    result = run_filter(crawl, data_dir, checker=None, rules=NO_MODEL)
    assert [v["source"].rsplit("/", 1)[-1] for v in result.verdicts] == ["real.jpg"]
    skipped = "\n".join(result.summary["skipped_names"])
    for name in ("leak.jpg", "photo.jpg", "elsewhere", "loop", "gone.jpg"):
        assert f"{name} (" in skipped and "link" in skipped
    stored = [p.read_bytes() for p in data_dir.rglob("*") if p.is_file()]
    assert not any(b"bank PIN" in b or b == secret.read_bytes() for b in stored)
