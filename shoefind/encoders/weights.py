"""A weights file's ids, read without loading it: a cheap content id and its full sha256 (memoised)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path


def weights_id(path: Path) -> str:
    """A short content id for a weights file (size + hash of head and tail: cheap for GB files)."""
    h = hashlib.sha256()
    size = path.stat().st_size
    h.update(str(size).encode())
    with open(path, "rb") as fh:
        h.update(fh.read(1 << 20))
        if size > 1 << 20:
            fh.seek(max(0, size - (1 << 20)))
            h.update(fh.read())
    return h.hexdigest()[:16]


def _sha256_memo(path: Path) -> tuple[Path, dict]:
    stat = path.stat()
    return path.with_name(f".{path.name}.sha256.json"), {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                                                         "inode": stat.st_ino}


def known_sha256(path: Path) -> str | None:
    """The sha256 remembered for this very version of the file (size, mtime, inode), else None."""
    memo, stamp = _sha256_memo(path)
    try:
        saved = json.loads(memo.read_text())
    except (OSError, ValueError):
        return None
    return saved.get("sha256") if isinstance(saved, dict) and saved.get("stamp") == stamp else None


def remembered_sha256(path: Path) -> str:
    """A weights file's full sha256, hashed once per version of the file (the answer is kept beside it,
    when that folder is writable): loading a 350 MB checkpoint then costs no second of hashing."""
    if found := known_sha256(path):
        return found
    memo, stamp = _sha256_memo(path)
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    digest = h.hexdigest()
    try:
        memo.write_text(json.dumps({"stamp": stamp, "sha256": digest}))
    except OSError:   # a read-only folder: hashed again next time
        pass
    return digest
