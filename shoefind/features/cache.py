"""The embedding cache: image content hash -> embedding, per model and preprocessing.

Storage is append-only shards (`<key>/shard-*.npz`), each written to a temporary name and
renamed into place, so a run killed mid-way loses nothing already written, a half-written
shard is never read, and several processes can add shards at once without locks.

A shard that cannot be read whole (truncated, bad CRC, wrong arrays, a foreign dimension,
non-finite values: anything numpy or zipfile raises) is moved to `<key>/damaged/` with a
warning naming it; its images are simply missing, so the next embed encodes them again.

Several processes embedding into one cache claim the images they are about to encode
(`claim`/`release`: one locked file per image under `<key>/claims/`), so no image is
encoded twice; a claim dies with its process (the OS drops the lock), so nobody waits forever.
"""
from __future__ import annotations

import fcntl
import logging
import os
import re
import threading
import time
import uuid
from pathlib import Path
from typing import Iterable

import numpy as np

from shoefind.settings import DataLayout, folder_name


log = logging.getLogger("shoefind.cache")
# The model's embedding dimension, beside the shards (see EmbeddingCache.without_model).
DIM_FILE = "dim.txt"

# A photo's sha256, optionally with a suffix naming a variant of it (augmented views: "<sha>#v3s0").
KEY_PATTERN = re.compile(r"[0-9a-f]{64}(#[A-Za-z0-9]+)?")


class DamagedShard(Exception):
    """A shard that cannot be used; str() says why."""


def read_shard(path: Path) -> tuple[list[str], np.ndarray]:
    """(sha256s, float32 vectors) of one shard, or DamagedShard for anything unreadable."""
    try:
        with np.load(path, allow_pickle=False) as z:
            shas = [str(s) for s in z["sha256"]]
            vectors = np.asarray(z["vectors"])
    except Exception as exc:  # BadZipFile, zlib.error, EOFError, KeyError, ValueError...: all mean "damaged"
        raise DamagedShard(f"{type(exc).__name__}: {exc}") from None
    if vectors.ndim != 2 or len(shas) != vectors.shape[0] or not vectors.shape[1]:
        raise DamagedShard(f"{len(shas)} hashes but vectors of shape {vectors.shape}")
    if not np.issubdtype(vectors.dtype, np.floating) or not np.isfinite(vectors).all():
        raise DamagedShard(f"vectors are not finite floats ({vectors.dtype})")
    if any(not KEY_PATTERN.fullmatch(s) for s in shas):
        raise DamagedShard("a hash is not a sha256")
    return shas, vectors.astype(np.float32, copy=False)


def _lock(path: Path) -> int | None:
    """An fd holding an exclusive lock on `path`, or None if another process holds it."""
    for _ in range(3):
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # we locked a claim file its owner just removed: look again
    return None


