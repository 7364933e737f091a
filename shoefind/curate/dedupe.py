"""Duplicate detection: exact (sha256) and near (perceptual hash) duplicates, at scale.

Near duplicates are found with multi-index hashing (Norouzi et al.) instead of all pairs:
a 64-bit hash is cut into m chunks, and two hashes within Hamming distance r must agree on
at least one chunk to within floor(r/m) bits (pigeonhole). Each chunk has a lookup table
(counting sort), so a query is a few hundred table reads, vectorised with numpy over a
whole batch. A BK-tree was not used: at radius 6-10 on 64 bits it visits most of the tree.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

HASH_BITS = 64
MAX_CHUNK_BITS = 22  # lookup table of 4M entries per chunk at most


def _masks(bits: int, radius: int) -> np.ndarray:
    """Every `bits`-bit value with at most `radius` bits set."""
    out = [0]
    for k in range(1, radius + 1):
        out += [sum(1 << b for b in combo) for combo in itertools.combinations(range(bits), k)]
    return np.array(out, dtype=np.int64)


class HammingIndex:
    """Multi-index hashing over unsigned 64-bit hashes; add in batches, query in batches."""

    def __init__(self, max_distance: int, chunks: int | None = None):
        self.max_distance = int(max_distance)
        m = chunks or max(math.ceil(HASH_BITS / MAX_CHUNK_BITS), math.ceil((self.max_distance + 1) / 3))
        widths = [HASH_BITS // m + (1 if i < HASH_BITS % m else 0) for i in range(m)]
        self.shifts = [sum(widths[:i]) for i in range(m)]
        self.widths = widths
        self.radius = self.max_distance // m
        self.masks = [_masks(w, self.radius) for w in widths]
        self._parts: list[np.ndarray] = []
        self._hashes = np.zeros(0, dtype=np.uint64)
        self._tables: list[tuple[np.ndarray, np.ndarray]] | None = None

    def __len__(self) -> int:
        return len(self._hashes) + sum(len(p) for p in self._parts)

    def add(self, hashes: Sequence[int] | np.ndarray) -> range:
        """Add hashes; returns their ids (positions in insertion order)."""
        start = len(self)
        arr = np.asarray(hashes, dtype=np.uint64)
        self._parts.append(arr)
        self._tables = None
        return range(start, start + len(arr))

    @property
    def hashes(self) -> np.ndarray:
        if self._parts:
            self._hashes = np.concatenate([self._hashes, *self._parts])
            self._parts = []
        return self._hashes

    def _chunk(self, values: np.ndarray, i: int) -> np.ndarray:
        return ((values >> np.uint64(self.shifts[i])) & np.uint64((1 << self.widths[i]) - 1)).astype(np.int64)

    def _build(self) -> list[tuple[np.ndarray, np.ndarray]]:
        if self._tables is None:
            hashes = self.hashes
            self._tables = []
            for i, w in enumerate(self.widths):
                keys = self._chunk(hashes, i)
                order = np.argsort(keys, kind="stable")
                offsets = np.zeros((1 << w) + 1, dtype=np.int64)
                np.cumsum(np.bincount(keys, minlength=1 << w), out=offsets[1:])
                self._tables.append((order, offsets))
        return self._tables

    def query(self, queries: Sequence[int] | np.ndarray, max_distance: int | None = None,
              batch: int = 8192) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All (query position, id, distance) with distance <= max_distance, each pair once."""
        r = self.max_distance if max_distance is None else min(int(max_distance), self.max_distance)
        q = np.asarray(queries, dtype=np.uint64)
        tables, hashes = self._build(), self.hashes
        out_q, out_id, out_d = [], [], []
        for start in range(0, len(q), batch):
            qb = q[start:start + batch]
            cand_q, cand_id = [], []
            for i, (order, offsets) in enumerate(tables):
                keys = (self._chunk(qb, i)[:, None] ^ self.masks[i][None, :]).ravel()
                lo, hi = offsets[keys], offsets[keys + 1]
                counts = hi - lo
                hit = counts > 0
                if not hit.any():
                    continue
                lo, counts = lo[hit], counts[hit]
                owner = np.repeat(np.arange(len(qb)).repeat(len(self.masks[i]))[hit], counts)
                # positions lo..hi-1 of every hit bucket, laid end to end
                firsts = np.repeat(lo - np.cumsum(counts) + counts, counts)
                cand_q.append(owner)
                cand_id.append(order[firsts + np.arange(counts.sum())])
            if not cand_q:
                continue
            cq, ci = np.concatenate(cand_q), np.concatenate(cand_id)
            keep = np.bitwise_count(qb[cq] ^ hashes[ci]) <= r  # most candidates are far: drop them first
            # a pair found through several chunks is kept once
            pair = np.unique(cq[keep] * max(len(hashes), 1) + ci[keep], sorted=True)
            cq, ci = pair // max(len(hashes), 1), pair % max(len(hashes), 1)
            out_q.append(cq + start)
            out_id.append(ci)
            out_d.append(np.bitwise_count(qb[cq] ^ hashes[ci]).astype(np.int64))
        if not out_q:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, empty
        return np.concatenate(out_q), np.concatenate(out_id), np.concatenate(out_d)


