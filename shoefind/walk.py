"""Listing the files under a folder without ever following a symbolic link.

A link in a photo folder may point anywhere (a private file, the folder itself, nowhere),
so links are never followed, and every one is reported with what it points at, so that
nothing is skipped silently. Special files (FIFOs, sockets, devices) are reported too:
opening a FIFO to read it would wait forever. So are folders that cannot be read (chmod 000):
their photos are not seen, which is a permission problem, not an empty folder.
"""
from __future__ import annotations

import os
import stat
import unicodedata
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Skipped:
    path: Path
    reason: str


UNREADABLE_FOLDER = "folder cannot be read"


@dataclass
class Listing:
    files: list[Path]         # regular files, sorted
    skipped: list[Skipped]    # links, special files and unreadable folders, each with the reason

    @property
    def unreadable(self) -> list[Skipped]:
        """Folders whose contents could not be listed (permissions): their files are missing here."""
        return [s for s in self.skipped if s.reason.startswith(UNREADABLE_FOLDER)]


def nfc(name: str) -> str:
    """One spelling of a name: macOS writes NFD (e + combining accent), most tools NFC."""
    return unicodedata.normalize("NFC", name)


def link_reason(link: Path, root: Path) -> str:
    """Why a symbolic link is not followed, saying where it points."""
    try:
        target = os.readlink(link)
    except OSError:
        target = "?"
    try:
        resolved = link.resolve(strict=True)
    except (RuntimeError, OSError) as exc:   # ELOOP is an OSError, older Pythons raise RuntimeError
        loop = isinstance(exc, RuntimeError) or getattr(exc, "errno", None) == 40
        if loop:
            return f"symbolic link loop (-> {target}): not followed"
        return f"dangling symbolic link (-> {target}, which does not exist): skipped"
    root = root.resolve()
    if resolved == root or resolved in link.parent.resolve().parents or resolved == link.parent.resolve():
        return f"symbolic link loop (-> {target}, a folder that contains the link): not followed"
    if resolved != root and root not in resolved.parents:
        return f"symbolic link to {resolved}, outside {root}: not followed"
    return f"symbolic link (-> {target}) inside the folder: not followed (the target is read where it is)"


def list_files(root: str | os.PathLike, skip_hidden_folders: bool = False) -> Listing:
    """Regular files under root (root itself may be a link, nothing below it is followed)."""
    root = Path(root)
    files: list[Path] = []
    skipped: list[Skipped] = []

    def unreadable(exc: OSError) -> None:   # os.walk would skip the folder without a word
        skipped.append(Skipped(Path(exc.filename or root), f"{UNREADABLE_FOLDER} ({exc.strerror or exc}): "
                                                           "its files are not seen"))
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False, onerror=unreadable):
        here = Path(dirpath)
        keep = []
        for name in sorted(dirnames):
            p = here / name
            if p.is_symlink():
                skipped.append(Skipped(p, link_reason(p, root)))
            elif not (skip_hidden_folders and name.startswith(".")):
                keep.append(name)
        dirnames[:] = keep   # os.walk descends only into these
        for name in sorted(filenames):
            p = here / name
            try:
                mode = p.lstat().st_mode
            except OSError as exc:
                skipped.append(Skipped(p, f"cannot be read ({exc.strerror})"))
                continue
            if stat.S_ISLNK(mode):
                skipped.append(Skipped(p, link_reason(p, root)))
            elif not stat.S_ISREG(mode):
                skipped.append(Skipped(p, "not a regular file (FIFO, socket or device): skipped"))
            else:
                files.append(p)
    return Listing(sorted(files), sorted(skipped, key=lambda s: s.path))


def open_no_follow(path: str | os.PathLike) -> int:
    """A read-only fd of path, refusing a symbolic link (swapped in after a listing) or a FIFO."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(f"{path} is not a regular file")
    return fd
