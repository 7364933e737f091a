import os

import pandas as pd
import pytest
from typer.testing import CliRunner

from shoefind.cli.main import app
from shoefind.crawl.targets import TargetError, read_catalog
from shoefind.errors import UserError
from shoefind.features.table import build_table, load_table, parse_folder_name

from tests.helpers import make_labeled_dataset, make_photo


def kinds(table):
    return sorted(i.kind for i in table.issues)


def test_folder_convention_gives_one_row_per_shoe(tmp_path):
    ft = build_table(make_labeled_dataset(tmp_path / "ds"))
    assert len(ft.shoes) == 4 and len(ft.images) == 8 and not ft.issues
    row = ft.shoes.set_index("name").loc["Old Test Black"]
    assert (row.brand, row.hightop, row.color, row.sole) == ("Vans", "Low", "Black", "Rubber Sole")
    assert set(ft.images.columns) == {"path", "sha256", "width", "height", "shoe"}
    assert ft.images.width.iloc[0] == 320 and len(ft.images.sha256.iloc[0]) == 64


def test_parse_folder_name_keeps_underscores_in_the_name():
    assert parse_folder_name("Nike_High_Red_Plain Sole_Jordan_1")["name"] == "Jordan_1"
    assert parse_folder_name("Nike_High_Red") is None


def test_every_problem_is_listed_and_nothing_dropped_silently(tmp_path):
    root = make_labeled_dataset(tmp_path / "ds", n_per_shoe=1)
    make_photo(root / "NoConvention" / "a.jpg")                          # malformed name
    make_photo(root / "Nikey_High_Whte_Plain Sole_Typo Shoe" / "a.jpg")   # near misses
    make_photo(root / "Gucci_Low_Teal_Plain Sole_Odd Shoe" / "a.jpg")     # unknown values
    make_photo(root / "Nike_Low_Red_Plain Sole_Air Test Red" / "a.jpg")  # duplicate name
    (root / "Nike_Low_Red_Plain Sole_Air Test Red" / "broken.jpg").write_bytes(b"<html>oops</html>")
    (root / "Nike_Low_Red_Plain Sole_Air Test Red" / "notes.txt").write_text("x")
    ft = build_table(root)
    k = kinds(ft)
    assert "malformed-name" in k and "duplicate-name" in k and "unreadable-image" in k
    assert k.count("near-miss") == 2 and k.count("unknown-value") == 2 and "not-an-image-name" in k
    typo = ft.shoes.set_index("name").loc["Typo Shoe"]
    assert (typo.brand, typo.color) == ("Nike", "White")
    assert ft.shoes.set_index("name").loc["Odd Shoe"].color == "Teal"   # kept, but listed
    assert len(ft.shoes) == 7 and ft.shoes.shoe.is_unique
    broken = [i for i in ft.issues if i.kind == "unreadable-image"][0]
    assert "broken.jpg" in broken.where and "HTML" in broken.message


def test_catalog_csv_with_image_folders(tmp_path):
    root = make_labeled_dataset(tmp_path / "ds", n_per_shoe=1)
    cat = tmp_path / "catalog.csv"
    pd.DataFrame([
        {"name": "Air Test Red", "brand": "Nike", "color": "Red", "hightop": "High", "sole": "Plain Sole"},
        {"name": "Dunk Test Blue", "brand": "Nike", "color": "Whte", "hightop": "Low", "sole": "Plain Sole"},
        {"name": "Ghost Shoe", "brand": "Asics", "color": "Grey", "hightop": "Low", "sole": "Plain Sole"},
    ]).to_csv(cat, index=False)
    ft = build_table(root, catalog=cat)
    assert ft.layout == "catalog" and len(ft.shoes) == 3 and len(ft.images) == 2
    near = [i for i in ft.issues if i.kind == "near-miss"]
    assert "Whte" in near[0].message and "line 3" in near[0].where
    assert ft.shoes.set_index("name").loc["Ghost Shoe"].color == "Gray"   # alias, silently
    assert {"no-images", "not-in-catalog"} <= set(kinds(ft))


def test_class_folders_are_a_name_only_dataset(tmp_path):
    for cls, rgb in (("j1_high", (200, 0, 0)), ("dunk_low", (0, 0, 200))):
        make_photo(tmp_path / "ds" / cls / "x.png", color=rgb)
    ft = build_table(tmp_path / "ds")
    assert ft.layout == "classes" and ft.attributes == [] and sorted(ft.shoes.name) == ["dunk_low", "j1_high"]


def test_save_and_load_round_trip(tmp_path):
    ft = build_table(make_labeled_dataset(tmp_path / "ds"))
    back = load_table(ft.save(tmp_path / "t"))
    assert back.shoes.equals(ft.shoes) and back.images.sha256.tolist() == ft.images.sha256.tolist()


def test_cli_strict_fails_with_exit_2(tmp_path):
    root = make_labeled_dataset(tmp_path / "ds", n_per_shoe=1)
    make_photo(root / "BadName" / "a.jpg")
    runner = CliRunner()
    ok = runner.invoke(app, ["table", str(root), "--data-dir", str(tmp_path / "data"), "--json"])
    assert ok.exit_code == 0, ok.output
    assert (tmp_path / "data" / "tables" / "ds" / "issues.csv").read_text().count("malformed-name") == 1
    strict = runner.invoke(app, ["table", str(root), "--data-dir", str(tmp_path / "data"), "--strict"])
    assert strict.exit_code == 2


