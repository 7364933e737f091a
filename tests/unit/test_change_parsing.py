"""Reading change requests into constraints (rules/change_phrases.yaml); no model needed."""
import pytest

from shoefind.scoring.change_words import parse_change


def summary(text):
    """{attribute: 'keep' | 'differ' | ['want'...] | ('not', [...])} for the active rules."""
    out = {}
    for attr, r in parse_change(text).rules.items():
        if r.want:
            out[attr] = r.want
        elif r.keep:
            out[attr] = "keep"
        elif r.differ:
            out[attr] = "differ"
        if r.avoid:
            out[attr] = ("not", r.avoid)
    return out


@pytest.mark.parametrize("text, expected", [
    ("same brand but red", {"brand": "keep", "color": ["Red"]}),
    ("Same brand, different colour", {"brand": "keep", "color": "differ"}),
    ("in red", {"color": ["Red"]}),
    ("high top", {"hightop": ["High"]}),
    ("a high-top please", {"hightop": ["High"]}),
    ("not Nike", {"brand": ("not", ["Nike"])}),
    ("another brand", {"brand": "differ"}),
    ("-red", {"color": ("not", ["Red"])}),
    ("same colour but not in red", {"color": ("not", ["Red"])}),
    ("without gum sole", {"sole": ("not", ["Gum Sole"])}),
    ("Jordan in grey", {"brand": ["Nike"], "color": ["Gray"]}),
    ("white high-top converse", {"brand": ["Converse"], "color": ["White"], "hightop": ["High"]}),
    ("same shoe but low top", {"brand": "keep", "color": "keep", "hightop": ["Low"], "sole": "keep"}),
    ("not the same brand", {"brand": "differ"}),
])
def test_phrases_become_constraints(text, expected):
    assert summary(text) == expected


def test_what_it_cannot_read_is_kept_as_text_and_negated_words_are_pushed_away():
    c = parse_change("same brand, suede -leather not chunky")
    assert c.parsed and c.free_text == "suede"
    assert c.negative_terms == ["leather", "chunky"]
    assert "leather" not in c.positive_text and "chunky" not in c.positive_text
    unreadable = parse_change("something sporty")
    assert not unreadable.parsed and unreadable.free_text == "sporty"


def test_negated_values_never_appear_in_the_text_that_is_matched():
    c = parse_change("same brand but not red")
    assert "red" not in c.positive_text and c.avoid_texts() == ["red"]
    assert "red" not in c.wanted_description()


def test_understood_says_what_was_read_with_the_photo_values():
    c = parse_change("same brand but red")
    assert c.understood({"brand": ("Nike", 0.8)}) == ["brand: same as the photo (Nike, 80% sure)", "colour: Red"]
