"""A realistic offline image-search source: result pages drawn from a labeled pool folder.

The crawler reaches it like any engine, through the `localtest` engine of
rules/search_engines.yaml with `base_url` set to `source.base_url`: the same markup, previews and
infinite scroll as tests/helpers/fake_search_site.py. What differs is what the results are. A
query for a pool shoe ("Brand Name", as written by `write_pool_catalog`) returns a page mixed in
configurable proportions (`Mix`) of:

- right: photos of that shoe;
- confusable: photos of other shoes of the pool, the most confusable first (by cosine of class
  mean embeddings when an `embed` function is given, e.g. `lambda paths:
  encoder.encode_images([str(p) for p in paths])`, else by the model words and attributes the
  folder names share, see `confusable_order`);
- distractor: photos of a distractor folder (other brands, non-shoes);
- near-duplicate: a resized, re-encoded or cropped copy of one of that shoe's photos (one already
  fetched in an earlier crawl when there is one, else one on the same page, listed after it);
  smaller than its original (a de-duplicator keeping the largest keeps the original) but within
  the crawl rules, so only duplicate detection can catch it (the filter's pHash catches most: a
  crop moves pHash the most);
- thumbnail: a copy of one of that shoe's photos scaled below the crawl rules' `min_short_side`.

Held-out photos (`exclude`: paths, matched by content too) are never served, nor are copies of
them. Everything is deterministic for a seed and the same sequence of crawls.

New photos every round: a page lists only what has not been fetched yet (a pool or distractor
photo whose full-size image was downloaded once is not listed again, under any query; each copy
is made once), in a fixed seeded order, so a result not reached by one crawl keeps its place in
the next. `repeat=True` lists the same page every time instead. `relist=True` does what a real
engine does with a photo of shoe A that a crawl fetched from another query's page (as one of its
"other shoes"): A's next page lists it once more, first, as one of A's own results (the crawler
records that it was listed for two shoes and does not fetch it again); it does not take a place
of the mix. Mind that the crawler counts its
`per_query` target over its manifest: a second round into the same inbox must ask for
`per_query` = 2 x N (round r: r x N) to get N more; the pages then begin with new photos, so the
crawler does not click through the old ones.

Ground truth: every URL listed is recorded (`truth`, and as JSON lines in `truth_path` when
given) with the pool class the query was for, what the photo really shows (`truth`: a pool class,
or None for a distractor), its kind, its source file, the original a copy was made from, and the
sha256 of the bytes served, which is the name the crawler files it under. `truth_path` also
records each fetch, so a new source on the same file resumes where the last one stopped.
"""
from __future__ import annotations

import csv
import difflib
import hashlib
import html
import io
import json
import os
import re
import threading
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Iterable
from urllib.parse import parse_qs, unquote, urlsplit

from shoefind.crawl.targets import Shoe, default_query, make_shoe
from shoefind.errors import UserError
from shoefind.features.table import parse_folder_name
from shoefind.images import is_image_name, sha256_file
from shoefind.settings import load_rules
from shoefind.vocab import _norm, vocabularies
from tests.helpers.fake_search_site import SEARCH_PAGE, _send

KINDS = ("right", "confusable", "distractor", "near-duplicate", "thumbnail")   # the mix of a page
RELISTED = "relisted"   # a photo listed again on its own shoe's page after another page's fetch (relist=True)
COPY_TRANSFORMS = ("resized", "re-encoded", "cropped")
CATALOG_COLUMNS = ["name", "brand", "color", "hightop", "sole", "queries", "pool_class"]


@dataclass(frozen=True)
class Mix:
    """Shares of a result page by kind (normalised; a kind with nothing left is left out)."""
    right: float = 0.55
    confusable: float = 0.2
    distractor: float = 0.1
    near_duplicate: float = 0.1
    thumbnail: float = 0.05

    def counts(self, n: int) -> dict[str, int]:
        """Results of each kind on a page of n: largest remainder, so they add up to n exactly."""
        shares = {"right": self.right, "confusable": self.confusable, "distractor": self.distractor,
                  "near-duplicate": self.near_duplicate, "thumbnail": self.thumbnail}
        if any(v < 0 for v in shares.values()) or sum(shares.values()) <= 0:
            raise ValueError(f"mix shares must be >= 0 and not all 0: {shares}")
        total = sum(shares.values())
        exact = {k: n * v / total for k, v in shares.items()}
        counts = {k: int(v) for k, v in exact.items()}
        for k in sorted(exact, key=lambda k: (counts[k] - exact[k], KINDS.index(k)))[:n - sum(counts.values())]:
            counts[k] += 1
        return counts


