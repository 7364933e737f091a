"""Prompt sets: every template of every set, filled with every vocabulary value, reads cleanly;
the seed set is the seed's templates verbatim."""
from __future__ import annotations

import re

import pandas as pd
import pytest

from shoefind.errors import UserError
from shoefind.prompts import full_name, load_prompt_set, prompt_set_names
from shoefind.scoring.zeroshot import ZeroShotOptions, attribute_classes
from shoefind.vocab import ATTRIBUTES, vocabularies

from tests.helpers import SHARED_DATA

DANGLING = ("a", "an", "the", "with", "of", "by", "in", "is", "and", "on")
# shoe names as shops write them: some repeat the brand, some end in a word a template may add
NAMES = ["Converse High White", "Jordan1 Retro High og Chicago", "Adidas Samba Vegan Black", "Vans Sk8 Hi",
         "New Balance 550 White Green", "Air Force 1 Low Sneaker", "Dunk Low Retro Shoe"]


def problems(text: str) -> list[str]:
    """What is wrong with one generated prompt (empty: nothing)."""
    found = []
    if "{" in text or "}" in text:
        found.append("unfilled slot")
    if text != " ".join(text.split()):
        found.append("stray spaces")
    if re.search(r"\s[.,;:]|,\s*[.,]|^[.,]|\.\.", text):
        found.append("empty slot (space or comma before punctuation)")
    words = re.findall(r"[\w'-]+", text.lower())
    doubled = [a for a, b in zip(words, words[1:]) if a == b]
    if doubled:
        found.append(f"doubled word '{doubled[0]}'")
    for clause in re.split(r"[.,;:]", text):
        tail = clause.split()[-1:] if clause.strip() else []
        if tail and tail[0].lower() in DANGLING:
            found.append(f"dangling '{tail[0]}'")
    return found


def all_shoes():
    """Every combination of values the filtered-shoe templates can meet, with and without a sole."""
    vocab = vocabularies()
    shoes = []
    for i, name in enumerate(NAMES):
        for brand in vocab["brand"].values:
            for j, color in enumerate(vocab["color"].values):
                top = vocab["hightop"].values[(i + j) % len(vocab["hightop"].values)]
                sole = ([""] + list(vocab["sole"].values))[(i + j) % (len(vocab["sole"].values) + 1)]
                shoes.append({"name": name, "brand": brand, "color": color, "hightop": top, "sole": sole})
    return shoes


def every_prompt(prompt_set) -> dict[str, list[str]]:
    vocab = vocabularies()
    out = {a: [p for ps in prompt_set.attribute_prompts(a, list(vocab[a].values)) for p in ps] for a in ATTRIBUTES}
    out["name"] = [p for ps in prompt_set.name_prompts(NAMES) for p in ps]
    out["filtered"] = [p for ps in prompt_set.filtered_prompts(all_shoes()) for p in ps]
    out["coop"] = [c for t in ATTRIBUTES for c in prompt_set.coop_texts(t, list(vocab[t].values))]
    out["coop"] += prompt_set.coop_texts("name", NAMES)
    r = prompt_set.retrieval
    out["search"] = [t.format("white high-top converse") for t in r["query_templates"]]
    out["search"] += [t.format(v) for t in r["negative_templates"] for v in ("red", "leather")]
    out["change"] = [r["baseline_template"].format(name=n, change="the same brand but red") for n in NAMES]
    return out


@pytest.mark.parametrize("name", ["shoefind", "seed"])
def test_every_template_with_every_value_reads_cleanly(name):
    assert name in prompt_set_names()
    bad = {f"{task}: {text!r}": problems(text)
           for task, texts in every_prompt(load_prompt_set(name)).items() for text in texts if problems(text)}
    assert not bad, bad


def test_the_checker_catches_the_old_bugs():
    assert problems("a photo of a shoe with a blue sole sole.") == ["doubled word 'sole'"]
    assert "dangling 'a'" in problems("a red high-top Nike sneaker, the Dunk, with a.")
    assert "dangling 'with'" in problems("a red high-top Nike sneaker, the Dunk, with.")
    assert problems("a red high-top Nike sneaker, the Dunk, with a .")
    assert problems("a photo of the {} shoes.")
    assert problems("a product photo of the Dunk Low by Nike in white.") == []


def test_a_shoe_without_a_sole_loses_only_the_sole_template():
    shoefind = load_prompt_set("shoefind")
    with_sole, without = shoefind.filtered_prompts([
        {"name": "Chuck 70", "brand": "Converse", "color": "White", "hightop": "High", "sole": "Plain Sole"},
        {"name": "Chuck 70", "brand": "Converse", "color": "White", "hightop": "High", "sole": ""}])
    assert len(with_sole) == 3 and len(without) == 2
    assert "a white high-top sneaker, the Converse Chuck 70, with a plain white sole." in with_sole
    assert full_name({"name": "Converse Chuck 70", "brand": "Converse"}) == "Converse Chuck 70"


