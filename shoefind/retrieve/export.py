"""Answers as CSV rows: one row per photo and result (`infer --csv`, `search --csv`)."""
from __future__ import annotations

import csv
import os
from pathlib import Path

from shoefind.errors import UserError

SHOE_COLUMNS = ["shoe", "brand", "color", "hightop", "sole"]
INFER_COLUMNS = ["photo", "kind", "rank", *SHOE_COLUMNS, "probability", "score", "method", "in_catalog",
                 "catalog_shoe", "not_in_catalog", "nearest_similarity", "change", "error"]
SEARCH_COLUMNS = ["query", "rank", *SHOE_COLUMNS, "score", "photo"]


def answer_rows(answer: dict) -> list[dict]:
    """`answer_photos` output: per photo its top shoes (kind "identified") and, with a change, the
    changed shoes (kind "changed"); a photo that failed is one row with its error."""
    rows = []
    for a in answer["answers"]:
        if a.get("error"):
            rows.append({"photo": a["photo"], "kind": "error", "error": a["error"]})
            continue
        base = {"photo": a["photo"], "method": a.get("method", ""), "in_catalog": a.get("in_catalog", False),
                "catalog_shoe": (a.get("catalog_shoe") or {}).get("shoe", ""),
                "not_in_catalog": a.get("not_in_catalog", False),
                "nearest_similarity": (a.get("open_set") or {}).get("nearest_similarity", "")}
        for rank, shoe in enumerate(a["top_shoes"], 1):
            rows.append(base | {"kind": "identified", "rank": rank, "probability": shoe.get("probability"),
                                "score": shoe.get("score")} | {c: shoe.get(c, "") for c in SHOE_COLUMNS})
        change = a.get("change")
        for rank, shoe in enumerate((change or {}).get("results", []), 1):
            rows.append(base | {"kind": "changed", "rank": rank, "change": change["text"], "score": shoe.get("score")}
                        | {c: shoe.get(c, "") for c in SHOE_COLUMNS})
    return rows


def search_rows(found: dict, text: str) -> list[dict]:
    return [{"query": text, "rank": rank, "score": r.get("score"), "photo": r.get("photo", "")}
            | {c: r.get(c, "") for c in SHOE_COLUMNS} for rank, r in enumerate(found["results"], 1)]


def check_csv_target(path: str | os.PathLike) -> Path:
    """Where a CSV may be written: its folder exists and it is not a folder (checked before any work)."""
    target = Path(path).expanduser()
    if target.is_dir():
        raise UserError(f"--csv {target} is a folder: give a file name, e.g. {target / 'answers.csv'}")
    if not target.parent.is_dir():
        raise UserError(f"--csv {target}: the folder {target.parent} does not exist")
    return target


def write_csv(rows: list[dict], columns: list[str], path: str | os.PathLike) -> Path:
    """Write rows (missing cells empty) atomically: a half-written CSV never appears."""
    target = check_csv_target(path)
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise UserError(f"--csv {target}: cannot be written ({exc.strerror or exc})") from None
    return target