@dataclass(frozen=True)
class Photo:
    """A file the source can serve: a pool photo (cls set) or a distractor (cls None)."""
    id: str               # p<i> (pool) or d<i> (distractor): stable for a folder's sorted files
    path: Path
    cls: str | None
    sha256: str

    @property
    def source(self) -> str:
        return f"{'pool' if self.cls is not None else 'distractors'}:{self.path.parent.name}/{self.path.name}"


@dataclass(frozen=True)
class Served:
    """The ground truth of one result listed for one query."""
    url: str              # as listed (absolute)
    path: str             # the same on this site (port-independent: a resumed source keeps it)
    query: str
    shoe: str | None      # the pool class the query was for
    kind: str             # one of KINDS or RELISTED, relative to the query
    truth: str | None     # the pool class the photo shows; None: a distractor (no pool shoe)
    source: str           # pool:<class>/<file>, distractors:<folder>/<file>, or copy:<path>
    sha256: str           # of the bytes served (the crawler's file name)
    width: int
    height: int
    original: str | None = None    # a copy's original (source form)
    transform: str | None = None   # resized | re-encoded | cropped | thumbnail

    def label_is_right(self, pool_class: str) -> bool:
        """Would filing this photo under pool_class be a correct label?"""
        return self.truth is not None and self.truth == pool_class


# --- the pool's catalog -----------------------------------------------------------------

@dataclass(frozen=True)
class PoolShoe:
    pool_class: str       # the pool's folder name
    shoe: Shoe            # what the crawler files it as (its folder: Brand_Top_Color_Sole_Name)

    @property
    def query(self) -> str:
        return self.shoe.queries[0]


def pool_classes(pool: Path) -> list[str]:
    """The pool's shoe folders (UserError when the pool is not a folder)."""
    if not Path(pool).is_dir():
        raise UserError(f"pool {pool} is not a folder of shoe folders")
    return sorted(p.name for p in Path(pool).iterdir()
                  if p.is_dir() and not p.name.startswith(".") and not p.is_symlink())


def _vocab_word(attr: str, words: list[str]) -> str | None:
    vocab = vocabularies()[attr]
    known = {_norm(v): v for v in vocab.values} | {_norm(a): v for a, v in vocab.aliases}
    return next((known[w] for w in words if w in known), None)


def pool_shoes(pool: str | os.PathLike, brand: str | None = None, color: str = "White", sole: str = "Plain Sole",
               hightop: str | None = None, overrides: dict[str, dict] | None = None) -> list[PoolShoe]:
    """A catalog shoe per pool folder, with one query "Brand Name".

    A `Brand_Top_Color_Sole_Name` folder gives its own fields. Any other folder name (j1_high) is
    the shoe's name with its separators as spaces ("j1 high", which the feature table matches back
    to the folder); brand, top and colour come from the name's words when it has one the
    vocabularies know, else from the arguments: brand (default: a brand word of the pool folder's
    name, as in nike-silhouettes), hightop (default Low), color and sole. Those are placeholders
    the folder names do not say; identifying the shoe by name does not use them. overrides: fields
    per pool folder, e.g. {"j3": {"hightop": "Mid"}}."""
    pool = Path(pool)
    out = []
    for cls in pool_classes(pool):
        parsed = parse_folder_name(cls)
        if parsed:
            record = parsed
        else:
            words = _norm(cls).split()
            pool_words = _norm(pool.resolve().name).split()
            record = {"name": " ".join(re.split(r"[_\-]+", cls)).strip(),
                      "brand": _vocab_word("brand", words) or brand or _vocab_word("brand", pool_words),
                      "hightop": _vocab_word("hightop", words) or hightop or "Low",
                      "color": _vocab_word("color", words) or color, "sole": sole}
            if not record["brand"]:
                raise UserError(f"pool {pool}: cannot tell the brand of '{cls}' from the folder names: pass brand=")
        shoe = make_shoe(record | (overrides or {}).get(cls, {}), f"{pool.name}/{cls}")
        out.append(PoolShoe(cls, Shoe(shoe.name, shoe.brand, shoe.color, shoe.hightop, shoe.sole,
                                      (default_query(shoe),))))
    return out


