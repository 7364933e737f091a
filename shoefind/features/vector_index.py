"""Big catalogs: the embedding cache as one float16 matrix on disk, and an approximate index over it.

`VectorStore` keeps every vector of an embedding cache in `<cache>/vector-store/`:
vectors.f16 (rows x dim, float16) and shas.s64, both memory-mapped, so a million photos cost
1 GB of disk and only the pages a query touches in memory. `sync()` appends the shards the
cache wrote since the last look (a sha already stored is skipped), never rewriting.

`AnnIndex` is a faiss IVF index with 8-bit scalar quantisation (`ivf-sq8.faiss`, beside the
store) over the store's rows: trained once on a sample, then new rows are only added
(`index.ntotal` is how many rows it covers). Why faiss IVF: faiss-cpu is maintained by
Meta with wheels for every CPython/x86_64; IVF trains in seconds and adds vectors at the
cost of one matrix product each, where an HNSW graph (usearch 2.26, measured) took 150 s per
100,000 vectors on 2 shared cores; SQ8 holds a 512-d vector in 512 bytes with per-dimension
ranges (usearch's i8 maps [-1, 1] and loses most of a unit vector's precision). Candidates are re-scored exactly from the float16
store, so the order of what it returns is exact.

`PhotoSearch` is what a catalog asks: the k best photos for a query (optionally among
allowed photos: the filter is applied inside the index, a faiss IDSelectorBitmap), or each
shoe's best photo (shoe ranking), exact below the threshold (SHOEFIND_ANN_THRESHOLD, default 50,000 photos),
approximate above it.
"""
from __future__ import annotations

import json
import logging
import math
import os
import sys
import uuid
from pathlib import Path

import numpy as np

ANN_THRESHOLD = 50_000
STORE_DIR = "vector-store"
INDEX_FILE = "ivf-sq8.faiss"
# An allowed subset this small is searched exactly (cheaper than probing the index for it).
EXACT_SUBSET = 20_000
READ_SUBSET = 4_096
log = logging.getLogger("shoefind.vector_index")


_BLAS_LIMITED = False


def single_threaded_blas() -> None:
    """Run numpy's BLAS on one thread in this process (once).

    A query's products are matrix-vector sized: OpenBLAS's threads only wait for each other,
    and on a machine whose cores are busy a 5,000 x 512 product took 40 ms on 2 threads
    against 0.2 ms on 1. torch (the encoders) keeps its own threads.
    """
    global _BLAS_LIMITED
    if not _BLAS_LIMITED:
        from threadpoolctl import threadpool_limits
        threadpool_limits(1, user_api="blas")
        _BLAS_LIMITED = True


def ann_threshold() -> int:
    """Catalogs with at least this many photos use the approximate index."""
    from shoefind.settings import current
    return current().ann_threshold or ANN_THRESHOLD


def _atomic_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def dot(matrix, query: np.ndarray, chunk: int = 65_536) -> np.ndarray:
    """matrix @ query for a float32 or float16 (memory-mapped) matrix, chunked, in float32."""
    if matrix.dtype == np.float32:
        return matrix @ query
    if len(matrix) <= chunk and "torch" not in sys.modules:   # small: not worth importing torch for
        return np.asarray(matrix, np.float32) @ np.asarray(query, np.float32)
    import torch
    q = torch.from_numpy(np.ascontiguousarray(query, dtype=np.float32))
    out = np.empty((len(matrix),) + q.shape[1:], np.float32)
    for start in range(0, len(matrix), chunk):
        block = torch.from_numpy(np.array(matrix[start:start + chunk]))   # a copy: memmaps are read-only
        out[start:start + chunk] = (block.to(torch.float32) @ q).numpy()  # torch converts f16 with SIMD
    return out


