"""Automatic crawl checks (shoefind.curate.crawl_checks): every awkward file gets a verdict and a reason."""
from __future__ import annotations

import pytest

from shoefind.curate.crawl_checks import TONE_BINS, CrawlRules, check_file, color_signature, load_crawl_rules
from tests.helpers import filter_inputs as inputs

RULES = CrawlRules()


def test_rules_file_loads_with_the_documented_limits():
    rules = load_crawl_rules()
    assert rules.min_file_bytes == 5120
    assert rules.max_aspect_ratio == 3.0
    assert rules.min_short_side == 200
    assert "JPEG" in rules.allowed_formats and "PNG" in rules.allowed_formats
    assert rules.phash_max_distance >= 0 and rules.dhash_max_distance >= 0
    assert any("heel" in r.lower() for r in rules.human_rules)


def test_unknown_rule_settings_are_refused():
    with pytest.raises(ValueError, match="unknown settings"):
        CrawlRules.from_dict({"automatic": {"min_file_kb": 5}})
    with pytest.raises(ValueError, match="without_model"):
        CrawlRules.from_dict({"semantic": {"without_model": "maybe"}})


def test_good_photo_passes_and_is_measured(tmp_path):
    check = check_file(inputs.photo(tmp_path / "good.jpg"), RULES)
    assert check.ok, check.failures
    assert (check.width, check.height, check.format, check.frames) == (400, 300, "JPEG", 1)
    assert check.phash is not None and check.dhash is not None and len(check.color) == 13 + TONE_BINS
    assert check.suffix == ".jpg" and len(check.sha256) == 64


@pytest.mark.parametrize("maker, rule, words", [
    (inputs.truncated_jpeg, "unreadable", "truncated"),
    (inputs.html_as_jpg, "unreadable", "HTML"),
    (inputs.empty_file, "unreadable", "empty"),
    (inputs.decompression_bomb, "unreadable", "decompression bomb"),
])
def test_unusable_files_are_rejected_with_a_reason(tmp_path, maker, rule, words):
    check = check_file(maker(tmp_path / "bad.jpg"), RULES)
    assert not check.ok and not check.decodable
    assert check.failures[0][0] == rule
    assert words.lower() in check.failures[0][1].lower()


@pytest.mark.parametrize("maker, name", [(inputs.cmyk_jpeg, "cmyk.jpg"), (inputs.png_16bit, "deep.png")])
def test_cmyk_and_16_bit_images_are_decoded_and_pass(tmp_path, maker, name):
    check = check_file(maker(tmp_path / name), RULES)
    assert check.ok, check.failures
    assert check.phash is not None


def test_animated_file_is_rejected(tmp_path):
    check = check_file(inputs.animated_png(tmp_path / "anim.png"), RULES)
    assert check.frames == 3
    assert [r for r, _ in check.failures] == ["animated"]


def test_size_side_and_aspect_rules(tmp_path):
    small = check_file(inputs.photo(tmp_path / "small.png", size=(150, 150)), RULES)
    assert "min_short_side" in [r for r, _ in small.failures]
    banner = check_file(inputs.photo(tmp_path / "banner.png", size=(1000, 250)), RULES)
    assert [r for r, _ in banner.failures] == ["max_aspect_ratio"]
    tiny_file = check_file(inputs.photo(tmp_path / "flat.jpg", size=(300, 300), quality=10), CrawlRules(
        min_file_bytes=10**6))
    assert [r for r, _ in tiny_file.failures] == ["min_file_bytes"]
    gif = inputs.photo(tmp_path / "still.gif", size=(300, 300))
    assert [r for r, _ in check_file(gif, RULES).failures] == ["allowed_formats"]


def test_exif_orientation_is_applied_before_measuring(tmp_path):
    check = check_file(inputs.exif_rotated_jpeg(tmp_path / "rot.jpg", size=(400, 240)), RULES)
    assert (check.width, check.height) == (240, 400)
    assert check.ok
    # stored 600x190 it would break the short side rule either way; rotated, the short side is the width
    rotated = check_file(inputs.exif_rotated_jpeg(tmp_path / "rot2.jpg", size=(500, 190)), RULES)
    assert rotated.width == 190 and "min_short_side" in [r for r, _ in rotated.failures]


def test_missing_file_is_reported_not_raised(tmp_path):
    check = check_file(tmp_path / "gone.jpg", RULES)
    assert check.failures and check.failures[0][0] == "unreadable"


def test_color_signature_separates_colourways_not_backgrounds(tmp_path):
    from PIL import Image

    from shoefind.curate.dedupe import color_distance
    yellow = color_signature(Image.open(inputs.photo(tmp_path / "y.png", color=(240, 180, 20))))
    yellow_again = color_signature(Image.open(inputs.photo(tmp_path / "y2.png", color=(235, 175, 25), seed=1)))
    green = color_signature(Image.open(inputs.photo(tmp_path / "g.png", color=(20, 90, 40))))
    assert color_distance(yellow, yellow_again) < 0.5 < color_distance(yellow, green)
