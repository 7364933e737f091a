"""The library's packages in the one order they may depend on each other, read from the code.

Every `import shoefind.X` (at the top of a file or inside a function) must point down this list, never
up: a package imports only packages below it, so there is no cycle between packages. Tests hold the
code to it (tests/unit/test_layers.py), and the README's package diagram is printed from it:

    .venv/bin/python scripts/layers.py            # the diagram, as the README shows it
    .venv/bin/python scripts/layers.py --readme   # rewrite the README's diagram block
"""
from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# From the top down; a package may import the ones after it. tasks/ and flows/ (the Prefect layer,
# kept in the checkout) sit above the library.
LAYERS = [
    ("flows", "Prefect flows: chain the tasks, one per deployment of prefect.yaml"),
    ("tasks", "Prefect tasks: thin wrappers over the stages (retries, batching, artifacts)"),
    ("cli", "the `shoefind` command"),
    ("serve", "the HTTP API"),
    ("web", "the Streamlit page"),
    ("stages", "one runner per stage, as the CLI and the flows both call it"),
    ("evaluate", "top-1/top-5 reports, method and model comparisons, composed-retrieval benchmark"),
    ("retrieve", "answers: identify, change in words, text search"),
    ("registry", "trained models of a dataset, which one is current"),
    ("learn", "few-shot heads, CoOp, LiT, finetune; fitting and held-out scoring"),
    ("curate", "crawl rules, duplicates, semantic check, the review queue and its page"),
    ("scoring", "zero-shot scores from prompts, change phrases, accuracy"),
    ("checks", "up-front checks of a dataset and a model"),
    ("crawl", "image search in a real browser, guarded downloads, the manifest"),
    ("features", "feature table, embedding cache, splits, catalog, vector index"),
    ("demo", "the drawn demo catalog"),
    ("encoders", "one Encoder interface: model specs, families, runtimes"),
    ("artifacts", "stored model files read safely: weights-only torch loading, finite numbers"),
    ("prompts", "prompt sets"),
    ("vocab", "attribute vocabularies"),
    ("settings", "Settings and DataLayout, read once"),
    ("cluster", "where encoding runs"),
    ("images", "reading photos safely"),
    ("csvfile", "reading a user's CSV"),
    ("rules_schema", "the shape of every rules/*.yaml"),
    ("threads", "numeric libraries on one thread where that is faster"),
    ("walk", "listing files without following links"),
    ("faults", "crash points for the kill -9 tests"),
    ("errors", "one error family"),
]
ORDER = {name: i for i, (name, _) in enumerate(LAYERS)}
GROUND = {"settings", "cluster", "images", "csvfile", "rules_schema", "threads", "walk", "faults", "errors"}


def package_of(module: str) -> str | None:
    """'shoefind.learn.fewshot' -> 'learn'; 'tasks.learn' -> 'tasks'; None for other libraries."""
    parts = module.split(".")
    if parts[0] == "shoefind":
        return parts[1] if len(parts) > 1 else None
    return parts[0] if parts[0] in ("tasks", "flows") else None


def source_files():
    for folder in ("shoefind", "tasks", "flows"):
        yield from sorted((REPO / folder).rglob("*.py"))


def imports() -> list[tuple[str, str, str]]:
    """(file, from package, to package) for every import of another package, in functions too."""
    found = []
    for path in source_files():
        rel = path.relative_to(REPO)
        module = ".".join(rel.with_suffix("").parts).removesuffix(".__init__")
        here = package_of(module)
        for node in ast.walk(ast.parse(path.read_text(), str(rel))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names] \
                    if node.module == "shoefind" else [node.module]
            elif isinstance(node, ast.ImportFrom) and node.level:      # relative: inside flows/ or tasks/
                targets = [f"{module.split('.')[0]}.{node.module or ''}"]
            else:
                continue
            for target in targets:
                there = package_of(target)
                if there and here and there != here:
                    found.append((str(rel), here, there))
    return found


def upward(found=None) -> list[str]:
    """Imports that point up the list (or at a package the list does not name)."""
    bad = []
    for file, here, there in found if found is not None else imports():
        if here not in ORDER or there not in ORDER:
            bad.append(f"{file}: {here} -> {there} (a package missing from scripts/layers.py LAYERS)")
        elif ORDER[there] <= ORDER[here]:
            bad.append(f"{file}: {here} -> {there} (up the layers)")
    return sorted(set(bad))


def diagram(found=None) -> str:
    """One line per package from the top down: what it is for and the packages it imports."""
    uses = defaultdict(set)
    for _, here, there in found if found is not None else imports():
        uses[here].add(there)
    width = max(len(name) for name, _ in LAYERS) + 4
    lines = []
    for name, what in LAYERS:
        if name in GROUND:
            continue
        below = sorted((u for u in uses.get(name, ()) if u not in GROUND), key=ORDER.get)
        shown = name + ("/" if name in ("tasks", "flows") or (REPO / "shoefind" / name).is_dir() else ".py")
        lines.append(f"    {shown:<{width}} {what}")
        if below:
            lines.append(f"    {'':<{width}}   uses {', '.join(below)}")
    ground = [name for name, _ in LAYERS if name in GROUND]
    lines.append(f"    {'ground:':<{width}} {', '.join(ground)} (every package may use them)")
    return "\n".join(lines)


README_START, README_END = "<!-- layers: scripts/layers.py -->", "<!-- /layers -->"


def readme_block(text: str) -> str:
    start, end = text.index(README_START) + len(README_START), text.index(README_END)
    return text[start:end].strip("\n")


def main(argv: list[str]) -> int:
    found = imports()
    if bad := upward(found):
        print("\n".join(bad), file=sys.stderr)
        return 1
    if "--readme" in argv:
        readme = REPO / "README.md"
        text = readme.read_text()
        start, end = text.index(README_START) + len(README_START), text.index(README_END)
        readme.write_text(text[:start] + "\n" + diagram(found) + "\n" + text[end:])
        return 0
    print(diagram(found))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