class VectorStore:
    """All vectors of one embedding cache, float16, memory-mapped (see module docstring)."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.state_path = self.folder / "state.json"
        self._load_state()

    @classmethod
    def for_cache(cls, cache_dir: str | os.PathLike, sync: bool = True) -> "VectorStore":
        store = cls(Path(cache_dir) / STORE_DIR)
        if sync:
            store.sync(cache_dir)
        return store

    def _load_state(self) -> None:
        try:
            self.state = json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            self.state = {"rows": 0, "dim": 0, "shards": []}
        self._maps = None

    @property
    def rows(self) -> int:
        return int(self.state["rows"])

    @property
    def dim(self) -> int:
        return int(self.state["dim"])

    def _open(self):
        if self._maps is None:
            if not self.rows:
                self._maps = (np.zeros((0, self.dim), np.float16), np.zeros(0, "S64"), np.zeros(0, np.int64))
            else:
                vectors = np.memmap(self.folder / "vectors.f16", np.float16, "r", shape=(self.rows, self.dim))
                shas = np.memmap(self.folder / "shas.s64", "S64", "r", shape=(self.rows,))
                order = np.load(self.folder / "order.npy", mmap_mode="r")
                self._maps = (vectors, shas, order)
        return self._maps

    @property
    def vectors(self) -> np.ndarray:
        return self._open()[0]

    @property
    def shas(self) -> np.ndarray:
        return self._open()[1]

    def read_rows(self, rows: np.ndarray) -> np.ndarray:
        """The vectors of some rows (float16), read with pread rather than through the memory map.

        A page fault on a file mapping maps its neighbours too (the kernel's fault-around,
        64 KB), so re-scoring a few thousand scattered rows through the map would make most
        of the file resident in this process; reads go through the page cache and leave it out.
        """
        rows = np.asarray(rows, np.int64)
        order = np.argsort(rows, kind="stable")      # in file order: the disk and page cache like it
        out = np.empty((len(rows), self.dim), np.float16)
        if not len(rows):
            return out
        row_bytes = self.dim * 2
        view = memoryview(out).cast("B")
        fd = os.open(self.folder / "vectors.f16", os.O_RDONLY)
        try:
            for i, row in zip(order.tolist(), rows[order].tolist()):
                if os.preadv(fd, [view[i * row_bytes:(i + 1) * row_bytes]], row * row_bytes) != row_bytes:
                    raise OSError(f"{self.folder / 'vectors.f16'} is shorter than its {self.rows} rows")
        finally:
            os.close(fd)
        return out

    def row_of(self, sha: str) -> int:
        """The store row of one sha (-1 if not stored): a binary search over the mapped sorted order."""
        _, stored, order = self._open()
        wanted, lo, hi = sha.encode() if isinstance(sha, str) else bytes(sha), 0, len(order)
        while lo < hi:
            mid = (lo + hi) // 2
            if stored[order[mid]] < wanted:
                lo = mid + 1
            else:
                hi = mid
        return int(order[lo]) if lo < len(order) and stored[order[lo]] == wanted else -1

    def rows_of(self, shas) -> np.ndarray:
        """The store row of each sha (-1 where it is not stored)."""
        wanted = np.asarray(list(shas), dtype="S64")
        _, stored, order = self._open()
        if not len(stored) or not len(wanted):
            return np.full(len(wanted), -1, np.int64)
        sorted_shas = stored[order]
        pos = np.clip(np.searchsorted(sorted_shas, wanted), 0, len(order) - 1)
        return np.where(sorted_shas[pos] == wanted, order[pos], -1).astype(np.int64)

    def append(self, shas, vectors: np.ndarray, shard_names=()) -> int:
        """Add vectors whose sha is not stored yet; returns how many were added."""
        vectors = np.asarray(vectors)
        shas = np.asarray(list(shas), dtype="S64")
        if len(shas):
            if not self.dim:
                self.state["dim"] = int(vectors.shape[1])
            keep = self.rows_of(shas) < 0
            _, first = np.unique(shas, return_index=True)      # and once each within this batch
            keep &= np.isin(np.arange(len(shas)), first)
            shas, vectors = shas[keep], vectors[keep]
        if len(shas):
            rows = self.rows
            for name, data in (("vectors.f16", vectors.astype(np.float16)), ("shas.s64", shas)):
                path = self.folder / name
                with open(path, "r+b" if path.exists() else "wb") as fh:
                    fh.seek(rows * data[0].nbytes)   # past the last committed row (a crash's tail is overwritten)
                    fh.write(np.ascontiguousarray(data).tobytes())
                    fh.truncate()
            all_shas = np.memmap(self.folder / "shas.s64", "S64", "r", shape=(rows + len(shas),))
            np.save(self.folder / ".order.npy", np.argsort(all_shas, kind="stable"))
            os.replace(self.folder / ".order.npy", self.folder / "order.npy")
            self.state["rows"] = rows + len(shas)
        self.state["shards"] = sorted(set(self.state["shards"]) | set(shard_names))
        _atomic_json(self.state_path, self.state)
        self._maps = None
        return len(shas)

    def sync(self, cache_dir: str | os.PathLike) -> int:
        """Append the cache's shards not read yet; returns how many vectors were added."""
        seen = set(self.state["shards"])
        new = [p for p in sorted(Path(cache_dir).glob("shard-*.npz")) if p.name not in seen]
        added, batch_shas, batch_vecs, names = 0, [], [], []
        for shard in new:
            try:
                with np.load(shard, allow_pickle=False) as z:
                    batch_shas.append(z["sha256"].astype("S64"))
                    batch_vecs.append(z["vectors"])
            except (OSError, ValueError, KeyError):
                continue  # damaged or half-healed: read next time
            names.append(shard.name)
            if sum(len(s) for s in batch_shas) >= 100_000:
                added += self.append(np.concatenate(batch_shas), np.concatenate(batch_vecs), names)
                batch_shas, batch_vecs, names = [], [], []
        if names:
            added += self.append(np.concatenate(batch_shas), np.concatenate(batch_vecs), names)
        return added