def color_distance(a: Sequence[float], b: Sequence[float], min_colourful: float = 0.02) -> float:
    """How differently two images are coloured (crawl_checks.color_signature), 0 (alike) to 2: the larger
    of the hue distance and the brightness distance.

    Hue: L1 of the hue histograms, each weighted by how much of its image is colourful, over the larger
    of the two (0 when both are nearly grey: hue says nothing). Weighted, because a histogram of a few
    colourful pixels looks like any other of the same hue: a khaki shoe with a yellow tag matched a
    sulfur-yellow one, a bone-white one a crimson one.
    Brightness: L1 of the brightness histograms of the pixels that are not white background (only when
    both signatures carry one: those stored before it was added do not).
    A signature of unknown shape is 0: the hashes decide alone."""
    if len(a) < 13 or len(b) < 13:
        return 0.0
    hue = 0.0
    if a[12] >= min_colourful or b[12] >= min_colourful:
        mass_a = np.asarray(a[:12], float) * a[12]
        mass_b = np.asarray(b[:12], float) * b[12]
        hue = float(np.abs(mass_a - mass_b).sum() / max(a[12], b[12]))
    tone = (float(np.abs(np.asarray(a[13:], float) - np.asarray(b[13:], float)).sum())
            if len(a) == len(b) > 13 else 0.0)
    return max(hue, tone)


def hamming(a: int, b: int) -> int:
    return (int(a) ^ int(b)).bit_count()


@dataclass
class HashedImage:
    """What duplicate detection needs to know about one distinct image."""

    key: str                 # sha256
    phash: int
    dhash: int
    pixels: int
    color: Sequence[int] = ()
    existing: bool = False   # already in the dataset or the review queue
    label: str = ""          # a path, for messages


@dataclass
class NearGroup:
    keep: int                                 # index of the copy kept
    members: list[int]                        # all indices, keep included
    distances: dict[int, tuple[int, int]] = field(default_factory=dict)  # member -> (pHash, dHash) to keep


def exact_duplicates(shas: Sequence[str]) -> dict[int, int]:
    """position -> position of the first file with the same content."""
    first: dict[str, int] = {}
    dup = {}
    for i, sha in enumerate(shas):
        if sha in first:
            dup[i] = first[sha]
        else:
            first[sha] = i
    return dup


def near_duplicate_pairs(items: Sequence[HashedImage], phash_max: int, dhash_max: int,
                         color_max: float | None = None) -> list[tuple[int, int, int, int]]:
    """(i, j, pHash distance, dHash distance) for near duplicates, i < j, at least one new.

    pHash proposes (through the index), dHash and the colour thumbnail must agree.
    """
    if len(items) < 2:
        return []
    index = HammingIndex(phash_max)
    index.add([it.phash for it in items])
    new = [i for i, it in enumerate(items) if not it.existing]
    qpos, ids, pdist = index.query([items[i].phash for i in new])
    pairs = set()
    for qp, j, dp in zip(qpos.tolist(), ids.tolist(), pdist.tolist()):
        i = new[qp]
        if i == j:
            continue
        a, b = min(i, j), max(i, j)
        dd = hamming(items[a].dhash, items[b].dhash)
        if dd > dhash_max:
            continue
        if color_max is not None and color_distance(items[a].color, items[b].color) > color_max:
            continue
        pairs.add((a, b, dp, dd))
    return sorted(pairs)


def group_near_duplicates(items: Sequence[HashedImage], pairs) -> list[NearGroup]:
    """Groups of near duplicates, each around the copy it keeps: the largest resolution (dataset copy on
    ties). An image joins a group only as a near duplicate of the kept copy itself, never through a chain:
    product shots of one silhouette in two colourways can each be "near" a third photo without being
    the same picture (on nike-silhouettes, grouping by connected pairs rejected 101 distinct photos)."""
    near: dict[int, dict[int, tuple[int, int]]] = {}
    for a, b, dp, dd in pairs:
        near.setdefault(a, {})[b] = (dp, dd)
        near.setdefault(b, {})[a] = (dp, dd)
    by_size = sorted(near, key=lambda k: (-items[k].pixels, not items[k].existing, k))
    rank = {k: r for r, k in enumerate(by_size)}
    kept: set[int] = set()
    groups: dict[int, NearGroup] = {}
    for x in by_size:
        keeps = [k for k in near[x] if k in kept]
        if not keeps:
            kept.add(x)
            continue
        keep = min(keeps, key=lambda k: (sum(near[x][k]), rank[k]))
        g = groups.setdefault(keep, NearGroup(keep, [keep]))
        g.members.append(x)
        g.distances[x] = near[x][keep]
    for g in groups.values():
        g.members.sort()
    return sorted(groups.values(), key=lambda g: g.members[0])
