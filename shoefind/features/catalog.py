"""The catalog that queries are answered against: a feature table with its photo embeddings.

Opening a catalog reuses the saved feature table (rebuilt when anything it was built from
changed: shoefind.features.table_fingerprint) and the embedding cache, encoding only the photos the cache has not seen.
Opened catalogs are kept per process, so a server or a flow run pays for this once.
Catalogs of at least `ann_threshold()` photos (50,000) read their embeddings as float16 from
the cache's memory-mapped vector store and answer nearest-photo queries through its
approximate index (shoefind.features.vector_index); smaller ones search exactly in memory.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from shoefind.features.cache import EmbeddingCache
from shoefind.features.embed import embed_images
from shoefind.features.table import FeatureTable, build_table, saved_table_if_current, table_dir_for
from shoefind.features.table_fingerprint import table_fingerprint
from shoefind.features.text_cache import load_texts, save_texts
from shoefind.errors import InternalError, UserError
from shoefind.features.vector_index import (EXACT_SUBSET, AnnIndex, PhotoSearch, StoreMismatch, VectorStore,
                                            ann_threshold, single_threaded_blas)


class EmptyCatalog(UserError):
    """The catalog has no shoe with a usable photo; str() says what to do."""


@dataclass
class Catalog:
    """Catalog photos (rows of `embeddings`) and the shoes they show (rows of `shoes`)."""
    root: Path
    shoes: pd.DataFrame            # one row per shoe: shoe, name, brand, hightop, color, sole
    photos: pd.DataFrame           # one row per embedded photo: path (absolute), sha256, shoe_index
    embeddings: np.ndarray         # (photos, dim), L2-normalised (float16 memory-mapped when big)
    skipped: list[str] = field(default_factory=list)    # photos that could not be embedded
    model_id: str = ""
    table: FeatureTable | None = None          # what learned classifiers are rebuilt from
    data_dir: Path | None = None               # where `shoefind learn` saved them
    classifiers: dict = field(default_factory=dict, repr=False)   # built once per catalog (identify.py)
    search: PhotoSearch | None = field(default=None, repr=False)  # exact, or approximate when big
    cache_dir: Path | None = None              # the embedding cache: prompt embeddings are kept there too

    def __post_init__(self):
        single_threaded_blas()      # queries against it are matrix-vector products
        self.photo_shoe = self.photos["shoe_index"].to_numpy(dtype=int)
        self._by_sha = None      # sha -> photo, built on first use (a big catalog asks its store instead)
        if self.search is None:
            self.search = PhotoSearch(self.embeddings)

    def nearest_photos(self, query: np.ndarray, k: int, allowed_shoes: np.ndarray | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
        """(photo indices, cosines) of the k photos nearest to query, best first."""
        allowed = None if allowed_shoes is None else allowed_shoes[self.photo_shoe]
        return self.search.top(query, k, allowed)

    def shoe_scores(self, query: np.ndarray, allowed_shoes: np.ndarray | None = None, depth: int = 100
                    ) -> tuple[np.ndarray, np.ndarray]:
        """Per shoe: its best photo's cosine to query and that photo (-inf / -1 where none).

        Exact for every shoe below the ANN threshold; above it, for the shoes of the best
        photos (at least `depth` shoes when the catalog has them), the others -inf.
        """
        if not self.search.approximate:
            return self.best_photo_per_shoe(self.search.scores(query), allowed_shoes)
        # a shoe ranks by its best photo, so the best photos name the best shoes in order
        per_shoe = max(1, math.ceil(len(self.photos) / max(1, len(self.shoes))))
        allowed = None if allowed_shoes is None else allowed_shoes[self.photo_shoe]
        photos, sims = self.search.best_per_group(query, self.photo_shoe, min(depth * per_shoe * 2, 2048), allowed)
        best = np.full(len(self.shoes), -np.inf, dtype=np.float32)
        best_photo = np.full(len(self.shoes), -1, dtype=int)
        shoes = self.photo_shoe[photos]
        best[shoes], best_photo[shoes] = sims, photos
        return best, best_photo

    def __len__(self) -> int:
        return len(self.photos)

    def _shoe_memo(self) -> dict:
        """Per-catalog answers about its shoes, worked out once (a query asks them several times: pandas
        costs ~1 ms each), dropped if `shoes` is replaced."""
        memo = self.__dict__.get("_memo")
        if memo is None or memo["shoes"] is not self.shoes:
            memo = self.__dict__["_memo"] = {"shoes": self.shoes, "labels": {}, "records": {}}
        return memo

    @property
    def attributes(self) -> list[str]:
        """The attributes the catalog has labels for."""
        memo = self._shoe_memo()
        if "attributes" not in memo:
            from shoefind.vocab import ATTRIBUTES
            memo["attributes"] = [a for a in ATTRIBUTES if a in self.shoes and (self.labels(a) != "").any()]
        return list(memo["attributes"])

    def labels(self, attr: str) -> np.ndarray:
        """Every shoe's `attr` label as a string array (read-only, shared)."""
        labels = self._shoe_memo()["labels"]
        if attr not in labels:
            values = self.shoes[attr].astype(str).to_numpy()
            values.flags.writeable = False
            labels[attr] = values
        return labels[attr]

    def photo_index(self, sha256: str) -> int | None:
        if self.search.approximate:   # the store's sorted sha index: no million-entry dict in memory
            row = self.search.ann.store.row_of(sha256)
            photo = int(self.search.photo_of_row[row]) if row >= 0 else -1
            return photo if photo >= 0 else None
        if self._by_sha is None:
            self._by_sha = {s: i for i, s in enumerate(self.photos["sha256"])}
        return self._by_sha.get(sha256)

    def shoe_record(self, i: int) -> dict:
        records = self._shoe_memo()["records"]
        if int(i) not in records:
            row = self.shoes.iloc[int(i)]
            records[int(i)] = {k: str(row[k]) for k in ("shoe", "name", "brand", "color", "hightop", "sole") if k in row}
        return dict(records[int(i)])    # a copy: callers add their own keys

    def best_photo_per_shoe(self, photo_scores: np.ndarray, allowed_shoes: np.ndarray | None = None
                            ) -> tuple[np.ndarray, np.ndarray]:
        """Per shoe: the best photo's score and index (-inf / -1 for shoes without an allowed photo)."""
        n = len(self.shoes)
        best = np.full(n, -np.inf, dtype=np.float32)
        scores = np.asarray(photo_scores, dtype=np.float32)
        if allowed_shoes is not None:
            scores = np.where(allowed_shoes[self.photo_shoe], scores, -np.inf)
        np.maximum.at(best, self.photo_shoe, scores)
        # the photo that reached each shoe's best score (first one if tied)
        hit = np.flatnonzero(scores == best[self.photo_shoe])
        best_photo = np.full(n, -1, dtype=int)
        best_photo[self.photo_shoe[hit[::-1]]] = hit[::-1]
        best_photo[~np.isfinite(best)] = -1
        return best, best_photo


