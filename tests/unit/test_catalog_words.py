"""The seed's catalog word for word: `--prompts seed` classifies and filters on the values as the catalog
writes them (Newbalance, Grey, Whte; the seed's 20 colour classes on its 97-shoe catalog), `--prompts
shoefind` on the values as shoefind reads them (New Balance, Gray, White; 19), and `shoefind prompts
--json` shows which words the templates receive."""
from __future__ import annotations

import csv
import json

import pandas as pd
import pytest

from shoefind.features.table import build_table
from shoefind.scoring.zeroshot import attribute_classes
from shoefind.vocab import as_written, written_column
from tests.helpers import make_photo
from tests.helpers.cli import shoefind_here


@pytest.fixture(scope="module")
def catalog97(shared_data, tmp_path_factory):
    """A labeled folder built from the seed's own catalog (shoe-catalog-97.csv is byte-identical to its
    meta_info_final.csv): one folder per shoe name with one generated photo, and the CSV."""
    root = tmp_path_factory.mktemp("cat97")
    csv_path = shared_data / "shoe-catalog-97.csv"
    rows = list(csv.DictReader(csv_path.open(encoding="utf-8")))
    for i, row in enumerate(rows):
        make_photo(root / row["name"] / "photo.png", color=(i * 2 % 256, i * 5 % 256, i * 7 % 256), size=(48, 32), seed=i)
    return root, csv_path, pd.read_csv(csv_path)


def test_the_table_keeps_both_readings_of_every_value(catalog97):
    root, csv_path, seed_df = catalog97
    table = build_table(root, catalog=csv_path)
    shoes = table.shoes.set_index("name")
    assert shoes.loc["993 Grey", ["brand", "color"]].tolist() == ["New Balance", "Gray"]
    assert shoes.loc["993 Grey", [written_column("brand"), written_column("color")]].tolist() == ["Newbalance", "Grey"]
    assert shoes.loc["Jjjjound Gel Kayano Silver Black", "color"] == "White"
    words = table.in_catalog_words().shoes.set_index("name")
    # word for word: every attribute equals what the seed's pandas.read_csv reads
    seed = seed_df.set_index("name")
    for attr in ("brand", "color", "hightop", "sole"):
        assert (words.loc[seed.index, attr] == seed[attr]).all(), attr
    assert as_written(as_written(table.shoes)).equals(as_written(table.shoes))


def test_seed_vocabulary_sizes_and_order_are_the_seeds(catalog97):
    root, csv_path, seed_df = catalog97
    words = build_table(root, catalog=csv_path).in_catalog_words().shoes
    # utils.update_dict (the seed's dicts): values in the order the catalog first lists them
    for attr in ("brand", "color", "hightop", "sole"):
        assert attribute_classes(attr, words[attr], "catalog", as_written=True) == list(dict.fromkeys(seed_df[attr]))
    assert len(attribute_classes("color", words["color"], as_written=True)) == 20
    cleaned = build_table(root, catalog=csv_path).shoes
    assert len(attribute_classes("color", cleaned["color"])) == 19


def test_prompts_json_shows_the_words_the_templates_receive(catalog97, tmp_path, capfd):
    root, csv_path, _ = catalog97
    listings = {}
    for name in ("seed", "shoefind"):
        code, out, err = shoefind_here(capfd, "prompts", root, "--catalog", csv_path, "--prompts", name, "--json",
                                       "--data-dir", tmp_path)
        assert code == 0, err
        listings[name] = json.loads(out)
    seed, own = listings["seed"]["catalog_words"]["attributes"], listings["shoefind"]["catalog_words"]["attributes"]
    assert seed["color"]["classes"] == 20 and {"Grey", "Whte"} <= set(seed["color"]["values"])
    assert seed["color"]["shoefind_reads"] == {"Grey": "Gray", "Whte": "White"}
    assert own["color"]["classes"] == 19 and "Grey" not in own["color"]["values"]
    assert "Newbalance" in seed["brand"]["values"] and "New Balance" in own["brand"]["values"]
    filtered = listings["seed"]["tasks"]["filtered"]["prompts"]["993 Grey"]
    assert filtered[0] == "A photo of the 993 Grey shoes, brand is Newbalance, color is Grey, top is Lowtop."
    assert listings["seed"]["source"]["commit"].startswith("d96f9e9")
    assert listings["seed"]["tasks"]["color"]["prompts"]["Whte"][0] == "a photo of the Whte color shoes."
