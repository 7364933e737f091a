"""Packages depend one way (scripts/layers.py): no import, at the top of a file or inside a function,
points up the layers, so there is no cycle between packages; the README's diagram is the code's."""
import importlib.util

from tests.helpers import REPO


def _layers():
    spec = importlib.util.spec_from_file_location("layers", REPO / "scripts" / "layers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_import_points_up_the_layers():
    layers = _layers()
    found = layers.imports()
    assert len(found) > 100                      # the reader sees the imports (in functions too)
    assert ("shoefind/stages/learn.py", "stages", "learn") in found
    assert not layers.upward(found), "\n".join(layers.upward(found))


def test_an_upward_import_is_caught():
    layers = _layers()
    planted = [("shoefind/learn/saved.py", "learn", "evaluate"), ("shoefind/features/x.py", "features", "newpkg")]
    assert layers.upward(planted) == ["shoefind/features/x.py: features -> newpkg (a package missing from "
                                      "scripts/layers.py LAYERS)",
                                      "shoefind/learn/saved.py: learn -> evaluate (up the layers)"]


def test_every_library_package_has_a_layer():
    layers = _layers()
    packages = {p.name for p in (REPO / "shoefind").iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    modules = {p.stem for p in (REPO / "shoefind").glob("*.py") if p.stem != "__init__"}
    assert not (packages | modules) - set(layers.ORDER)


def test_readme_diagram_is_drawn_from_the_code():
    layers = _layers()
    assert layers.readme_block((REPO / "README.md").read_text()) == layers.diagram(), \
        "run .venv/bin/python scripts/layers.py --readme"