def write_pool_catalog(pool: str | os.PathLike, path: str | os.PathLike, **kwargs) -> list[PoolShoe]:
    """The catalog CSV the crawler (and `build-table --catalog`) reads for this pool: name, brand, color,
    hightop, sole, queries, and pool_class (the pool folder, for scoring; other readers ignore it)."""
    shoes = pool_shoes(pool, **kwargs)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(CATALOG_COLUMNS)
        for s in shoes:
            writer.writerow([s.shoe.name, s.shoe.brand, s.shoe.color, s.shoe.hightop, s.shoe.sole,
                             ";".join(s.shoe.queries), s.pool_class])
    return shoes


# --- which shoes are confusable -------------------------------------------------------------

def _name_features(cls: str) -> tuple[set[str], set[str]]:
    """(model words, attributes) of a folder name: the name's words that are not a brand, top or colour
    ("j1" of j1_high), and the attribute values it states."""
    parsed = parse_folder_name(cls)
    words = set(_norm(parsed["name"] if parsed else cls).split())
    attrs = {f"{a}:{v}" for a in ("brand", "hightop", "color") for w in sorted(words)
             for v in [_vocab_word(a, [w])] if v}
    if parsed:
        attrs |= {f"{k}:{_norm(v)}" for k, v in parsed.items() if k != "name"}
    vocab_words = {w for w in words if any(_vocab_word(a, [w]) for a in ("brand", "hightop", "color"))}
    return words - vocab_words, attrs


def confusable_order(classes: list[str], class_means: dict[str, "object"] | None = None) -> dict[str, list[str]]:
    """For each class, the other classes from the most to the least confusable.

    With class mean embeddings: by their cosine (centred on the mean of the means, as pooled CNN
    features all point one way). Without: by the model words their names share (Jaccard: j1_mid
    before dunk_high for j1_high, as an image search for a Jordan 1 shows other Jordan 1s), then the
    attributes shared (brand, top, colour, sole), then the names' character similarity, then name."""
    order: dict[str, list[str]] = {}
    if class_means is not None:
        import numpy as np
        means = np.stack([np.asarray(class_means[c], np.float64) for c in classes])
        means = means - means.mean(axis=0)
        means /= np.linalg.norm(means, axis=1, keepdims=True) + 1e-12
        sim = means @ means.T
        for i, c in enumerate(classes):
            others = [j for j in range(len(classes)) if j != i]
            order[c] = [classes[j] for j in sorted(others, key=lambda j: (-sim[i, j], classes[j]))]
        return order
    feats = {c: _name_features(c) for c in classes}
    for c in classes:
        words, attrs = feats[c]

        def key(o: str):
            o_words, o_attrs = feats[o]
            jaccard = len(words & o_words) / max(1, len(words | o_words))
            return (-jaccard, -len(attrs & o_attrs), -difflib.SequenceMatcher(None, c, o).ratio(), o)
        order[c] = sorted((o for o in classes if o != c), key=key)
    return order


# --- the source --------------------------------------------------------------------------

def _rank(seed: int, *parts: str) -> str:
    return hashlib.sha256("|".join((str(seed),) + parts).encode()).hexdigest()


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and is_image_name(p) and not p.name.startswith("."))


@dataclass
class _Item:
    """One result of a page being built."""
    url: str               # path on this site
    kind: str
    photo: Photo           # the original (copies: what they copy)
    transform: str | None = None
    after: str | None = None   # list after this URL (a copy of a photo on the same page)