def test_seed_set_is_the_seeds_templates_verbatim():
    seed = load_prompt_set("seed")
    assert seed.attribute_prompts("hightop", ["High"]) == [[
        "a photo of the Hightop shoes.", "a photo of a Hightop sneakers.", "a bright photo of the Hightop sneakers."]]
    assert seed.attribute_prompts("sole", ["Plain Sole"])[0][0] == "a photo of the shoes of sole is Plain Sole"
    assert seed.attribute_prompts("brand", ["Nike"])[0] == [
        "a photo of the Nike brand shoes.", "a photo of a Nike brand sneakers.", "a bright photo of the Nike brand sneakers."]
    assert seed.name_prompts(["Converse Low Black"])[0] == [
        "a photo of the Converse Low Black shoes.", "a photo of a Converse Low Black sneakers.",
        "a photo of the Converse Low Black shoes."]
    dunk = [{"name": "Dunk Low", "brand": "Nike", "color": "Red", "hightop": "Low", "sole": "Plain Sole"}]
    # `seed` is the seed's latest templates (config/prompt_template.yaml at d96f9e9: "top is {}top")
    assert seed.filtered_prompts(dunk)[0] == [
        "A photo of the Dunk Low shoes, brand is Nike, color is Red, top is Lowtop.",
        "Brand is Nike, color is Red, a photo of a Dunk Low shoes, top is Lowtop.",
        "Brand is Nike, color is Red, top is Lowtop, a photo of the Dunk Low shoes."]
    # `seed@96.3` the commit that scored 96.3% (b7ea4955: "hightop is {}top"); the rest is the same
    scored = load_prompt_set("seed@96.3")
    assert scored.filtered_prompts(dunk)[0] == [
        "A photo of the Dunk Low shoes, brand is Nike, color is Red, hightop is Lowtop.",
        "Brand is Nike, color is Red, a photo of a Dunk Low shoes, hightop is Lowtop.",
        "Brand is Nike, color is Red, hightop is Lowtop, a photo of the Dunk Low shoes."]
    for attr in ("brand", "color", "hightop", "sole"):
        assert scored.attribute_templates(attr) == seed.attribute_templates(attr)
    assert (seed.source["commit"], scored.source["commit"]) == ("d96f9e928e5a57b92aa98fed9ab59147e3af0afb",
                                                                "b7ea4955a33daa9afbd8d44758bc58403d8ee5e5")
    assert seed.as_written and scored.as_written and not load_prompt_set("shoefind").as_written
    assert seed.coop_texts("name", ["Dunk Low"]) == ["Dunk Low."]
    assert load_prompt_set("shoefind").coop_texts("sole", ["Blue Sole"]) == ["shoe with a blue sole."]
    # what the seed has no prompts for comes from shoefind, and says so
    assert seed.retrieval["negative_templates"] == load_prompt_set("shoefind").retrieval["negative_templates"]
    assert "shoefind" in seed.sources["retrieval"]


def test_step_one_scores_the_catalogs_values_unless_asked_for_all():
    labels = pd.Series(["High", "Low", "High"])
    assert attribute_classes("hightop", labels) == ["High", "Low"]
    assert attribute_classes("hightop", labels, "full") == ["High", "Mid", "Low"]
    assert attribute_classes("brand", pd.Series(["Nike", "Fila"])) == ["Nike", "Fila"]


def test_options_are_read_with_clear_errors():
    o = ZeroShotOptions.parse(filter_attributes="brand, color,hightop,sole")
    assert o.filter_attributes == ("brand", "color", "hightop", "sole") and o.prompts == "shoefind"
    assert ZeroShotOptions.parse().filter_attributes == ("brand", "color", "hightop")
    for kwargs, word in [({"prompts": "nope"}, "prompt set"), ({"vocabulary": "some"}, "vocabulary"),
                         ({"fallback": "drop"}, "fallback"), ({"filter_attributes": "brand,size"}, "size")]:
        with pytest.raises(UserError, match=word):
            ZeroShotOptions.parse(**kwargs)


@pytest.mark.skipif(not (SHARED_DATA / "shoe-catalog-97.csv").is_file(), reason="../shared/data is absent")
def test_a_real_catalogs_names_read_cleanly():
    shoes = pd.read_csv(SHARED_DATA / "shoe-catalog-97.csv").fillna("")
    vocab = vocabularies()
    for col in ("brand", "color", "hightop", "sole"):
        shoes[col] = shoes[col].map(lambda v, c=col: vocab[c].read(v).value if v else "")
    for name in prompt_set_names():
        p = load_prompt_set(name)
        texts = [t for ps in p.filtered_prompts(shoes.to_dict("records")) + p.name_prompts(shoes["name"].tolist())
                 for t in ps]
        bad = {t: problems(t) for t in texts if problems(t)}
        assert not bad, (name, bad)


def _listed_texts(listing: dict) -> list[str]:
    out = []
    for body in listing["tasks"].values():
        for texts in body["prompts"].values():
            out += list(texts.values()) if isinstance(texts, dict) else list(texts)
    return out


@pytest.mark.parametrize("name", ["shoefind", "seed"])
def test_the_listing_holds_every_task_and_clean_prompts(name, tmp_path):
    from shoefind.features.table import build_table
    from shoefind.retrieve.prompt_listing import prompt_listing
    from tests.helpers import make_labeled_dataset
    table = build_table(make_labeled_dataset(tmp_path / "ds", n_per_shoe=1))
    listing = prompt_listing(table.shoes, ZeroShotOptions.parse(prompts=name), table.attributes)
    assert set(listing["tasks"]) == {"brand", "color", "hightop", "sole", "filtered", "name", "coop", "search", "change"}
    # step 1 lists the catalog's values only; the filter leaves sole out unless asked
    assert list(listing["tasks"]["hightop"]["prompts"]) == ["High", "Low"]
    assert "brand, color, hightop)" in listing["tasks"]["filtered"]["what"]
    assert len(listing["tasks"]["name"]["prompts"]) == 4
    texts = [t.format("white high-top converse") if "{}" in t else t.format(name="Dunk", change="in red")
             if "{name}" in t else t for t in _listed_texts(listing)]
    bad = {t: problems(t) for t in texts if problems(t)}
    assert not bad, bad