class AnnIndex:
    """faiss IVF-SQ8 over a store's rows, persisted beside it and grown by adding rows."""

    def __init__(self, store: VectorStore, nprobe: int | None = None):
        self.store = store
        self.path = store.folder / INDEX_FILE
        self.index = None
        self.nprobe = nprobe

    @staticmethod
    def lists_for(n: int) -> int:
        """IVF lists: ~sqrt(n), a power of two in [64, 1024] (training stays cheap on 2 cores)."""
        return int(min(1024, max(64, 2 ** round(math.log2(max(1, math.sqrt(n)))))))

    def _train(self):
        import faiss
        n, dim = self.store.rows, self.store.dim
        nlist = max(1, min(self.lists_for(n), n // 8))   # a small test store gets few lists
        rng = np.random.default_rng(0)
        sample_rows = np.sort(rng.choice(n, min(n, nlist * 40), replace=False))
        sample = self.store.vectors[sample_rows].astype(np.float32)
        index = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(dim), dim, nlist, faiss.ScalarQuantizer.QT_8bit,
                                              faiss.METRIC_INNER_PRODUCT)
        index.train(sample)
        return index

    def ensure(self, progress=None) -> "AnnIndex":
        """Load the index, add the store's rows it lacks (training it first if none), save.

        It is then served memory-mapped from its file, so a process holds only the lists its
        queries read (faiss cannot add to a mapped index: adding reads it into memory first).
        """
        import faiss
        if self.index is None and self.path.is_file():
            self.index = faiss.read_index(str(self.path), faiss.IO_FLAG_MMAP)
        if self.index is not None and self.index.d != self.store.dim:
            self.index = None  # another dimension: not this store's index
        start = int(self.index.ntotal) if self.index is not None else 0
        if self.index is None or start < self.store.rows:
            if self.index is not None:
                self.index = faiss.read_index(str(self.path))   # writable
            else:
                log.info("training an approximate index over %d vectors", self.store.rows)
                self.index = self._train()
            for lo in range(start, self.store.rows, 50_000):
                hi = min(self.store.rows, lo + 50_000)
                self.index.add_with_ids(self.store.vectors[lo:hi].astype(np.float32), np.arange(lo, hi))
                if progress:
                    progress(hi - lo)
            tmp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex[:8]}.tmp")
            faiss.write_index(self.index, str(tmp))
            os.replace(tmp, self.path)
            self.index = faiss.read_index(str(self.path), faiss.IO_FLAG_MMAP)
        self.index.nprobe = self.nprobe or max(16, self.index.nlist // 16)
        return self

    def search(self, query: np.ndarray, k: int, allowed_rows: np.ndarray | None = None,
               share: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """(approximate scores, store rows) of about the k best vectors for one query (-1 padding).

        `allowed_rows` (a bit per store row, np.packbits little-endian) restricts the search
        inside the index (a faiss IDSelectorBitmap): the lists are scanned as usual but only
        allowed rows are scored. `share` (allowed rows / all rows) widens the probe, so about
        as many allowed vectors are seen as an unfiltered search sees vectors.
        """
        import faiss
        q = np.ascontiguousarray(query[None], dtype=np.float32)
        if allowed_rows is None:
            scores, rows = self.index.search(q, int(k))
            return scores[0], rows[0]
        selector = faiss.IDSelectorBitmap(self.store.rows, faiss.swig_ptr(allowed_rows))
        nprobe = int(min(self.index.nlist, math.ceil(self.index.nprobe / max(share, 1e-6))))
        while True:
            params = faiss.SearchParametersIVF(sel=selector, nprobe=nprobe)
            scores, rows = self.index.search(q, int(k), params=params)
            found = int((rows[0] >= 0).sum())
            # too few allowed vectors in the probed lists: probe more (all lists = every allowed row)
            if found >= k or nprobe >= self.index.nlist:
                return scores[0], rows[0]
            nprobe = min(self.index.nlist, nprobe * 4)


class PhotoSearch:
    """The k best catalog photos for a query: exact, or the ANN's candidates re-scored exactly."""

    def __init__(self, embeddings: np.ndarray, store_rows: np.ndarray | None = None, ann: AnnIndex | None = None,
                 exact_subset: int = EXACT_SUBSET):
        self.embeddings = embeddings          # (photos, dim) in catalog order, float32 or float16
        self.ann = ann
        # allowed photos up to this many: searched exactly (with an index, only as many as one
        # query re-scores anyway; the index's own filter is cheaper than reading more)
        self.exact_subset = exact_subset if ann is None else min(exact_subset, READ_SUBSET)
        if ann is not None:
            self.store_rows = np.asarray(store_rows, np.int64)
            self.photo_of_row = np.full(ann.store.rows, -1, np.int64)
            self.photo_of_row[store_rows] = np.arange(len(store_rows))
            # a catalog of part of the store (the cache holds other folders' photos too): search only its rows
            self.catalog_rows = None
            if len(self.store_rows) < ann.store.rows:
                bits = np.zeros(ann.store.rows, bool)
                bits[self.store_rows] = True
                self.catalog_rows = np.packbits(bits, bitorder="little")

    @property
    def approximate(self) -> bool:
        return self.ann is not None

    def scores(self, query: np.ndarray) -> np.ndarray:
        """Exact scores of every photo."""
        return dot(self.embeddings, query)

    def _exact_top(self, query, k, rows=None):
        if rows is None:
            scores = self.scores(query)
            rows = np.arange(len(scores))
        elif self.ann is not None:   # a few photos of the memory-mapped store: read, not mapped
            scores = self.ann.store.read_rows(self.store_rows[rows]).astype(np.float32) @ query
        else:
            scores = dot(self.embeddings[rows], query) if len(rows) else np.zeros(0, np.float32)
        k = min(k, len(rows))
        if not k:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        part = np.argpartition(-scores, k - 1)[:k]
        part = part[np.argsort(-scores[part], kind="stable")]
        return rows[part], scores[part]

    def top(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(photo indices, exact scores) of the k best photos, best first; `allowed` masks photos.

        Through the index, a filter is applied inside it (only allowed photos are scored), so
        a filtered query costs about what an unfiltered one does; up to `exact_subset`
        allowed photos are searched exactly instead.
        """
        query = np.asarray(query, np.float32)
        n_allowed = len(self.embeddings) if allowed is None else int(allowed.sum())
        if self.ann is None or n_allowed <= self.exact_subset:
            return self._exact_top(query, k, None if allowed is None else np.flatnonzero(allowed))
        # candidates to re-score exactly: 4x for a short list (recall at its end), a quarter
        # more for a long one
        fetch = int(min(self.ann.store.rows, max(64, 4 * min(k, 256), k + k // 4)))
        photos, _ = self.candidates(query, fetch, allowed, n_allowed)
        return self._exact_top(query, k, np.sort(photos))

    def candidates(self, query: np.ndarray, fetch: int, allowed: np.ndarray | None = None,
                   n_allowed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(photo indices, approximate scores) of about the `fetch` best photos, from the index."""
        if allowed is None:
            scores, rows = self.ann.search(query, fetch, self.catalog_rows,
                                           share=len(self.store_rows) / self.ann.store.rows)
        else:
            n_allowed = int(allowed.sum()) if n_allowed is None else n_allowed
            allowed_rows = np.zeros(self.ann.store.rows, bool)
            allowed_rows[self.store_rows[allowed]] = True
            scores, rows = self.ann.search(query, fetch, np.packbits(allowed_rows, bitorder="little"),
                                           share=n_allowed / self.ann.store.rows)
        keep = rows >= 0
        photos, scores = self.photo_of_row[rows[keep]], scores[keep]
        keep = photos >= 0
        photos, scores = photos[keep], scores[keep]
        if allowed is not None:
            keep = allowed[photos]
            photos, scores = photos[keep], scores[keep]
        return photos, scores

    def best_per_group(self, query: np.ndarray, group_of_photo: np.ndarray, fetch: int,
                       allowed: np.ndarray | None = None, per_group: int = 2) -> tuple[np.ndarray, np.ndarray]:
        """(photo indices, exact scores) of the best photo of each group (shoe) among the index's
        `fetch` best, best first.

        Only each group's `per_group` best candidates by the index's 8-bit scores are re-scored
        exactly (their error, ~1e-3, rarely reorders a shoe's best photos), not all `fetch`.
        """
        query = np.asarray(query, np.float32)
        n_allowed = len(self.embeddings) if allowed is None else int(allowed.sum())
        if self.ann is None or n_allowed <= self.exact_subset:
            photos, scores = self._exact_top(query, fetch, None if allowed is None else np.flatnonzero(allowed))
        else:
            photos, approx = self.candidates(query, fetch, allowed, n_allowed)
            order = np.lexsort((-approx, group_of_photo[photos]))       # by group, best first within
            groups = group_of_photo[photos[order]]
            rank = np.arange(len(order)) - np.searchsorted(groups, groups, side="left")
            photos = photos[order[rank < per_group]]
            photos, scores = self._exact_top(query, len(photos), np.sort(photos))
        groups = group_of_photo[photos]
        _, first = np.unique(groups, return_index=True)     # photos come best first
        first = np.sort(first)
        return photos[first], scores[first]


def recall_at_k(search: PhotoSearch, queries: np.ndarray, k: int = 10) -> float:
    """Mean share of the exact top-k photos that `search.top` returns (1.0 = exact)."""
    hits = []
    for q in queries:
        exact = set(PhotoSearch(search.embeddings)._exact_top(np.asarray(q, np.float32), k)[0].tolist())
        hits.append(len(exact & set(search.top(q, k)[0].tolist())) / k)
    return float(np.mean(hits))
