"""The feature table: a labeled photo folder (or catalog CSV + folders) -> shoes and images tables.

Two input conventions:
- one subfolder per shoe named `Brand_Top_Color_Sole_Name` (e.g.
  `Nike_High_Red_Plain Sole_Jordan1 Retro High og Chicago`);
- a catalog CSV `name,brand,color,hightop,sole` plus one image folder per shoe, named
  by the shoe's name or by the convention above.
A folder whose subfolders match neither is read as "one class per folder" (a `name` only).

Nothing is dropped silently: every problem becomes an `Issue` in the result.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd

from shoefind.csvfile import read_csv_rows
from shoefind.images import ImageError, is_image_name, open_image, sha256_file
from shoefind.vocab import ATTRIBUTES, _norm, as_written, vocabularies, written_column
from shoefind.errors import PathNotFound, UserError
from shoefind.settings import DataLayout
from shoefind.walk import UNREADABLE_FOLDER, Skipped, link_reason, list_files

# the attributes as shoefind reads them, then as the catalog (or folder name) writes them
SHOE_COLUMNS = ["shoe", "name", "brand", "hightop", "color", "sole", "folder"] + [written_column(a) for a in ATTRIBUTES]
IMAGE_COLUMNS = ["path", "sha256", "width", "height", "shoe"]


@dataclass
class Issue:
    kind: str        # malformed-name | unknown-value | near-miss | duplicate-name | unreadable-image | ...
    where: str
    message: str

    def __str__(self) -> str:
        return f"[{self.kind}] {self.where}: {self.message}"


@dataclass
class FeatureTable:
    root: Path
    shoes: pd.DataFrame
    images: pd.DataFrame
    issues: list[Issue] = field(default_factory=list)
    layout: str = "folders"   # folders | catalog | classes

    @property
    def attributes(self) -> list[str]:
        """The attributes this table has labels for (classes layout: none but name)."""
        return [a for a in ATTRIBUTES if self.shoes[a].fillna("").astype(str).str.len().gt(0).any()]

    def in_catalog_words(self) -> "FeatureTable":
        """This table with its attribute values as the catalog writes them (shoefind.vocab.as_written):
        what a word-for-word prompt set (the seed's) classifies, filters and is scored against."""
        return FeatureTable(self.root, as_written(self.shoes), self.images, self.issues, self.layout)

    def labeled_images(self) -> pd.DataFrame:
        """Images joined with their shoe's labels."""
        return self.images.merge(self.shoes.drop(columns=["folder"]), on="shoe", how="left")

    def save(self, out_dir: str | os.PathLike, fingerprint: str | None = None) -> Path:
        """Write the CSVs, then table.json (with the dataset's fingerprint, when given: see
        saved_table_if_current). table.json goes first, so a save cut short is never reused."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "table.json").unlink(missing_ok=True)
        _atomic_csv(self.shoes, out / "shoes.csv")
        _atomic_csv(self.images, out / "images.csv")
        _atomic_csv(pd.DataFrame([asdict(i) for i in self.issues], columns=["kind", "where", "message"]),
                    out / "issues.csv")
        meta = {"root": str(self.root), "layout": self.layout, "shoes": len(self.shoes),
                "images": len(self.images), "issues": len(self.issues)}
        if fingerprint:
            meta["fingerprint"] = fingerprint
        tmp = out / ".table.json.tmp"
        tmp.write_text(json.dumps(meta, indent=2))
        os.replace(tmp, out / "table.json")
        return out


def _atomic_csv(df: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    df.to_csv(tmp, index=False)
    os.replace(tmp, path)


def load_table(table_dir: str | os.PathLike) -> FeatureTable:
    d = Path(table_dir)
    meta = json.loads((d / "table.json").read_text())
    shoes = pd.read_csv(d / "shoes.csv", dtype=str, keep_default_na=False)
    images = pd.read_csv(d / "images.csv", dtype={"path": str, "sha256": str, "shoe": str},
                         keep_default_na=False)
    issues_df = pd.read_csv(d / "issues.csv", dtype=str, keep_default_na=False)
    issues = [Issue(**r) for r in issues_df.to_dict("records")]
    return FeatureTable(Path(meta["root"]), shoes, images, issues, meta["layout"])


def saved_table_if_current(table_dir: str | os.PathLike, fingerprint: str) -> FeatureTable | None:
    """The table saved in table_dir when it was built from a dataset with this fingerprint
    (shoefind.features.table_fingerprint), else None: build it again."""
    d = Path(table_dir)
    try:
        if json.loads((d / "table.json").read_text()).get("fingerprint") != fingerprint:
            return None
        return load_table(d)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):   # missing, partial or foreign files
        return None


def parse_folder_name(name: str) -> dict | None:
    """`Brand_Top_Color_Sole_Name` -> fields, or None if it does not have five parts."""
    parts = name.split("_", 4)
    if len(parts) != 5 or not all(p.strip() for p in parts):
        return None
    brand, top, color, sole, shoe_name = (p.strip() for p in parts)
    return {"brand": brand, "hightop": top, "color": color, "sole": sole, "name": shoe_name}


def _read_values(row: dict, where: str, issues: list[Issue]) -> dict:
    vocabs = vocabularies()
    out = dict(row)
    for attr in ATTRIBUTES:
        raw = row.get(attr, "")
        out[written_column(attr)] = "" if raw is None else str(raw)
        if raw is None or str(raw).strip() == "":
            issues.append(Issue("missing-value", where, f"no {attr} given"))
            out[attr] = ""
            continue
        reading = vocabs[attr].read(raw)
        out[attr] = reading.value
        if reading.problem == "near-miss":
            issues.append(Issue("near-miss", where,
                                f"{attr} '{raw}' is not in rules/vocabularies.yaml; read as '{reading.suggestion}' "
                                "(fix the source, or add an alias)"))
        elif reading.problem == "unknown":
            issues.append(Issue("unknown-value", where,
                                f"{attr} '{raw}' is not in rules/vocabularies.yaml "
                                f"(known: {', '.join(vocabs[attr].values)}); kept as is"))
    return out


class DatasetError(UserError):
    """The dataset folder cannot be read as a dataset at all."""


def _skipped_issue(s: Skipped, root: Path) -> Issue:
    kind = "symlink" if "symbolic link" in s.reason else "unreadable-folder" if s.reason.startswith(
        UNREADABLE_FOLDER) else "not-a-file"
    return Issue(kind, str(s.path.relative_to(root)), s.reason)


def _image_files(folder: Path, root: Path, issues: list[Issue]) -> tuple[list[Path], list[Path], bool]:
    """(image files, other files, whether some folder could not be read)."""
    listing = list_files(folder)
    issues.extend(_skipped_issue(s, root) for s in listing.skipped)
    files = [p for p in listing.files if not p.name.startswith(".")]
    return [p for p in files if is_image_name(p)], [p for p in files if not is_image_name(p)], bool(listing.unreadable)


def _scan_images(root: Path, folder: Path, shoe: str, issues: list[Issue], rows: list[dict],
                 progress: Callable[[int], None] | None) -> None:
    images, others, unreadable = _image_files(folder, root, issues)
    for p in others:
        issues.append(Issue("not-an-image-name", str(p.relative_to(root)), "file skipped: its name is not an image type"))
    if not images and not unreadable:   # an unreadable folder is listed as such, not as empty
        issues.append(Issue("no-images", str(folder.relative_to(root)), "shoe has no image files"))
    for p in images:
        rel = str(p.relative_to(root))
        try:
            img = open_image(p, size_hint=64)
            w, h = img.width, img.height
            # draft() decoded a smaller JPEG; record the real size from the header
            if img.format == "JPEG" or p.suffix.lower() in (".jpg", ".jpeg"):
                from PIL import Image
                with Image.open(p) as raw:
                    w, h = raw.size
                    if getattr(raw, "_getexif", None) and (raw.getexif() or {}).get(0x0112) in (5, 6, 7, 8):
                        w, h = h, w
        except ImageError as exc:
            issues.append(Issue("unreadable-image", rel, str(exc).split(": ", 1)[-1]))
            if progress:
                progress(1)
            continue
        rows.append({"path": rel, "sha256": sha256_file(p), "width": w, "height": h, "shoe": shoe})
        if progress:
            progress(1)


def count_images(root: str | os.PathLike) -> int:
    return sum(1 for p in list_files(root).files if is_image_name(p))


def _has_image_file(root: Path) -> bool:
    """Is there one regular image file under root (links not followed)? Stops at the first."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in filenames:
            if is_image_name(name) and (Path(dirpath) / name).is_file() and not (Path(dirpath) / name).is_symlink():
                return True
    return False


def dataset_folder_problem(root: str | os.PathLike) -> str | None:
    """Why a path cannot be a dataset folder (missing, a file, no image files), else None."""
    root = Path(root)
    if root.is_file():
        return f"dataset {root} is a file, not a folder: pass the folder that holds the shoe folders"
    if not root.is_dir():
        return f"dataset folder {root} does not exist"
    if not _has_image_file(root):
        listing = list_files(root)
        if listing.unreadable:   # chmod 000: a permission problem, not an empty folder
            first, more = listing.unreadable[0], len(listing.unreadable) - 1
            why = first.reason.split(": its files")[0].removeprefix("folder ")   # cannot be read (Permission denied)
            return (f"dataset folder {root} has no image files this user can read: {first.path} {why}"
                    + (f" (and {more} more folders)" if more else "") + ": give read access (chmod) or use another folder")
        return (f"dataset folder {root} has no image files (.jpg, .png, .webp...): put labeled photo "
                "folders there (Brand_Top_Color_Sole_Name/photo.jpg)")
    return None


def build_table(root: str | os.PathLike, catalog: str | os.PathLike | None = None,
                progress: Callable[[int], None] | None = None) -> FeatureTable:
    """Raises DatasetError when root is not a folder (an empty folder gives an empty table:
    callers say what an empty dataset means for them, see dataset_folder_problem)."""
    if not Path(root).exists():
        raise PathNotFound(dataset_folder_problem(root))
    if not Path(root).is_dir():
        raise DatasetError(dataset_folder_problem(root))
    root = Path(root).resolve()
    issues: list[Issue] = []
    shoes: list[dict] = []
    image_rows: list[dict] = []
    folders = []
    try:
        entries = sorted(root.iterdir())
    except OSError as exc:   # chmod 000
        raise DatasetError(f"dataset folder {root} cannot be read ({exc.strerror or exc}): give read access "
                           "(chmod) or use another folder") from None
    for p in entries:
        if p.name.startswith("."):
            continue
        if p.is_symlink():   # never followed: `ln -s . loop` would count every photo again
            issues.append(Issue("symlink", p.name, link_reason(p, root)))
        elif p.is_dir():
            folders.append(p)

    if catalog:
        layout = "catalog"
        header, cat_rows = read_csv_rows(catalog)
        missing_cols = {"name", "brand", "color", "hightop", "sole"} - set(header)
        if missing_cols:
            raise DatasetError(f"catalog {catalog}: missing columns {sorted(missing_cols)} "
                               "(need name,brand,color,hightop,sole)")
        by_key: dict[str, Path] = {}
        for f in folders:
            parsed = parse_folder_name(f.name)
            by_key.setdefault(_norm(parsed["name"] if parsed else f.name), f)
        for line, row in cat_rows:
            where = f"{Path(catalog).name} line {line}"
            rec = _read_values(row, where, issues)
            folder = by_key.pop(_norm(rec["name"]), None)
            rec["folder"] = folder.name if folder else ""
            shoes.append(rec)
            if folder is None:
                issues.append(Issue("no-images", where, f"no image folder for '{rec['name']}'"))
        for f in by_key.values():
            issues.append(Issue("not-in-catalog", f.name, "image folder with no catalog row; skipped"))
    else:
        parsed = {f: parse_folder_name(f.name) for f in folders}
        layout = "folders" if any(parsed.values()) else "classes"
        for f in folders:
            if layout == "classes":
                shoes.append({"name": f.name, "brand": "", "hightop": "", "color": "", "sole": "", "folder": f.name})
            elif parsed[f] is None:
                issues.append(Issue("malformed-name", f.name,
                                    "folder name is not Brand_Top_Color_Sole_Name (five parts joined by '_'); skipped"))
            else:
                rec = _read_values(parsed[f], f.name, issues)
                rec["folder"] = f.name
                shoes.append(rec)
        loose = [p for p in root.iterdir() if not p.is_symlink() and p.is_file() and is_image_name(p)]
        for p in loose:
            issues.append(Issue("loose-image", p.name, "image outside any shoe folder; skipped"))

    seen: dict[str, str] = {}
    for rec in shoes:
        key = _norm(rec["name"])
        rec["shoe"] = rec["name"]
        if key in seen:
            rec["shoe"] = f"{rec['name']} ({rec['folder'] or 'no folder'})"
            issues.append(Issue("duplicate-name", rec["folder"] or rec["name"],
                                f"name '{rec['name']}' also used by '{seen[key]}'; kept as '{rec['shoe']}'"))
        else:
            seen[key] = rec["folder"] or rec["name"]
        if rec["folder"]:
            _scan_images(root, root / rec["folder"], rec["shoe"], issues, image_rows, progress)

    shoes_df = pd.DataFrame(shoes, columns=SHOE_COLUMNS + [c for c in (shoes[0] if shoes else {}) if c not in SHOE_COLUMNS])
    images_df = pd.DataFrame(image_rows, columns=IMAGE_COLUMNS)
    written = [written_column(a) for a in ATTRIBUTES]
    shoes_df[written] = shoes_df[written].fillna("")     # a name-only (classes) dataset writes none
    return FeatureTable(root, shoes_df[SHOE_COLUMNS], images_df, issues, layout)


def table_dir_for(data_dir: Path, dataset: str | os.PathLike) -> Path:
    """Where the tables of a dataset folder go: data/tables/<folder name>."""
    return DataLayout(Path(data_dir)).table_dir(dataset)
