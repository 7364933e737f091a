"""Files whose bytes are known: a CRC-32 recorded when written, checked again when they changed.

The vector store and its index are too big to hash on every open (a million photos: 1 GB of
vectors), so each file's checksum is recomputed only when its stamp (size, mtime, ctime, inode)
differs from the one recorded after the last write or check. ctime cannot be set back by
anything short of the clock, so an edit that restores mtime (or a copy) is checked too; a
checksum can be extended as rows are appended (zlib.crc32 continues from a previous value).
"""
from __future__ import annotations

import os
import zlib
from pathlib import Path

CHUNK = 1 << 22


def stamp(path: Path) -> list[int] | None:
    """What changes whenever the file's bytes can have changed; None when it is missing."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def crc32_file(path: Path, length: int | None = None) -> int:
    """CRC-32 of the first `length` bytes (all when None); OSError when it is shorter."""
    crc, left = 0, length
    with open(path, "rb") as fh:
        while left is None or left > 0:
            block = fh.read(CHUNK if left is None else min(CHUNK, left))
            if not block:
                break
            crc = zlib.crc32(block, crc)
            if left is not None:
                left -= len(block)
    if left:
        raise OSError(f"{path} is {left} bytes shorter than recorded")
    return crc


def extend_crc(crc: int, data: bytes | memoryview) -> int:
    return zlib.crc32(data, crc)


def unchanged_or_intact(path: Path, recorded_stamp, recorded_crc: int, length: int | None = None) -> bool:
    """True when the file is as written: the same stamp, else the same checksum of its first
    `length` bytes (an appended tail past them, left by a crash, does not count)."""
    now = stamp(path)
    if now is None:
        return False
    if recorded_stamp is not None and list(recorded_stamp) == now:
        return True
    try:
        return crc32_file(path, length) == recorded_crc
    except OSError:
        return False