class EmbeddingCache:
    def __init__(self, root: str | os.PathLike, key: str, dim: int | None = None):
        self.key = key
        self.dir = Path(root) / folder_name(key)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dim = dim  # None: learnt from the shards (the dimension most vectors have)
        self._index: dict[str, np.ndarray] = {}
        self._seen_shards: set[str] = set()
        self._claims: dict[str, int] = {}  # sha -> fd of the locked claim file
        self._claims_lock = threading.Lock()  # several threads may share one cache object
        self.damaged: list[Path] = []  # shards moved aside by this object
        self.refresh()

    @classmethod
    def for_encoder(cls, data_dir: str | os.PathLike, encoder) -> "EmbeddingCache":
        """The cache of an encoder's embeddings in a data folder: DATA_DIR/embeddings/<cache key>. What a
        foreign ONNX graph may have cached there is dropped first (shoefind.features.invalidate)."""
        root = DataLayout(Path(data_dir)).embeddings
        since = (getattr(encoder, "suspect_embeddings", None) or {}).get(encoder.cache_key)
        if since:
            from shoefind.features.invalidate import drop_embeddings_made_before
            drop_embeddings_made_before(root / folder_name(encoder.cache_key), since)
        dim = getattr(encoder, "embed_dim", None)
        cache = cls(root, encoder.cache_key, dim if isinstance(dim, int) else None)
        cache._record_dim()
        return cache

    @classmethod
    def without_model(cls, data_dir: str | os.PathLike, key: str) -> "EmbeddingCache | None":
        """The cache of this key opened without its model (shoefind.encoders.cache_key), or None when no
        model ever recorded its dimension there (then the shards alone cannot say which vectors are foreign)."""
        try:
            dim = int((DataLayout(Path(data_dir)).embeddings / folder_name(key) / DIM_FILE).read_text())
        except (OSError, ValueError):
            return None
        return cls(DataLayout(Path(data_dir)).embeddings, key, dim)

    def _record_dim(self) -> None:
        """The model's embedding dimension, written beside the shards for `without_model`."""
        path = self.dir / DIM_FILE
        if self.dim is None:
            return
        try:
            if path.read_text() == str(self.dim):
                return
        except (OSError, ValueError):
            pass
        tmp = self.dir / f".{DIM_FILE}.{uuid.uuid4().hex[:8]}.tmp"
        try:
            tmp.write_text(str(self.dim))
            os.replace(tmp, path)
        except OSError:   # a read-only cache: opened with the model every time
            tmp.unlink(missing_ok=True)

    def shards(self) -> list[Path]:
        return sorted(self.dir.glob("shard-*.npz"))

    def refresh(self) -> None:
        """Read shards written since the last look (by this or another process); damaged
        or foreign ones are moved aside (see the module docstring)."""
        fresh: list[tuple[Path, list[str], np.ndarray]] = []
        for shard in self.shards():
            if shard.name in self._seen_shards:
                continue
            try:
                shas, vectors = read_shard(shard)
            except DamagedShard as exc:
                self._move_aside(shard, str(exc))
                continue
            fresh.append((shard, shas, vectors))
        if self.dim is None and self._index:
            self.dim = len(next(iter(self._index.values())))
        if self.dim is None and fresh:
            rows: dict[int, int] = {}
            for _, shas, vectors in fresh:
                rows[vectors.shape[1]] = rows.get(vectors.shape[1], 0) + len(shas)
            self.dim = max(rows, key=rows.get)
        for shard, shas, vectors in fresh:
            if vectors.shape[1] != self.dim:
                self._move_aside(shard, f"vectors of dimension {vectors.shape[1]}, this cache holds {self.dim}")
                continue
            for sha, vec in zip(shas, vectors):
                self._index.setdefault(sha, vec)
            self._seen_shards.add(shard.name)

    def _move_aside(self, shard: Path, why: str) -> None:
        target = self.dir / "damaged" / shard.name
        target.parent.mkdir(exist_ok=True)
        try:
            os.replace(shard, target)
        except FileNotFoundError:
            return  # another process moved it first
        self.damaged.append(target)
        log.warning("damaged embedding-cache shard %s (%s) moved to %s; its images will be encoded again",
                    shard, why, target)

    def __contains__(self, sha: str) -> bool:
        return sha in self._index

    def __len__(self) -> int:
        return len(self._index)

    def missing(self, shas: Iterable[str]) -> list[str]:
        return [s for s in dict.fromkeys(shas) if s not in self._index]

    def get(self, sha: str) -> np.ndarray | None:
        return self._index.get(sha)

    def matrix(self, shas: list[str]) -> np.ndarray:
        """Embeddings in the order of shas (KeyError names the first one not cached)."""
        if not shas:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([self._index[s] for s in shas]).astype(np.float32)

    def add(self, shas: list[str], vectors: np.ndarray) -> Path | None:
        """Write one new shard atomically; returns its path (None if nothing new)."""
        new = [(s, v) for s, v in zip(shas, vectors) if s not in self._index]
        if not new:
            return None
        if self.dim is None:
            self.dim = len(new[0][1])
        name = f"shard-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.npz"
        tmp = self.dir / f".{name}.tmp"
        with open(tmp, "wb") as fh:
            np.savez(fh, sha256=np.array([s for s, _ in new]), vectors=np.stack([v for _, v in new]).astype(np.float32))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.dir / name)
        self._seen_shards.add(name)
        for s, v in new:
            self._index[s] = v
        return self.dir / name

    def compact(self) -> int:
        """Merge all shards into one (crash-safe: the merged shard lands before old ones go)."""
        self.refresh()
        old = self.shards()
        if len(old) <= 1:
            return len(old)
        shas = list(self._index)
        name = f"shard-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.npz"
        tmp = self.dir / f".{name}.tmp"
        with open(tmp, "wb") as fh:
            np.savez(fh, sha256=np.array(shas), vectors=self.matrix(shas))
        os.replace(tmp, self.dir / name)
        self._seen_shards.add(name)
        for shard in old:
            shard.unlink(missing_ok=True)
        return 1

    # --- claims: who is encoding which image right now ---------------------------------
    def claim(self, shas: Iterable[str]) -> tuple[list[str], list[str]]:
        """(claimed, busy): claim each sha this process may encode; `busy` are being encoded
        by another live process. Claimed shas found cached meanwhile are released at once
        and left out of both lists."""
        claims = self.dir / "claims"
        claims.mkdir(exist_ok=True)
        claimed, busy = [], []
        with self._claims_lock:
            for sha in dict.fromkeys(shas):
                if sha in self._claims:
                    claimed.append(sha)
                    continue
                fd = _lock(claims / sha)
                if fd is None:
                    busy.append(sha)
                    continue
                self._claims[sha] = fd
                claimed.append(sha)
        if claimed:
            self.refresh()  # a claim freed by a finished writer: its shard is there now
            done = [s for s in claimed if s in self._index]
            self.release(done)
            claimed = [s for s in claimed if s not in self._index]
        return claimed, busy

    def release(self, shas: Iterable[str]) -> None:
        """Give up claims (after the shard holding them landed, or on failure)."""
        for sha in shas:
            with self._claims_lock:
                fd = self._claims.pop(sha, None)
            if fd is None:
                continue
            try:
                (self.dir / "claims" / sha).unlink(missing_ok=True)
            finally:
                os.close(fd)

    def release_all(self) -> None:
        self.release(list(self._claims))
