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

Both verify themselves before they are trusted: state.json keeps each store file's CRC-32
(extended as rows are appended) and ivf-sq8.json the index's, with the store it was built over
and the rows it covers (shoefind.features.checked_files: a checksum is recomputed only when a
file's stamp changed). A store or index that fails, or that faiss cannot read, is rebuilt from
the cache's shards (the index from the store) with one warning line, as damaged shards are.

`PhotoSearch` is what a catalog asks: the k best photos for a query (optionally among
allowed photos: the filter is applied inside the index, a faiss IDSelectorBitmap), or each
shoe's best photo (shoe ranking), exact below the threshold (SHOEFIND_ANN_THRESHOLD, default 50,000 photos),
approximate above it.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import math
import os
import re
import sys
import uuid
from pathlib import Path

import numpy as np

from shoefind.features.checked_files import crc32_file, extend_crc, stamp, unchanged_or_intact

ANN_THRESHOLD = 50_000
STORE_DIR = "vector-store"
STORE_FORMAT = 2                 # state.json with checksums; older stores are rebuilt
VECTORS, SHAS = "vectors.f16", "shas.s64"
ROW_FILES = (VECTORS, SHAS)
SHA_BYTES = 64
INDEX_FILE = "ivf-sq8.faiss"
INDEX_META = "ivf-sq8.json"
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


class StoreMismatch(Exception):
    """The store's files are intact but do not agree with each other; str() says how."""


class VectorStore:
    """All vectors of one embedding cache, float16, memory-mapped (see module docstring).

    Every file is verified when the store is opened (`_damage`): its size against the row
    count, its CRC-32 (kept in state.json, extended as rows are appended) whenever its stamp
    changed since the last write or check, the sorted order's range. A store that fails is
    emptied with one warning and `for_cache` fills it again from the cache's shards.
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.state_path = self.folder / "state.json"
        self.rebuilt: str | None = None     # why this store was found damaged and emptied, if it was
        self._load_state()

    @classmethod
    def for_cache(cls, cache_dir: str | os.PathLike, sync: bool = True) -> "VectorStore":
        folder = Path(cache_dir) / STORE_DIR
        folder.mkdir(parents=True, exist_ok=True)
        with store_lock(folder):   # one process checks, repairs or appends at a time
            store = cls(folder)
            if sync:
                try:
                    store.sync(cache_dir)
                except StoreMismatch as exc:
                    store._reset(str(exc))
                    store.sync(cache_dir)
        return store

    @staticmethod
    def _empty_state() -> dict:
        return {"format": STORE_FORMAT, "id": uuid.uuid4().hex, "rows": 0, "dim": 0, "shards": [], "order": None,
                "crc": {name: 0 for name in (*ROW_FILES, "order")}, "stamps": {}}

    def _load_state(self) -> None:
        self._maps = None
        try:
            self.state = json.loads(self.state_path.read_text())
        except FileNotFoundError:
            self.state = self._empty_state()
            if any(self.folder.glob("*.f16")) or any(self.folder.glob("*.s64")):
                self._reset("its state.json is missing")
            return
        except (OSError, ValueError) as exc:
            self.state = self._empty_state()
            self._reset(f"its state.json cannot be read: {exc}")
            return
        if not isinstance(self.state, dict) or self.state.get("format") != STORE_FORMAT:
            self.state = self._empty_state()
            self._reset("it was written by an older version, without checksums", warn=False)
            return
        why = self._damage()
        if why:
            self.state = self._empty_state()
            self._reset(why)

    def _damage(self) -> str | None:
        """Why the store's files are not what its state says (None when they are)."""
        try:
            rows, dim, crc = int(self.state["rows"]), int(self.state["dim"]), dict(self.state["crc"])
            stamps, order_name = dict(self.state.get("stamps") or {}), self.state["order"]
            [int(crc[name]) for name in (*ROW_FILES, "order")]
            self.state["shards"] = [str(s) for s in self.state["shards"]]
            str(self.state["id"])
        except (KeyError, TypeError, ValueError) as exc:
            return f"its state.json is malformed ({type(exc).__name__}: {exc})"
        if rows < 0 or dim < 0 or (rows and not dim):
            return f"its state.json says {rows} rows of dimension {dim}"
        if not rows:
            return None
        for name, width in ((VECTORS, dim * 2), (SHAS, SHA_BYTES)):
            path = self.folder / name
            size = path.stat().st_size if path.is_file() else None
            if size is None:
                return f"{name} is missing"
            if size < rows * width:
                return f"{name} holds {size // width} of its {rows} rows"
            if not unchanged_or_intact(path, stamps.get(name), int(crc[name]), rows * width):
                return f"{name} does not match its checksum"
        if not isinstance(order_name, str) or not re.fullmatch(r"order-\d+\.npy", order_name):
            return "its state.json names no sorted order"
        order_path = self.folder / order_name
        if not unchanged_or_intact(order_path, stamps.get("order"), int(crc["order"])):
            return f"{order_name} is missing or does not match its checksum"
        try:
            order = np.load(order_path, mmap_mode="r", allow_pickle=False)
            if order.shape != (rows,) or order.dtype != np.int64 or order.min() < 0 or order.max() >= rows:
                return f"{order_name} is not an order of {rows} rows"
        except (OSError, ValueError) as exc:
            return f"{order_name} cannot be read ({exc})"
        fresh = {name: stamp(self.folder / name) for name in ROW_FILES} | {"order": stamp(order_path)}
        if fresh != stamps:   # checked by checksum: the next open need not hash them again
            self.state["stamps"] = fresh
            with contextlib.suppress(OSError):
                _atomic_json(self.state_path, self.state)
        return None

    def _reset(self, why: str, warn: bool = True) -> None:
        """Forget every row: files removed (the index with them), state emptied."""
        (log.warning if warn else log.info)("%s vector store %s (%s): rebuilt from the embedding cache's shards",
                                            "damaged" if warn else "outdated", self.folder, why)
        self.rebuilt = why
        for path in [self.folder / n for n in (*ROW_FILES, INDEX_FILE, INDEX_META, "order.npy")] + \
                list(self.folder.glob("order-*.npy")):
            path.unlink(missing_ok=True)
        self.state = self._empty_state()
        self._maps = None
        with contextlib.suppress(OSError):
            _atomic_json(self.state_path, self.state)

    def rebuild(self, cache_dir: str | os.PathLike, why: str) -> None:
        """Empty the store and fill it again from the cache's shards (one warning line)."""
        with store_lock(self.folder):
            self._reset(why)
            self.sync(cache_dir)

    @property
    def id(self) -> str:
        """Changes whenever the store is emptied: an index built over another store is not this one's."""
        return str(self.state["id"])

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
                vectors = np.memmap(self.folder / VECTORS, np.float16, "r", shape=(self.rows, self.dim))
                shas = np.memmap(self.folder / SHAS, "S64", "r", shape=(self.rows,))
                order = np.load(self.folder / self.state["order"], mmap_mode="r")
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
        fd = os.open(self.folder / VECTORS, os.O_RDONLY)
        try:
            for i, row in zip(order.tolist(), rows[order].tolist()):
                if os.preadv(fd, [view[i * row_bytes:(i + 1) * row_bytes]], row * row_bytes) != row_bytes:
                    raise OSError(f"{self.folder / VECTORS} is shorter than its {self.rows} rows")
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
        if len(sorted_shas) > 1 and not (sorted_shas[1:] >= sorted_shas[:-1]).all():
            # a binary search over an unsorted order misses photos that are there
            raise StoreMismatch("its sorted order does not sort its shas")
        pos = np.clip(np.searchsorted(sorted_shas, wanted), 0, len(order) - 1)
        return np.where(sorted_shas[pos] == wanted, order[pos], -1).astype(np.int64)

    def append(self, shas, vectors: np.ndarray, shard_names=()) -> int:
        """Add vectors whose sha is not stored yet; returns how many were added.

        The rows are written past the last committed one, then the sorted order under a new
        name, then state.json (rows, checksums extended over the new bytes) atomically: a crash
        before that leaves the previous state, whose files are all still there."""
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
            crc = self.state["crc"]
            for name, data in ((VECTORS, vectors.astype(np.float16)), (SHAS, shas)):
                path = self.folder / name
                data = np.ascontiguousarray(data).tobytes()
                with open(path, "r+b" if path.exists() else "wb") as fh:
                    fh.seek(rows * (len(data) // len(shas)))  # past the last committed row (a crash's tail is overwritten)
                    fh.write(data)
                    fh.truncate()
                crc[name] = extend_crc(int(crc[name]), data)
            total = rows + len(shas)
            all_shas = np.memmap(self.folder / SHAS, "S64", "r", shape=(total,))
            order_name = f"order-{total}.npy"
            tmp = self.folder / f".{order_name}.{uuid.uuid4().hex[:8]}.tmp"
            with open(tmp, "wb") as fh:
                np.save(fh, np.argsort(all_shas, kind="stable").astype(np.int64))
            os.replace(tmp, self.folder / order_name)
            crc["order"] = crc32_file(self.folder / order_name)
            old_order = self.state.get("order")
            self.state.update(rows=total, order=order_name,
                              stamps={name: stamp(self.folder / name) for name in ROW_FILES}
                              | {"order": stamp(self.folder / order_name)})
        self.state["shards"] = sorted(set(self.state["shards"]) | set(shard_names))
        _atomic_json(self.state_path, self.state)
        if len(shas) and old_order and old_order != self.state["order"]:
            (self.folder / old_order).unlink(missing_ok=True)   # a reader that mapped it keeps its pages
        self._maps = None
        return len(shas)

    def sync(self, cache_dir: str | os.PathLike) -> int:
        """Append the cache's shards not read yet; returns how many vectors were added.

        Only a photo's own key (a bare sha256) is stored: the keys of augmented views
        ("<sha>#v3s0") are longer than a row's 64 bytes and would be cut to the photo's."""
        from shoefind.features.cache import DamagedShard, read_shard
        seen = set(self.state["shards"])
        new = [p for p in sorted(Path(cache_dir).glob("shard-*.npz")) if p.name not in seen]
        added, batch_shas, batch_vecs, names = 0, [], [], []
        for shard in new:
            try:
                keys, vectors = read_shard(shard)
            except DamagedShard:
                continue  # the cache moves it aside when it next opens; its photos are encoded again
            if self.dim and vectors.shape[1] != self.dim:
                continue  # a foreign shard: the cache moves it aside too
            photo = np.array([len(k) == SHA_BYTES for k in keys], bool)
            batch_shas.append(np.asarray(keys, dtype="S64")[photo])
            batch_vecs.append(vectors[photo])
            names.append(shard.name)
            if sum(len(s) for s in batch_shas) >= 100_000:
                added += self.append(np.concatenate(batch_shas), np.concatenate(batch_vecs), names)
                batch_shas, batch_vecs, names = [], [], []
        if names:
            added += self.append(np.concatenate(batch_shas), np.concatenate(batch_vecs), names)
        return added


@contextlib.contextmanager
def store_lock(folder: Path):
    """Processes sharing a cache check, repair and grow its store one at a time (flock: the
    kernel drops it when its holder dies)."""
    try:
        fh = open(folder / ".lock", "a+b")
    except OSError:   # a read-only cache: nobody can change it, so there is nothing to wait for
        yield
        return
    with fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


class AnnIndex:
    """faiss IVF-SQ8 over a store's rows, persisted beside it and grown by adding rows.

    Beside the index, ivf-sq8.json records the store it was built over (its id), the rows it
    covers, its file's CRC-32 and stamp: an index that fails any of these, or that faiss cannot
    read, is rebuilt from the store with one warning line."""

    def __init__(self, store: VectorStore, nprobe: int | None = None):
        self.store = store
        self.path = store.folder / INDEX_FILE
        self.meta_path = store.folder / INDEX_META
        self.index = None
        self.nprobe = nprobe
        self.rebuilt: str | None = None    # why a saved index was not used, if it was not

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

    def _load_checked(self):
        """The saved index, memory-mapped, when it is intact and this store's; else None."""
        import faiss
        if not self.path.is_file():
            self.meta_path.unlink(missing_ok=True)
            return None
        why, warn = None, True
        try:
            meta = json.loads(self.meta_path.read_text())
            rows, crc = int(meta["rows"]), int(meta["crc"])
        except FileNotFoundError:
            why, warn = "it was written by an older version, without a checksum", False
        except (OSError, ValueError, KeyError, TypeError) as exc:
            why = f"its record {self.meta_path.name} is unreadable ({type(exc).__name__})"
        if why is None:
            if meta.get("store") != self.store.id:
                why = "it was built over another vector store"
            elif rows > self.store.rows:
                why = f"it covers {rows} rows, the store holds {self.store.rows}"
            elif not unchanged_or_intact(self.path, meta.get("stamp"), crc):
                why = "its file does not match its checksum"
        index = None
        if why is None:
            try:
                index = faiss.read_index(str(self.path), faiss.IO_FLAG_MMAP)
            except Exception as exc:   # faiss raises RuntimeError with its C++ message for any bad file
                why = f"faiss cannot read it: {str(exc).strip().splitlines()[0][:120]}"
            else:
                if index.d != self.store.dim or index.ntotal != rows:
                    why = f"it holds {index.ntotal} vectors of dimension {index.d}, its record says {rows} of " \
                          f"{self.store.dim}"
                    index = None
        if why is not None:
            (log.warning if warn else log.info)("%s approximate index %s (%s): rebuilt from the vector store",
                                                "damaged" if warn else "outdated", self.path, why)
            self.rebuilt = why
            self.path.unlink(missing_ok=True)
            self.meta_path.unlink(missing_ok=True)
        return index

    def ensure(self, progress=None) -> "AnnIndex":
        """Load the index, add the store's rows it lacks (training it first if none), save.

        It is then served memory-mapped from its file, so a process holds only the lists its
        queries read (faiss cannot add to a mapped index: adding reads it into memory first).
        """
        import faiss
        with store_lock(self.store.folder):
            if self.index is None:
                self.index = self._load_checked()
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
                self._save()
                self.index = faiss.read_index(str(self.path), faiss.IO_FLAG_MMAP)
        self.index.nprobe = self.nprobe or max(16, self.index.nlist // 16)
        return self

    def _save(self) -> None:
        import faiss
        tmp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex[:8]}.tmp")
        faiss.write_index(self.index, str(tmp))
        crc = crc32_file(tmp)
        os.replace(tmp, self.path)
        _atomic_json(self.meta_path, {"store": self.store.id, "rows": int(self.index.ntotal),
                                      "dim": int(self.index.d), "crc": crc, "stamp": stamp(self.path)})

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
            if len(self.store_rows) and (self.store_rows.min() < 0 or self.store_rows.max() >= ann.store.rows):
                raise ValueError(f"store rows out of range: the store holds {ann.store.rows}")
            self.photo_of_row = np.full(ann.store.rows, -1, np.int64)
            self.photo_of_row[store_rows] = np.arange(len(store_rows))
            # a photo filed twice (one content, two paths) shares its row: rows map to photos through this
            self._row_order = np.argsort(self.store_rows, kind="stable")
            self._sorted_rows = self.store_rows[self._row_order]
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
        keep = (rows >= 0) & (rows < len(self.photo_of_row))
        photos, scores = self.photos_of_rows(rows[keep], scores[keep])
        if allowed is not None:
            keep = allowed[photos]
            photos, scores = photos[keep], scores[keep]
        return photos, scores

    def photos_of_rows(self, rows: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every catalog photo stored in each row (none, one, or several filed twice), with its row's score."""
        lo = np.searchsorted(self._sorted_rows, rows, side="left")
        counts = np.searchsorted(self._sorted_rows, rows, side="right") - lo
        which = np.repeat(np.arange(len(rows)), counts)
        offset = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
        return self._row_order[np.repeat(lo, counts) + offset], scores[which]

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
