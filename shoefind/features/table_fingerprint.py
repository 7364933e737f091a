"""A fingerprint of everything a feature table is built from, so an unchanged dataset's saved table is
reused instead of decoding every photo again.

It covers every entry under the dataset folder (name, kind; a file's size, mtime, ctime and inode; a
link's target), the catalog CSV's and the vocabulary rules' contents, and TABLE_FORMAT. Rewriting a
photo changes its mtime and ctime, even when `touch -r` or `cp -p` put the old mtime back, so a
changed photo is always read again. Only stat calls: milliseconds for thousands of photos.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

# Bumped whenever build_table reads a folder differently, so saved tables are rebuilt.
TABLE_FORMAT = "table-v2"   # v2: attribute values as written kept beside the read ones


def _tree(root: Path, h) -> None:
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        here = Path(dirpath)
        for name in sorted(dirnames) + sorted(filenames):
            p = here / name
            rel = str(p.relative_to(root))
            try:
                st = p.lstat()
            except OSError as exc:
                h.update(f"{rel}\0unreadable:{exc.errno}\n".encode("utf-8", "surrogateescape"))
                continue
            if os.path.islink(p):
                line = f"{rel}\0link:{os.readlink(p)}:{p.exists()}"
            elif name in dirnames:
                line = f"{rel}\0dir"
            else:
                line = f"{rel}\0{st.st_mode:o}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}"
            h.update(line.encode("utf-8", "surrogateescape") + b"\n")


def _content(path: Path | None, h) -> None:
    if path is None:
        h.update(b"none\n")
        return
    try:
        h.update(str(path.resolve()).encode("utf-8", "surrogateescape") + b"\0" + path.read_bytes() + b"\n")
    except OSError as exc:
        h.update(f"{path}\0unreadable:{exc.errno}\n".encode("utf-8", "surrogateescape"))


def table_fingerprint(root: str | os.PathLike, catalog: str | os.PathLike | None = None) -> str:
    """sha256 over what build_table(root, catalog) reads (see the module docstring)."""
    from shoefind.settings import rules_dir
    root = Path(root).resolve()
    h = hashlib.sha256(f"{TABLE_FORMAT}\0{root}\n".encode("utf-8", "surrogateescape"))
    _content(Path(catalog) if catalog else None, h)
    _content(rules_dir() / "vocabularies.yaml", h)
    _tree(root, h)
    return h.hexdigest()
