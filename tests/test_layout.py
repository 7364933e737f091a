"""The design card's shape: shoefind/ is a plain library, rules/ is data."""
import ast

import yaml

from .conftest import REPO


def test_library_does_not_import_prefect():
    offenders = []
    for path in (REPO / "shoefind").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in ("prefect", "prefect_dask")]
    assert not offenders, offenders


def test_rules_are_yaml_data():
    files = list((REPO / "rules").iterdir())
    assert files and all(f.suffix == ".yaml" for f in files)
    for f in files:
        assert isinstance(yaml.safe_load(f.read_text()), (dict, list)), f.name


def test_prefect_yaml_entrypoints_exist():
    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    for dep in spec["deployments"]:
        path, func = dep["entrypoint"].split(":")
        assert f"def {func}(" in (REPO / path).read_text(), dep["entrypoint"]
