"""Reading a user's CSV file (a shoe catalog): every failure is one line naming the file.

Strict: an empty file, binary bytes, text that is not UTF-8, an unterminated quote or a row
with more cells than the header are refused, never half-read.
"""
from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from shoefind.errors import UserError


class CsvError(UserError):
    """A CSV file that cannot be read; str() names the file and, where known, the line."""


def read_csv_rows(path: str | os.PathLike, what: str = "catalog") -> tuple[list[str], list[tuple[int, dict]]]:
    """(header, [(line number, row dict), ...]) of a UTF-8 CSV file with a header line."""
    path = Path(path)
    if path.is_dir():
        raise CsvError(f"{what} {path} is a folder, not a CSV file")
    if not path.is_file():
        raise CsvError(f"{what} {path} does not exist")
    raw = path.read_bytes()
    if not raw.strip():
        raise CsvError(f"{what} {path} is empty: it needs a header line (name,brand,color,hightop,sole) and rows")
    if b"\x00" in raw:
        raise CsvError(f"{what} {path} is a binary file, not a CSV text file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise CsvError(f"{what} {path} line {line}: not UTF-8 text (save it as UTF-8 CSV)") from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[tuple[int, dict]] = []
    try:
        header = [h.strip() for h in next(reader)]
        for cells in reader:
            if not any(c.strip() for c in cells):
                continue  # blank line
            if len(cells) > len(header):
                raise CsvError(f"{what} {path} line {reader.line_num}: {len(cells)} cells but the header has "
                               f"{len(header)} (a comma inside a value needs quotes)")
            rows.append((reader.line_num, dict(zip(header, cells + [""] * (len(header) - len(cells))))))
    except csv.Error as exc:
        raise CsvError(f"{what} {path} line {reader.line_num}: not valid CSV ({exc}; an unterminated quote?)") from None
    return header, rows
