"""The package installs from a wheel and works from any folder, with only its own top-level name."""
from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.helpers import REPO


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from the committed-or-not working tree (copied, so the checkout stays clean)."""
    src = tmp_path_factory.mktemp("src")
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.split()
    tar = src / "tree.tar"
    with tarfile.open(tar, "w") as tf:
        for name in files:
            if (REPO / name).is_file():
                tf.add(REPO / name, arcname=name)
    with tarfile.open(tar) as tf:
        tf.extractall(src / "tree", filter="data")
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out),
                    str(src / "tree")], check=True, capture_output=True)
    [whl] = out.glob("shoefind-*.whl")
    return whl


def test_wheel_holds_only_the_project_name_and_ships_rules_and_web_page(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"shoefind", wheel.name.split("-py3")[0] + ".dist-info"}, tops
    rules = {Path(n).name for n in names if n.startswith("shoefind/rules/")}
    assert rules == {p.name for p in (REPO / "rules").glob("*.yaml")}
    assert "shoefind/web/app.py" in names
    subpackages = {p.parent.name for p in (REPO / "shoefind").glob("*/__init__.py")}
    shipped = {n.split("/")[1] for n in names if n.count("/") == 2 and n.endswith("/__init__.py")}
    assert subpackages <= shipped, f"missing from pyproject's packages: {subpackages - shipped}"


def test_installed_wheel_builds_a_table_from_another_folder(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    photos = tmp_path / "photos" / "Nike_High_Red_Plain Sole_Air Test"
    photos.mkdir(parents=True)
    from tests.helpers import make_photo
    make_photo(photos / "a.jpg")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOEFIND_")}
    env.update(PYTHONPATH=str(target), XDG_DATA_HOME=str(tmp_path / "xdg"))
    code = ("import sys, shoefind; print(shoefind.__file__); from shoefind.cli.main import main; "
            f"sys.argv = ['shoefind', 'table', {str(tmp_path / 'photos')!r}]; main()")
    done = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].startswith(str(target))   # the wheel's code, not the checkout's
    # the working data folder of an installed package is the user data folder, not ./data
    assert (tmp_path / "xdg" / "shoefind" / "tables" / "photos" / "shoes.csv").is_file()
    assert not (elsewhere / "data").exists()
