"""The design card's shape: shoefind/ is a plain library, rules/ is data."""
import ast

import yaml

from tests.helpers import REPO


def test_library_does_not_import_prefect():
    """The library is plain Python; only the CLI may talk to a Prefect API (lazily)."""
    offenders = []
    for path in (REPO / "shoefind").rglob("*.py"):
        if "cli" in path.relative_to(REPO / "shoefind").parts:
            continue
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


def test_no_import_cycles_in_the_library():
    import ast
    mods = {}
    for f in (REPO / "shoefind").rglob("*.py"):
        name = ".".join(f.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        deps = set()
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("shoefind"):
                deps |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level:
                raise AssertionError(f"{name}: relative import; use absolute shoefind.* imports")
        mods[name] = deps
    graph = {m: {d for d in deps if d in mods and d != m} for m, deps in mods.items()}
    seen, stack, cycles = set(), [], []

    def visit(m):
        if m in stack:
            cycles.append(stack[stack.index(m):] + [m])
            return
        if m in seen:
            return
        seen.add(m)
        stack.append(m)
        for d in graph[m]:
            visit(d)
        stack.pop()
    for m in graph:
        visit(m)
    assert not cycles, cycles
