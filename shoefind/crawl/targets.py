"""What to crawl: shoes (from a catalog CSV or a YAML list) and the search queries for each.

A shoe's images go to its dataset folder `Brand_Top_Color_Sole_Name/` (see shoefind.features.table),
so every field must be present and must not contain the `_` separator or a path character.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from shoefind.csvfile import CsvError, read_csv_rows
from shoefind.vocab import ATTRIBUTES, vocabularies
from shoefind.errors import UserError

REQUIRED = ("name", "brand", "color", "hightop", "sole")
_FORBIDDEN = ("_", "/", "\\", "\0")


class TargetError(UserError):
    """The shoe list cannot be read; str() says which line and why."""


@dataclass(frozen=True)
class Shoe:
    name: str
    brand: str
    color: str
    hightop: str
    sole: str
    queries: tuple[str, ...] = field(default=())

    @property
    def folder(self) -> str:
        return "_".join((self.brand, self.hightop, self.color, self.sole, self.name))


@dataclass(frozen=True)
class Query:
    """One search: the text typed into the engine and the shoe its images belong to."""
    text: str
    shoe: Shoe


def default_query(shoe: Shoe) -> str:
    # The brand is usually part of a product name ("Converse Chuck 70"); don't repeat it.
    if shoe.brand.lower() in shoe.name.lower():
        return shoe.name
    return f"{shoe.brand} {shoe.name}"


def _canonical(attr: str, raw: str) -> str:
    # Exact values and aliases are normalised ("Grey" -> "Gray"); anything else is kept as
    # written so the table step can flag it rather than the crawler guessing.
    reading = vocabularies()[attr].read(raw)
    return reading.value if reading.problem is None else raw.strip()


def make_shoe(record: dict, where: str) -> Shoe:
    missing = [k for k in REQUIRED if not str(record.get(k) or "").strip()]
    if missing:
        raise TargetError(f"{where}: missing {', '.join(missing)} (need {', '.join(REQUIRED)})")
    values = {k: str(record[k]).strip() for k in REQUIRED}
    for key, value in values.items():
        bad = [c for c in _FORBIDDEN if c in value]
        if bad:
            raise TargetError(f"{where}: {key} '{value}' contains {bad[0]!r}, which the folder "
                              "convention Brand_Top_Color_Sole_Name cannot hold")
    for attr in ATTRIBUTES:
        values[attr] = _canonical(attr, values[attr])
    queries = record.get("queries") or record.get("query") or ()
    if isinstance(queries, str):
        queries = [q for q in queries.split(";")]
    queries = tuple(q.strip() for q in queries if str(q).strip())
    shoe = Shoe(**values)
    return Shoe(**values, queries=queries or (default_query(shoe),))


def read_catalog(path: str | os.PathLike) -> list[Shoe]:
    """Catalog CSV `name,brand,color,hightop,sole` (optional `queries`, separated by ';')."""
    path = Path(path)
    try:
        header, rows = read_csv_rows(path)
    except CsvError as exc:
        raise TargetError(str(exc)) from None
    missing = set(REQUIRED) - set(header)
    if missing:
        raise TargetError(f"{path}: missing columns {sorted(missing)} (need {','.join(REQUIRED)})")
    return [make_shoe(row, f"{path.name} line {line}") for line, row in rows]


def read_shoe_list(path: str | os.PathLike) -> list[Shoe]:
    """YAML: `shoes: [{name, brand, color, hightop, sole, queries: [...]}, ...]` (or a bare list)."""
    path = Path(path)
    if not path.is_file():
        raise TargetError(f"shoe list {path} does not exist")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise TargetError(f"{path}: not valid YAML ({exc})") from None
    items = doc.get("shoes") if isinstance(doc, dict) else doc
    if not isinstance(items, list):
        raise TargetError(f"{path}: expected a list of shoes under 'shoes:'")
    shoes = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise TargetError(f"{path.name} shoe #{i + 1}: expected a mapping with name, brand, ...")
        shoes.append(make_shoe(item, f"{path.name} shoe #{i + 1} ({item.get('name', '?')})"))
    return shoes


def queries_for(shoes: list[Shoe]) -> list[Query]:
    """Every (query, shoe) pair, each query once per shoe, in input order."""
    seen: set[tuple[str, str]] = set()
    out = []
    for shoe in shoes:
        for text in shoe.queries:
            key = (text.lower(), shoe.folder)
            if key not in seen:
                seen.add(key)
                out.append(Query(text, shoe))
    return out


def crawl_queries(catalog: str | os.PathLike | None = None, shoes: str | os.PathLike | None = None) -> list[Query]:
    """The search queries for a catalog CSV or a YAML shoe list (exactly one of them), or TargetError."""
    if bool(catalog) == bool(shoes):
        raise TargetError("give the shoes to crawl as a catalog CSV (--catalog) or a YAML shoe list (--shoes), "
                          "one of them")
    queries = queries_for(read_catalog(catalog) if catalog else read_shoe_list(shoes))
    if not queries:
        raise TargetError(f"no shoes to crawl in {catalog or shoes}")
    return queries
