"""The embedding cache: image content hash -> embedding, per model and preprocessing.

Storage is append-only shards (`<key>/shard-*.npz`), each written to a temporary name and
renamed into place, so a run killed mid-way loses nothing already written, a half-written
shard is never read, and several processes can add shards at once without locks.
"""
from __future__ import annotations

import os
import re
import time
import uuid
from pathlib import Path
from typing import Iterable

import numpy as np


def _safe(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", key)


class EmbeddingCache:
    def __init__(self, root: str | os.PathLike, key: str):
        self.key = key
        self.dir = Path(root) / _safe(key)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._index: dict[str, np.ndarray] = {}
        self._seen_shards: set[str] = set()
        self.refresh()

    @classmethod
    def for_encoder(cls, data_dir: str | os.PathLike, encoder) -> "EmbeddingCache":
        """The cache of an encoder's embeddings in a data folder: DATA_DIR/embeddings/<cache key>."""
        return cls(Path(data_dir) / "embeddings", encoder.cache_key)

    def shards(self) -> list[Path]:
        return sorted(self.dir.glob("shard-*.npz"))

    def refresh(self) -> None:
        """Read shards written since the last look (by this or another process)."""
        for shard in self.shards():
            if shard.name in self._seen_shards:
                continue
            try:
                with np.load(shard, allow_pickle=False) as z:
                    for sha, vec in zip(z["sha256"], z["vectors"]):
                        self._index.setdefault(str(sha), vec)
            except (OSError, ValueError, KeyError):
                continue  # a foreign or damaged file: skip it, its images get re-encoded
            self._seen_shards.add(shard.name)

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