def catalog_from_table(table: FeatureTable, cache: EmbeddingCache, model_id: str = "",
                       data_dir: str | os.PathLike | None = None, threshold: int | None = None) -> Catalog:
    """A catalog of the table's photos that have a cached embedding.

    At `threshold` photos or more (default `ann_threshold()`), embeddings come from the
    cache's float16 vector store and queries go through its approximate index.
    """
    shoes = table.shoes.reset_index(drop=True)
    index = {s: i for i, s in enumerate(shoes["shoe"])}
    images = table.images[table.images["shoe"].isin(index)]
    threshold = ann_threshold() if threshold is None else threshold
    big = len(images) >= threshold
    if big:
        store = VectorStore.for_cache(cache.dir)
        rows = _checked_rows(store, cache.dir, images["sha256"])
        images = images.assign(_row=rows).sort_values("_row", kind="stable")   # store order: slices, not copies
        have = (images["_row"] >= 0).to_numpy()
    else:
        have = images["sha256"].map(lambda s: s in cache).astype(bool).to_numpy()
    skipped = [str(table.root / p) for p in images.loc[~have, "path"]]
    images = images.loc[have]
    photos = pd.DataFrame({"path": [str(table.root / p) for p in images["path"]],
                           "sha256": images["sha256"].tolist(),
                           "shoe_index": [index[s] for s in images["shoe"]]})
    if photos.empty:
        raise EmptyCatalog(
            f"the catalog {table.root} has no shoe with a usable photo ({len(shoes)} shoes, "
            f"{len(table.images)} readable photos): add labeled photo folders "
            "(Brand_Top_Color_Sole_Name/photo.jpg) or pass --dataset DIR")
    search = None
    if big:
        rows = images["_row"].to_numpy(np.int64)
        # exactly the store's first rows, in order (no photo missing, none twice): mapped, not copied
        prefix = np.array_equal(rows, np.arange(len(rows)))
        emb = store.vectors[:len(rows)] if prefix else np.asarray(store.vectors[rows])
        search = PhotoSearch(emb, rows, AnnIndex(store).ensure(), exact_subset=min(EXACT_SUBSET, threshold // 2))
    else:
        emb = cache.matrix(photos["sha256"].tolist())
    return Catalog(table.root, shoes, photos, emb, skipped, model_id, table,
                   Path(data_dir) if data_dir is not None else None, search=search)


def _checked_rows(store: VectorStore, cache_dir: Path, shas: pd.Series) -> np.ndarray:
    """Each photo's store row (-1 where not stored), checked: the row holds that photo's sha.

    The store's own checksums catch damaged files; this also catches a row map that is
    intact but wrong. Either way the store is rebuilt from the shards once, never trusted."""
    wanted = np.asarray(shas.tolist(), dtype="S64")
    for attempt in (1, 2):
        try:
            rows = store.rows_of(wanted)
        except StoreMismatch as exc:
            why = str(exc)
        else:
            found = rows >= 0
            wrong = int((store.shas[rows[found]] != wanted[found]).sum()) if found.any() else 0
            if not wrong:
                return rows
            why = f"{wrong} photos map to another photo's row"
        if attempt == 2:
            raise InternalError(f"the vector store {store.folder} is inconsistent even after a rebuild: {why}")
        store.rebuild(cache_dir, why)
    raise AssertionError("unreachable")


def _current_table(dataset: Path, data_dir: Path) -> FeatureTable:
    """The saved table of `dataset`, rebuilt when missing or when anything it was built from changed."""
    out = table_dir_for(data_dir, dataset)
    fingerprint = table_fingerprint(dataset)
    table = saved_table_if_current(out, fingerprint)
    if table is None:
        table = build_table(dataset)
        table.save(out, fingerprint)
    return table


_OPEN: dict[tuple, tuple[float, Catalog]] = {}


def open_catalog(encoder, dataset: str | os.PathLike, data_dir: str | os.PathLike,
                 progress: Callable[[int], None] | None = None) -> Catalog:
    """The catalog of a labeled photo folder, embedded with `encoder` (kept per process)."""
    dataset = Path(dataset).expanduser().resolve()
    data_dir = Path(data_dir)
    if not dataset.is_dir():
        raise EmptyCatalog(f"catalog folder {dataset} does not exist: pass --dataset DIR "
                           "(a labeled photo folder) or put photos in DATA_DIR/images")
    key = (encoder.cache_key, str(dataset), str(data_dir.resolve()))
    stamp = _folder_stamp(dataset)
    if key in _OPEN and _OPEN[key][0] == stamp:
        return _OPEN[key][1]
    table = _current_table(dataset, data_dir)
    if table.shoes.empty:
        raise EmptyCatalog(f"the catalog {dataset} has no shoes: add labeled photo folders "
                           "(Brand_Top_Color_Sole_Name/photo.jpg) or pass --dataset DIR")
    cache = EmbeddingCache.for_encoder(data_dir, encoder)
    load_texts(encoder, cache.dir)   # prompts a process before encoded: no tokenizer or text tower for them
    items = [(str(table.root / p), s) for p, s in zip(table.images["path"], table.images["sha256"])]
    embed_images(encoder, cache, items, batch_size=encoder.batch_size, progress=progress)
    catalog = catalog_from_table(table, cache, encoder.model_id, data_dir)
    catalog.cache_dir = cache.dir
    _OPEN[key] = (stamp, catalog)
    return catalog


def remember_prompts(encoder, catalog: Catalog) -> None:
    """Keep the prompt embeddings this process encoded for the next one (shoefind.features.text_cache)."""
    if catalog.cache_dir is not None:
        save_texts(encoder, catalog.cache_dir)


def _folder_stamp(folder: Path) -> float:
    """Changes when a shoe folder is added, removed or changed (cheap: no file walk)."""
    stamps = [folder.stat().st_mtime]
    stamps += [p.stat().st_mtime for p in folder.iterdir() if p.is_dir()]
    return max(stamps) + len(stamps)