def test_shared_labeled_photos(shared_data):
    ft = build_table(shared_data / "findyourshoes-labeled")
    assert len(ft.shoes) == 28 and len(ft.images) == 30 and not ft.issues


def test_shared_catalog_typo_is_reported(shared_data):
    ft = build_table(shared_data / "findyourshoes-labeled", catalog=shared_data / "shoe-catalog-97.csv")
    assert len(ft.shoes) == 97
    assert any(i.kind == "near-miss" and "'Whte'" in i.message for i in ft.issues)


# --- hostile folders: links are never followed, every skipped file is listed ------------------
def _issue(table, where):
    return [i for i in table.issues if i.where == where]


def test_symlink_loops_and_dangling_links_are_listed_not_followed(tmp_path):
    root = make_labeled_dataset(tmp_path / "ds", n_per_shoe=1)
    shoe = next(p for p in sorted(root.iterdir()) if p.is_dir())
    (root / "loop").symlink_to(".")                         # ln -s . loop at the top
    (shoe / "self").symlink_to(shoe)                        # a folder that contains itself
    (shoe / "a").symlink_to("b")                            # a <-> b
    (shoe / "b").symlink_to("a")
    (shoe / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")  # dangling
    secret = tmp_path / "secret.jpg"
    make_photo(secret, color=(1, 2, 3))
    (shoe / "outside.jpg").symlink_to(secret)               # a real photo, but outside the dataset
    os.mkfifo(shoe / "pipe.jpg")                           # would block a reader forever
    ft = build_table(root)
    assert len(ft.shoes) == 4 and len(ft.images) == 4       # nothing counted twice, no class "loop"
    assert "loop" not in set(ft.shoes.name)
    rel = shoe.name
    assert "loop" in _issue(ft, "loop")[0].message
    assert "loop" in _issue(ft, f"{rel}/self")[0].message
    assert "loop" in _issue(ft, f"{rel}/a")[0].message and "loop" in _issue(ft, f"{rel}/b")[0].message
    assert "dangling" in _issue(ft, f"{rel}/gone.jpg")[0].message
    assert "outside" in _issue(ft, f"{rel}/outside.jpg")[0].message
    assert "regular file" in _issue(ft, f"{rel}/pipe.jpg")[0].message
    assert not any(str(secret) in p or "outside" in p for p in ft.images.path)
    out = ft.save(tmp_path / "t")
    listed = pd.read_csv(out / "issues.csv")
    assert len(listed[listed.kind.isin(["symlink", "not-a-file"])]) == 7


def test_catalog_names_match_folders_in_either_unicode_form(tmp_path):
    import unicodedata
    nfd = unicodedata.normalize("NFD", "Été Runner")           # as macOS writes folder names
    make_photo(tmp_path / "ds" / f"Nike_Low_Red_Plain Sole_{nfd}" / "a.jpg")
    cat = tmp_path / "catalog.csv"
    cat.write_text("name,brand,color,hightop,sole\n" + unicodedata.normalize("NFC", "Été Runner")
                   + ",Nike,Red,Low,Plain Sole\n", encoding="utf-8")
    ft = build_table(tmp_path / "ds", catalog=cat)
    assert len(ft.images) == 1 and not [i for i in ft.issues if i.kind in ("no-images", "not-in-catalog")]


@pytest.mark.parametrize("content,says", [
    (b"", "is empty"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "binary"),
    (b'name,brand,color,hightop,sole\n"Air Max,Nike,Red,Low,Plain Sole\n', "unterminated quote"),
    (b"name,brand,color,hightop,sole\nA,B,C,D,E,F,G\n", "line 2"),
    (b"name,brand,color,hightop,sole\n\xff\xfeA,B,C,D,E\n", "not UTF-8"),
])
def test_catalog_errors_name_the_file(tmp_path, content, says):
    root = make_labeled_dataset(tmp_path / "ds", n_per_shoe=1)
    cat = tmp_path / "my catalog.csv"
    cat.write_bytes(content)
    with pytest.raises(UserError, match=says) as info:
        build_table(root, catalog=cat)
    assert "my catalog.csv" in str(info.value)
    with pytest.raises(TargetError, match=says):
        read_catalog(cat)


def test_table_refuses_an_empty_folder_and_a_file(tmp_path):
    runner = CliRunner()
    (tmp_path / "empty").mkdir()
    (tmp_path / "photo.jpg").write_bytes(b"x")
    empty = runner.invoke(app, ["table", str(tmp_path / "empty"), "--data-dir", str(tmp_path / "data")])
    assert empty.exit_code == 2 and "has no image files" in " ".join(empty.output.split())
    a_file = runner.invoke(app, ["table", str(tmp_path / "photo.jpg"), "--data-dir", str(tmp_path / "data")])
    assert a_file.exit_code == 2 and "is a file" in " ".join(a_file.output.split())
    assert "Traceback" not in empty.output + a_file.output