class SearchSource:
    """An image-search site on 127.0.0.1 whose results come from `pool` (see the module docstring).

    results_per_query: the length of a page (the crawler takes the first per_query it can use).
    confusable_classes: how many of the most confusable shoes the "other shoe" results come from.
    embed: paths -> (n, D) embeddings; when given, confusability is measured on them (up to 16
    photos per class). class_means: the same, precomputed per class.
    """

    def __init__(self, pool: str | os.PathLike, distractors: str | os.PathLike | None = None, *,
                 mix: Mix = Mix(), results_per_query: int = 20, seed: int = 0,
                 exclude: Iterable[str | os.PathLike] = (), repeat: bool = False,
                 confusable_classes: int = 3, embed: Callable[[list[Path]], "object"] | None = None,
                 class_means: dict | None = None, truth_path: str | os.PathLike | None = None,
                 shoes: list[PoolShoe] | None = None, min_short_side: int | None = None,
                 preview_delay: float = 0.05, scroll_delay: float = 0.05, page_size: int = 10,
                 relist: bool = False):
        self.pool = Path(pool).resolve()
        self.mix = mix
        self.relist = relist
        self.results_per_query = results_per_query
        self.seed = seed
        self.repeat = repeat
        self.confusable_classes = max(1, confusable_classes)
        self.preview_delay, self.scroll_delay, self.page_size = preview_delay, scroll_delay, page_size
        rules = load_rules("crawl_rules")["automatic"]
        self.min_short_side = int(min_short_side or rules["min_short_side"])
        self.min_file_bytes = int(rules["min_file_bytes"])

        excluded = {Path(p).resolve() for p in exclude}
        # by content too: a copy of a held-out photo under another name must not be served either
        seen = {sha256_file(p) for p in excluded if p.is_file()}
        self.classes = pool_classes(self.pool)
        if len(self.classes) < 2:
            raise UserError(f"pool {pool}: a pool needs at least two shoe folders, found {len(self.classes)}")
        self.photos: dict[str, Photo] = {}
        self.by_class: dict[str, list[Photo]] = {}
        for cls in self.classes:
            kept = []
            for path in _image_files(self.pool / cls):
                photo = Photo(f"p{len(self.photos)}", path, cls, sha256_file(path))
                self.photos[photo.id] = photo   # ids count excluded files too: stable for a folder
                # the same bytes twice (in the pool or among the distractors) are served once
                if path.resolve() not in excluded and photo.sha256 not in seen:
                    seen.add(photo.sha256)
                    kept.append(photo)
            self.by_class[cls] = sorted(kept, key=lambda p: _rank(seed, "pool", p.sha256, p.id))
        self.distractors: list[Photo] = []
        if distractors:
            for i, path in enumerate(_image_files(Path(distractors))):
                photo = Photo(f"d{i}", path, None, sha256_file(path))
                self.photos[photo.id] = photo
                if path.resolve() not in excluded and photo.sha256 not in seen:
                    seen.add(photo.sha256)
                    self.distractors.append(photo)
            self.distractors.sort(key=lambda p: _rank(seed, "distractor", p.sha256, p.id))

        self.shoes = shoes or pool_shoes(self.pool)
        self.shoe_of = {s.pool_class: s for s in self.shoes}
        self.class_of_query = {}
        for s in self.shoes:
            for text in (*s.shoe.queries, s.shoe.name, s.pool_class):
                self.class_of_query.setdefault(_norm(text), s.pool_class)
        if class_means is None and embed is not None:
            # a shoe whose photos are all held out is still placed by them: this only orders results
            class_means = {c: embed([p.path for p in self.by_class[c][:16]] or _image_files(self.pool / c)[:16])
                           .mean(axis=0) for c in self.classes}
        self.confusables = confusable_order(self.classes, class_means)

        self.listings: list[Served] = []       # every (query, result) listed, first time only
        self._listed: set[tuple[str, str]] = set()
        self.fetched: set[str] = set()         # photo ids and copy paths whose full image was downloaded
        self.fetched_under: dict[str, str] = {}   # photo id -> the pool class of the page it was fetched from
        self.relisted: set[tuple[str, str]] = set()   # (pool class, photo id) listed again on its own page
        self._page_of: dict[str, str] = {}     # url path -> the pool class of the last page listing it
        self.pages: list[dict] = []            # every page built: query, shoe, results by kind
        self._copies: dict[str, tuple[bytes, int, int]] = {}   # copy path -> JPEG bytes, width, height
        self._sizes: dict[str, tuple[int, int]] = {}            # photo id -> width, height
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self.truth_path = Path(truth_path) if truth_path else None
        if self.truth_path and self.truth_path.exists():
            self._replay(self.truth_path)

    # --- ground truth -------------------------------------------------------------------
    def by_sha256(self) -> dict[str, Served]:
        """Ground truth by the sha256 the crawler names files with (its first listing; what the photo
        shows, `truth`, is the same under every query)."""
        out: dict[str, Served] = {}
        for served in self.listings:
            out.setdefault(served.sha256, served)
        return out

    def pool_class_of_folder(self, folder: str) -> str | None:
        """The pool class a dataset folder (Brand_Top_Color_Sole_Name, or the pool's own name) holds."""
        parsed = parse_folder_name(folder)
        key = _norm(parsed["name"] if parsed else folder)
        return next((s.pool_class for s in self.shoes if _norm(s.shoe.name) == key or _norm(s.pool_class) == key),
                    None)

    def _append(self, record: dict) -> None:
        if self.truth_path:
            self.truth_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.truth_path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record, sort_keys=True) + "\n")

    def _replay(self, path: Path) -> None:
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue   # a torn last line
            if "listed" in rec:
                served = Served(**rec["listed"])
                self.listings.append(served)
                self._listed.add((_norm(served.query), served.path))
            elif "fetched" in rec:
                self.fetched.add(rec["fetched"])
                if rec.get("under"):
                    self.fetched_under[rec["fetched"]] = rec["under"]
            elif "relisted" in rec:
                self.relisted.add(tuple(rec["relisted"]))

    # --- building a page ----------------------------------------------------------------------
    def _fresh(self, key: str) -> bool:
        return self.repeat or key not in self.fetched

    def results(self, query: str) -> list[Served]:
        """The page for `query` now (what a crawl sees), each result recorded the first time it is listed."""
        cls = self.class_of_query.get(_norm(query))
        with self._lock:
            items = self._page_items(cls) if cls else []
            served = [self._served(query, cls, item) for item in items]
            for item in items:
                self._page_of[item.url] = cls
                if item.kind == RELISTED:
                    self.relisted.add((cls, item.photo.id))
                    self._append({"relisted": [cls, item.photo.id]})
            for record in served:
                if (_norm(query), record.path) not in self._listed:
                    self._listed.add((_norm(query), record.path))
                    self.listings.append(record)
                    self._append({"listed": asdict(record)})
            self.pages.append({"query": query, "shoe": cls,
                               "kinds": {k: sum(s.kind == k for s in served) for k in KINDS}})
            return served

    def _page_items(self, cls: str) -> list[_Item]:
        want = self.mix.counts(self.results_per_query)
        rng_key = ("page", cls)
        right = [p for p in self.by_class[cls] if self._fresh(p.id)][:want["right"]]
        items = [_Item(self._photo_url(p), "right", p) for p in right]
        items += [_Item(self._photo_url(p), "confusable", p) for p in self._confusables(cls, want["confusable"])]
        items += [_Item(self._photo_url(p), "distractor", p)
                  for p in [d for d in self.distractors if self._fresh(d.id)][:want["distractor"]]]
        on_page = {p.id for p in right}
        items += self._near_duplicates(cls, want["near-duplicate"], on_page)
        small = [p for p in self.by_class[cls] if self._fresh(self._copy_url(p, "thumbnail"))]
        items += [_Item(self._copy_url(p, "thumbnail"), "thumbnail", p, "thumbnail") for p in small[:want["thumbnail"]]]
        # a fixed order for the page: an item keeps its place among the others from crawl to crawl
        items.sort(key=lambda it: _rank(self.seed, *rng_key, it.url))
        placed = [i for i in items if i.after is None]
        for it in [i for i in items if i.after is not None]:
            at = next(n for n, p in enumerate(placed) if p.url == it.after)
            later = [n for n in range(at + 1, len(placed) + 1)]
            placed.insert(later[int(_rank(self.seed, "after", it.url), 16) % len(later)], it)
        return self._relisted(cls) + placed

    def _relisted(self, cls: str) -> list[_Item]:
        """This shoe's photos fetched from another shoe's page and not yet listed here since (relist=True)."""
        if not self.relist or self.repeat:
            return []
        return [_Item(self._photo_url(p), RELISTED, p) for p in self.by_class[cls]
                if p.id in self.fetched and self.fetched_under.get(p.id) not in (None, cls)
                and (cls, p.id) not in self.relisted]

    def _confusables(self, cls: str, n: int) -> list[Photo]:
        """n photos of the other shoes: from the `confusable_classes` most confusable ones, the first
        twice as often as the second, three times as often as the third...; when those have nothing
        left, from the next ones in order."""
        ranked = self.confusables[cls]
        left = {c: [p for p in self.by_class[c] if self._fresh(p.id)] for c in ranked}
        taken = {c: 0 for c in ranked}
        out: list[Photo] = []
        while len(out) < n:
            open_ = [i for i, c in enumerate(ranked) if taken[c] < len(left[c])]
            if not open_:
                break
            top = [i for i in open_ if i < self.confusable_classes] or open_[:1]
            # the class furthest behind its share so far (a fixed, weighted round-robin)
            i = min(top, key=lambda i: ((taken[ranked[i]] + 1) * (i + 1), i))
            out.append(left[ranked[i]][taken[ranked[i]]])
            taken[ranked[i]] += 1
        return out

    def _near_duplicates(self, cls: str, n: int, on_page: set[str]) -> list[_Item]:
        """Copies of this shoe's photos fetched in earlier crawls (what a dataset already holds), else of
        photos on this page (listed after their original)."""
        earlier = [p for p in self.by_class[cls] if p.id in self.fetched]
        here = [p for p in self.by_class[cls] if p.id in on_page]
        out: list[_Item] = []
        for photo in earlier + here:
            if len(out) == n:
                break
            for transform in sorted(COPY_TRANSFORMS, key=lambda t: _rank(self.seed, "transform", photo.id, t)):
                url = self._copy_url(photo, transform)
                if self._fresh(url):
                    out.append(_Item(url, "near-duplicate", photo, transform,
                                     after=self._photo_url(photo) if photo.id in on_page else None))
                    break
        return out

    def _photo_url(self, photo: Photo) -> str:
        return f"/img/{photo.id}{photo.path.suffix.lower()}"

    @staticmethod
    def _copy_url(photo: Photo, transform: str) -> str:
        return f"/img/{photo.id}-{transform}.jpg"   # never /thumb/: the crawler refuses those as previews

    def _served(self, query: str, cls: str, item: _Item) -> Served:
        if item.transform is None:
            if item.photo.id not in self._sizes:
                self._sizes[item.photo.id] = _size_of(item.photo.path)
            width, height = self._sizes[item.photo.id]
            return Served(self.url(item.url), item.url, query, cls, item.kind, item.photo.cls, item.photo.source,
                          item.photo.sha256, width, height)
        data, width, height = self._copy(item.url)
        return Served(self.url(item.url), item.url, query, cls, item.kind, item.photo.cls, f"copy:{item.url}",
                      hashlib.sha256(data).hexdigest(), width, height, item.photo.source, item.transform)

    def _copy(self, path: str) -> tuple[bytes, int, int] | None:
        """The bytes of a copy's path (/img/<photo id>-<transform>.jpg), made once; None if no such copy."""
        if path not in self._copies:
            match = re.fullmatch(r"/img/([pd]\d+)-([a-z\-]+)\.jpg", path)
            if not match or match[1] not in self.photos or match[2] not in (*COPY_TRANSFORMS, "thumbnail"):
                return None
            self._copies[path] = make_copy(self.photos[match[1]].path, match[2], self.min_short_side,
                                           self.min_file_bytes)
        return self._copies[path]

    # --- server -------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def start(self) -> "SearchSource":
        source = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                try:
                    source._handle(self)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="search-source", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> "SearchSource":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _handle(self, req: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(req.path)
        path = unquote(parts.path)
        kind, _, name = path.lstrip("/").partition("/")
        if kind == "search":
            query = parse_qs(parts.query).get("q", [""])[0]
            return _send(req, 200, "text/html; charset=utf-8", self._search_page(query).encode())
        if kind == "page":
            return _send(req, 200, "text/html", f"<html><body>{html.escape(name)}</body></html>".encode())
        if kind in ("img", "thumb"):
            data = self._bytes_of(f"/img/{name}", count=kind == "img")
            if data is not None:
                return _send(req, 200, "image/jpeg", data)
        return _send(req, 404, "text/html", b"<html><body>404 not found</body></html>")

    def _bytes_of(self, path: str, count: bool) -> bytes | None:
        with self._lock:
            copy = self._copy(path)
            if copy is not None:
                data, key = copy[0], path
            else:
                photo = self.photos.get(Path(path).stem)
                if photo is None or self._photo_url(photo) != path:
                    return None
                data, key = photo.path.read_bytes(), photo.id
            if count and key not in self.fetched:
                self.fetched.add(key)
                under = self._page_of.get(path)   # the page the crawler was reading (one query at a time)
                if under is not None:
                    self.fetched_under[key] = under
                self._append({"fetched": key, "under": under})
            return data

    def _search_page(self, query: str) -> str:
        items = []
        for i, served in enumerate(self.results(query)):
            # the grid shows the image itself as its thumbnail (a real engine shows a small copy)
            items.append({"thumb": served.url.replace("/img/", "/thumb/") + f"?n={i}", "full": served.url,
                          "source": f"{self.base_url}/page/result-{i}"})
        return SEARCH_PAGE.replace("__RESULTS__", json.dumps(items)) \
            .replace("__PAGE__", str(self.page_size)) \
            .replace("__PREVIEW_MS__", str(int(self.preview_delay * 1000))) \
            .replace("__SCROLL_MS__", str(int(self.scroll_delay * 1000))) \
            .replace("__QUERY__", html.escape(query))

    # --- what a crawl got -----------------------------------------------------------------
    def page_counts(self) -> dict[str, int]:
        """Results listed so far, by kind."""
        total = {k: 0 for k in KINDS}
        for page in self.pages:
            for k, n in page["kinds"].items():
                total[k] += n
        return total


def _size_of(path: Path) -> tuple[int, int]:
    from PIL import Image
    with Image.open(path) as img:
        return img.size


def make_copy(path: Path, transform: str, min_short_side: int, min_file_bytes: int = 0) -> tuple[bytes, int, int]:
    """A near-duplicate (resized, re-encoded, cropped: smaller than the original, so a de-duplicator that
    keeps the largest keeps the original, yet above min_short_side) or a thumbnail (short side below
    min_short_side). JPEG bytes, deterministic."""
    from PIL import Image, ImageOps
    with Image.open(path) as src:
        img = ImageOps.exif_transpose(src)
        if img.mode in ("P", "PA", "LA", "RGBA"):   # transparency onto white, as a page shows it
            rgba = img.convert("RGBA")
            img = Image.new("RGB", rgba.size, (255, 255, 255))
            img.paste(rgba, mask=rgba.getchannel("A"))
        else:
            img = img.convert("RGB")
    w, h = img.size
    short = min(w, h)
    floor = min_short_side + 16

    def scaled(target_short: int) -> Image.Image:
        f = target_short / short
        return img.resize((max(1, round(w * f)), max(1, round(h * f))), Image.LANCZOS)

    if transform == "thumbnail":
        out, quality = scaled(max(16, min_short_side // 2)), 80
    elif transform == "resized":
        out, quality = scaled(max(min(short, floor), round(short * 0.8))), 90
    elif transform == "re-encoded":
        out, quality = scaled(max(min(short, floor), round(short * 0.95))), 60
    elif transform == "cropped":
        cut = max(0, min(round(short * 0.03), (short - floor) // 2))
        out, quality = img.crop((cut, cut, w - cut, h - cut)), 88
    else:
        raise ValueError(f"unknown transform {transform!r}")
    buf = io.BytesIO()
    out.save(buf, format="JPEG", quality=quality)
    data = buf.getvalue()
    if transform != "thumbnail" and len(data) < min_file_bytes:
        buf = io.BytesIO()
        out.save(buf, format="JPEG", quality=97)   # keep a near-duplicate above the file-size rule too
        data = buf.getvalue()
    return data, out.size[0], out.size[1]


def load_truth(path: str | os.PathLike) -> dict[str, Served]:
    """The ground truth a source recorded in truth_path, by sha256 (for a benchmark in another process)."""
    out: dict[str, Served] = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "listed" in rec:
            served = Served(**rec["listed"])
            out.setdefault(served.sha256, served)
    return out
